//! Faults on the request path: slow clients and a stop under load. (Credential and
//! identity-provider outages are in `uploads` and `auth`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Reads until the server closes the connection; at most `limit` (the test fails, not
/// hangs, if the server never does).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

fn upload_head(address: &str, token: &str, content_length: usize) -> String {
    format!(
        "POST /uploads HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    )
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_starve_nobody() {
    let config = base_config().replace(
        "request_timeout_seconds = 5",
        "request_timeout_seconds = 2\nheader_read_timeout_seconds = 1",
    );
    let app = spawn_app_on(&config).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let t = token("acme", "u");
    let body = json!({"filename": "a.pdf", "content_type": "application/pdf"}).to_string();

    // Trickling headers (slowloris) and trickling bodies, many of each.
    let mut trickling_heads = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"POST /uploads HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        trickling_heads.push(stream);
    }
    let mut trickling_bodies = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let head = upload_head(&address, &t, body.len());
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body.as_bytes()[..5]).await.unwrap();
        trickling_bodies.push(stream);
    }

    // Meanwhile everyone else is served.
    for _ in 0..5 {
        let response = app
            .upload(
                &t,
                &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
            )
            .await;
        assert_eq!(response.status(), 201);
    }

    // The server ends both kinds by itself: heads after the header deadline, bodies
    // with the request timeout's problem.
    for mut stream in trickling_heads {
        let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    for mut stream in trickling_bodies {
        let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    }
    let response = app
        .upload(
            &t,
            &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
        )
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn sigterm_under_load_finishes_in_flight_requests_refuses_new_ones_and_exits_0() {
    let mut server = Binary::start(&base_config(), &[]);
    let address = server.address.clone();
    let t = token("acme", "u");
    let body = json!({"filename": "a.pdf", "content_type": "application/pdf"}).to_string();

    // Load: clients posting as fast as they can until the server is gone.
    let answered = Arc::new(AtomicUsize::new(0));
    let unexpected = Arc::new(std::sync::Mutex::new(Vec::<u16>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..16 {
        let (answered, unexpected, stop) = (answered.clone(), unexpected.clone(), stop.clone());
        let (url, t, body) = (format!("http://{address}/uploads"), t.clone(), body.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                let sent = client
                    .post(&url)
                    .bearer_auth(&t)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 201 => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => unexpected.lock().unwrap().push(response.status().as_u16()),
                    // The server has stopped accepting: this client is done.
                    Err(error) if error.is_connect() => break,
                    // A keep-alive connection closed by the drain between two requests.
                    Err(_) => {}
                }
            }
        }));
    }
    while answered.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // In flight at SIGTERM: the head and half the body are sent.
    let mut in_flight = TcpStream::connect(&address).await.unwrap();
    in_flight
        .write_all(upload_head(&address, &t, body.len()).as_bytes())
        .await
        .unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    in_flight.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.terminate();
    // New connections are refused soon after the signal...
    let mut refused = false;
    for _ in 0..200 {
        if TcpStream::connect(&address).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        refused,
        "the server still accepts connections after SIGTERM"
    );
    // ...while the request in flight completes with its ticket.
    in_flight.write_all(rest).await.unwrap();
    let answer = read_until_closed(&mut in_flight, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("\"fields\""), "{answer}");

    let status = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    stop.store(true, Ordering::SeqCst);
    for client in load {
        client.await.unwrap();
    }
    assert!(answered.load(Ordering::SeqCst) >= 200);
    assert!(
        unexpected.lock().unwrap().is_empty(),
        "answers other than 201 under load: {:?}",
        unexpected.lock().unwrap()
    );
}

#[tokio::test]
async fn a_store_that_is_down_or_hangs_costs_a_bounded_error_and_tickets_still_work() {
    // Down: nothing listens. Hanging: accepts connections and never answers.
    let down = format!("http://127.0.0.1:{}", free_port());
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_url = format!("http://{}", hanging.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = hanging.accept().await {
            open.push(stream);
        }
    });
    for (endpoint, statuses) in [(down, &[502][..]), (hanging_url, &[502, 503][..])] {
        let app = spawn_app_on(&base_config().replace("http://127.0.0.1:9000", &endpoint)).await;
        let t = token("acme", "alice");
        for (path, body) in [
            (
                "/uploads/multipart",
                json!({"filename": "a.pdf", "content_type": "application/pdf", "size": 100}),
            ),
            ("/uploads/complete", json!({"key": "acme/alice/x/a.pdf"})),
        ] {
            let response = app
                .client
                .post(app.url(path))
                .bearer_auth(&t)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .expect("an answer, not a hang");
            let status = response.status().as_u16();
            assert!(statuses.contains(&status), "{endpoint} {path}: {status}");
            let code = if status == 502 {
                "store_error"
            } else {
                "timeout"
            };
            let body = problem(response, status, code).await;
            // The cause is logged, not returned.
            assert!(
                !body["detail"].as_str().unwrap().contains("127.0.0.1"),
                "{body}"
            );
        }
        // Tickets are signed offline: the store's state does not matter to them.
        let response = app
            .upload(
                &t,
                &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
}

/// The server's first HTTP/2 frame after the preface: its SETTINGS, as (id, value) pairs.
fn settings_of(frames: &[u8]) -> Vec<(u16, u32)> {
    assert!(frames.len() >= 9, "no frame: {frames:?}");
    let length =
        usize::from(frames[0]) << 16 | usize::from(frames[1]) << 8 | usize::from(frames[2]);
    assert_eq!(frames[3], 0x4, "the first frame is SETTINGS");
    frames[9..9 + length]
        .chunks(6)
        .map(|s| {
            (
                u16::from_be_bytes([s[0], s[1]]),
                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
            )
        })
        .collect()
}

#[tokio::test]
async fn http2_connections_bound_their_streams_and_heads_and_close_without_a_request() {
    let config = base_config().replace(
        "request_timeout_seconds = 5",
        "request_timeout_seconds = 5\nheader_read_timeout_seconds = 1",
    );
    let app = spawn_app_on(&config).await;
    let address = app.base.trim_start_matches("http://").to_owned();

    // The preface and an empty SETTINGS frame, then nothing: no request ever.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut first = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut first))
        .await
        .expect("the server answers the preface")
        .unwrap();
    let settings = settings_of(&first[..n]);
    // SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_MAX_HEADER_LIST_SIZE.
    assert!(settings.contains(&(0x3, 100)), "{settings:?}");
    assert!(settings.contains(&(0x6, 64 * 1024)), "{settings:?}");

    // Closed by the server once the header deadline passes without a request head.
    let started = std::time::Instant::now();
    let rest = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "closed after {took:?}: {rest:?}"
    );

    // Meanwhile the service serves as usual.
    assert_eq!(app.get("/livez").await.status(), 200);
}
