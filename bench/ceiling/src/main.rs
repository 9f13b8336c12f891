//! The HTTP ceiling of this machine for `bench/load.sh`: a bare axum handler that reads
//! the request body and answers `POST /uploads` with a fixed JSON of a ticket's size.
//! No JWT, no rules, no signing: what upload-tickets costs is measured against this.
//!
//! Run with: `cargo run --release --manifest-path bench/ceiling/Cargo.toml -- 127.0.0.1:18081`

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::routing::post;

/// A ticket as upload-tickets answers it for the benchmark's request (same size).
const TICKET: &str = include_str!("../../ticket-sample.json");

async fn upload(
    _body: Bytes,
) -> (
    StatusCode,
    [(header::HeaderName, &'static str); 1],
    &'static str,
) {
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        TICKET,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let app = Router::new().route("/uploads", post(upload));
    axum::serve(listener, app).await
}
