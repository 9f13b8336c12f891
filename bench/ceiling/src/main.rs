//! The HTTP ceiling of this machine for `bench/load.sh`: a bare axum handler that reads
//! the request body and answers `POST /uploads` with a fixed JSON of a ticket's size.
//! No JWT, no rules, no signing: what upload-tickets costs is measured against this.
//!
//! An optional second argument makes every request spin for that many nanoseconds of
//! pure user-space work first (`bench/amplification.sh`): what a server's own work costs
//! it in this harness, once the kernel's share of being slower is added.
//!
//! Run with: `cargo run --release --manifest-path bench/ceiling/Cargo.toml -- 127.0.0.1:18081 [WORK_NS]`

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::routing::post;

/// A ticket as upload-tickets answers it for the benchmark's request (same size).
const TICKET: &str = include_str!("../../ticket-sample.json");

/// The work each request does before it is answered (none unless asked for).
static WORK: OnceLock<Duration> = OnceLock::new();

async fn upload(
    _body: Bytes,
) -> (
    StatusCode,
    [(header::HeaderName, &'static str); 1],
    &'static str,
) {
    if let Some(&work) = WORK.get().filter(|work| !work.is_zero()) {
        let started = Instant::now();
        while started.elapsed() < work {
            std::hint::spin_loop();
        }
    }
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        TICKET,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    if let Some(work) = args.next() {
        let nanos = work.parse().map_err(std::io::Error::other)?;
        let _ = WORK.set(Duration::from_nanos(nanos));
    }
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let app = Router::new().route("/uploads", post(upload));
    axum::serve(listener, app).await
}
