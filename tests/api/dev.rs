//! `upload-tickets dev`: one command, no cloud account, and an upload that lands. The
//! binary runs as a newcomer runs it (a clean environment), with its own store; these
//! tests upload through it, read back, and make sure it refuses what AWS refuses.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// `upload-tickets dev` running, with what its banner said. Stopped on drop with
/// SIGTERM (so it removes its data directory), killed if it does not exit.
pub struct Dev {
    child: Child,
    /// The banner as printed.
    pub banner: String,
    /// `http://127.0.0.1:<port>` of the service.
    pub base: String,
    /// `http://127.0.0.1:<port>` of the store the tickets are for.
    pub store: String,
    /// The token of tenant `dev` (POST tickets).
    pub token: String,
    /// The token of tenant `dev-put` (PUT tickets).
    pub put_token: String,
    /// The data directory the banner names, if the store is ours.
    pub data: Option<PathBuf>,
}

impl Dev {
    /// Starts `upload-tickets dev` on a free service port with `args`; without a
    /// `--store` among them, its store on a free port too.
    pub async fn start(args: &[&str]) -> Self {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        if !args.iter().any(|a| a == "--store" || a == "--no-store") {
            args.extend(["--store".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        if !args.iter().any(|a| a == "--listen") {
            args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
            .arg("dev")
            .args(&args)
            .env_clear()
            // As the container image sets it for every command: dev does not follow it.
            .env("UPLOAD_TICKETS__SERVER__LISTEN", "0.0.0.0:0")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut dev = Self {
            child,
            banner: String::new(),
            base: String::new(),
            store: String::new(),
            token: String::new(),
            put_token: String::new(),
            data: None,
        };
        // The banner; `lines_of` drains the rest of stdout.
        let stdout = crate::helpers::lines_of(stdout);
        let lines = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut banner = Vec::new();
            while let Ok(line) =
                stdout.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                let done = line.contains("-d '");
                banner.push(line);
                if done {
                    return Some(banner);
                }
            }
            None
        })
        .await
        .expect("the banner reader")
        .expect("dev prints its banner");
        dev.banner = lines.join("\n");
        let after = |marker: &str| {
            dev.banner
                .split(marker)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(|w| w.trim_end_matches(',').to_owned())
        };
        dev.base = after("upload-tickets dev: ").expect("the service address");
        dev.store = after(" at ")
            .or_else(|| {
                after("store: ")
                    .filter(|w| w.contains(':'))
                    .map(|w| format!("http://{w}"))
            })
            .unwrap_or_default();
        dev.data = after("data in ").map(PathBuf::from);
        let mut tokens = lines.iter().filter(|l| l.starts_with("eyJ"));
        dev.token = tokens.next().expect("a token line").trim().to_owned();
        dev.put_token = tokens
            .next()
            .expect("a second token line")
            .trim()
            .to_owned();
        dev
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A ticket of tenant `dev` for `body`.
    pub async fn ticket(&self, body: &Value) -> Value {
        let response = reqwest::Client::new()
            .post(self.url("/uploads"))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// The caller's objects, as `GET /demo/objects` lists them (held to the spec).
    pub async fn objects(&self, token: &str) -> Vec<Value> {
        let response = reqwest::Client::new()
            .get(self.url("/demo/objects"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let listing = crate::multipart::json_of(response, 200, "get", "/demo/objects").await;
        listing["objects"].as_array().cloned().unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("the child is reaped");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Posts `file` with the ticket's fields in order, plus `extra` fields before the
/// file; answers the store's status and body.
pub async fn post_form(ticket: &Value, extra: &[(&str, &str)], file: &[u8]) -> (u16, String) {
    let response = post_form_response(ticket, extra, file).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post_form_response(
    ticket: &Value,
    extra: &[(&str, &str)],
    file: &[u8],
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in ticket["fields"].as_object().unwrap() {
        form = form.text(name.clone(), value.as_str().unwrap().to_owned());
    }
    for (name, value) in extra {
        form = form.text((*name).to_owned(), (*value).to_owned());
    }
    let part = reqwest::multipart::Part::bytes(file.to_vec()).file_name("hello.txt");
    reqwest::Client::new()
        .post(ticket["url"].as_str().unwrap())
        .multipart(form.part("file", part))
        .send()
        .await
        .unwrap()
}

async fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn dev_prints_a_token_and_a_curl_line_that_work() {
    let dev = Dev::start(&[]).await;
    assert!(dev.banner.contains("store: embedded"), "{}", dev.banner);
    let curl_url = dev
        .banner
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.ends_with("/uploads"))
        .expect("a curl URL");
    assert_eq!(curl_url, dev.url("/uploads"));
    assert!(dev.banner.contains(&format!("Bearer {}", dev.token)));

    let ticket = dev
        .ticket(&json!({"filename": "hello.txt", "content_type": "text/plain"}))
        .await;
    assert_eq!(ticket["url"], format!("{}/uploads", dev.store));
    assert!(
        ticket["fields"]["X-Amz-Credential"]
            .as_str()
            .unwrap()
            .starts_with("minioadmin/")
    );
    assert!(ticket["key"].as_str().unwrap().starts_with("dev/dev-user/"));

    // The store answers a POST upload with the headers S3 sends and upload code reads
    // (Uppy waits for the ETag for ever without it).
    let response = post_form_response(&ticket, &[], b"hello").await;
    assert_eq!(response.status(), 201);
    let headers = response.headers();
    assert_eq!(
        headers["etag"], "\"5d41402abc4b2a76b9719d911017c592\"",
        "MD5 of hello"
    );
    let location = headers["location"].to_str().unwrap();
    assert_eq!(
        location,
        format!("{}/uploads/{}", dev.store, ticket["key"].as_str().unwrap())
    );
}

/// A POST upload and a PUT upload land in the store's directory and come back through
/// the demo listing's download links; the data directory goes when dev stops.
#[tokio::test]
async fn uploads_through_dev_land_in_its_own_store_and_read_back() {
    let mut dev = Dev::start(&[]).await;
    let data = dev
        .data
        .clone()
        .expect("the banner names the data directory");
    assert!(data.join("uploads").is_dir(), "bucket uploads exists");

    let ticket = dev
        .ticket(&json!({"filename": "hello.txt", "content_type": "text/plain"}))
        .await;
    let (status, body) = post_form(&ticket, &[], b"hello, upload\n").await;
    assert_eq!(status, 201, "{body}");
    let key = ticket["key"].as_str().unwrap();
    assert!(body.contains(&format!("<Key>{key}</Key>")), "{body}");
    assert_eq!(
        std::fs::read(data.join("uploads").join(key)).unwrap(),
        b"hello, upload\n"
    );

    // PUT tenant: the URL with exactly its signed headers.
    let response = reqwest::Client::new()
        .post(dev.url("/uploads"))
        .bearer_auth(&dev.put_token)
        .json(&json!({"filename": "note.txt", "content_type": "text/plain", "size": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let put: Value = response.json().await.unwrap();
    assert_eq!(put["method"], "PUT");
    let mut request = reqwest::Client::new().put(put["url"].as_str().unwrap());
    for (name, value) in put["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    let replay = request.try_clone().expect("a body of bytes");
    let response = request.body("hello").send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // The ticket signs If-None-Match: *, and the dev store evaluates it.
    let response = replay.body("HELLO").send().await.unwrap();
    assert_eq!(
        response.status(),
        412,
        "a replayed PUT ticket cannot overwrite"
    );

    // The listing names each caller's own objects, with links that work.
    let listed = dev.objects(&dev.token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["key"], key);
    assert_eq!(listed[0]["size"], 14);
    let (status, bytes) = get_bytes(listed[0]["download_url"].as_str().unwrap()).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (200, b"hello, upload\n".as_slice())
    );
    let listed = dev.objects(&dev.put_token).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (status, bytes) = get_bytes(listed[0]["download_url"].as_str().unwrap()).await;
    assert_eq!((status, bytes.as_slice()), (200, b"hello".as_slice()));

    // Unsigned reads are refused, as a private bucket's are.
    let (status, _) = get_bytes(&format!("{}/uploads/{key}", dev.store)).await;
    assert_eq!(status, 403);

    assert!(dev.stop().success());
    assert!(
        !data.exists(),
        "the temporary data directory is removed on exit"
    );
}

/// A form the store must refuse, and how.
struct Case {
    what: &'static str,
    ticket: Value,
    extra: Vec<(&'static str, &'static str)>,
    file: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(what: &'static str, ticket: Value, file: Vec<u8>, status: u16, code: &'static str) -> Case {
    Case {
        what,
        ticket,
        extra: Vec::new(),
        file,
        status,
        code,
    }
}

/// Each broken form is refused by the dev store, with AWS's error code and the broken
/// rule in words, and nothing is stored.
#[tokio::test]
async fn the_dev_store_refuses_what_a_strict_store_refuses() {
    let dev = Dev::start(&[]).await;
    let good = json!({"filename": "hello.txt", "content_type": "text/plain", "size": 14});
    let file = b"hello, upload\n";

    let mut cases: Vec<Case> = Vec::new();
    let ticket = dev.ticket(&good).await;

    // A tampered policy: the same conditions with a larger range, signature kept.
    let mut tampered = ticket.clone();
    let policy = upload_tickets_policy(&ticket).replace("14,14", "1,999999");
    tampered["fields"]["Policy"] = json!(base64(&policy));
    cases.push(case(
        "tampered policy",
        tampered,
        file.to_vec(),
        403,
        "SignatureDoesNotMatch",
    ));

    // A wrong signature.
    let mut wrong = ticket.clone();
    wrong["fields"]["X-Amz-Signature"] = json!("0".repeat(64));
    cases.push(case(
        "wrong signature",
        wrong,
        file.to_vec(),
        403,
        "SignatureDoesNotMatch",
    ));

    // Too large and too small for the declared size.
    cases.push(case(
        "too large",
        ticket.clone(),
        b"hello, upload!!\n".to_vec(),
        400,
        "EntityTooLarge",
    ));
    cases.push(case(
        "too small",
        ticket.clone(),
        b"hello\n".to_vec(),
        400,
        "EntityTooSmall",
    ));

    // Another key, another type, a field the policy does not name.
    let mut other_key = ticket.clone();
    other_key["fields"]["key"] = json!("dev/someone-else/x/hello.txt");
    cases.push(case(
        "another key",
        other_key,
        file.to_vec(),
        403,
        "AccessDenied",
    ));
    let mut other_type = ticket.clone();
    other_type["fields"]["Content-Type"] = json!("text/html");
    cases.push(case(
        "another type",
        other_type,
        file.to_vec(),
        403,
        "AccessDenied",
    ));
    cases.push(Case {
        extra: vec![("x-amz-meta-owner", "me")],
        ..case(
            "unlisted field",
            ticket.clone(),
            file.to_vec(),
            403,
            "AccessDenied",
        )
    });

    // An expired ticket (the shortest validity there is).
    let short = dev
        .ticket(&json!({"filename": "hello.txt", "content_type": "text/plain", "size": 14, "expires_in": 1}))
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    cases.push(case("expired", short, file.to_vec(), 403, "AccessDenied"));

    // A declared SHA-256 of other bytes: the store computes the digest and refuses.
    let other =
        crate::integrity::digest(s3_presigned_post::ChecksumAlgorithm::Sha256, b"other bytes");
    let declared = dev
        .ticket(
            &json!({"filename": "hello.txt", "content_type": "text/plain", "size": 14,
                        "checksum": {"algorithm": "SHA256", "value": other.value()}}),
        )
        .await;
    cases.push(case(
        "wrong checksum",
        declared,
        file.to_vec(),
        400,
        "BadDigest",
    ));

    for Case {
        what,
        ticket,
        extra,
        file: bytes,
        status,
        code,
    } in &cases
    {
        let (got, body) = post_form(ticket, extra, bytes).await;
        assert_eq!(got, *status, "{what}: {body}");
        assert!(
            body.contains(&format!("<Code>{code}</Code>")),
            "{what}: {body}"
        );
        assert!(body.contains("<Message>"), "{what}: {body}");
    }
    // The same for a PUT ticket: the signed checksum header of other bytes.
    let response = reqwest::Client::new()
        .post(dev.url("/uploads"))
        .bearer_auth(&dev.put_token)
        .json(
            &json!({"filename": "note.txt", "content_type": "text/plain", "size": 14,
                      "checksum": {"algorithm": "SHA256", "value": other.value()}}),
        )
        .send()
        .await
        .unwrap();
    let put: Value = response.json().await.unwrap();
    let mut request = reqwest::Client::new().put(put["url"].as_str().unwrap());
    for (name, value) in put["headers"].as_object().unwrap() {
        if name != "content-length" {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    let response = request.body(file.to_vec()).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("<Code>BadDigest</Code>")
    );
    assert!(
        dev.objects(&dev.put_token).await.is_empty(),
        "nothing is stored"
    );

    assert!(
        dev.objects(&dev.token).await.is_empty(),
        "nothing is stored"
    );
    let data = dev.data.clone().unwrap();
    assert_eq!(
        files_under(&data.join("uploads")),
        0,
        "nothing in the data directory"
    );

    // The good form still passes afterwards: the refusals changed nothing.
    let (status, body) = post_form(&ticket, &[], file).await;
    assert_eq!(status, 201, "{body}");
}

/// A store already on the address is used, not fought; anything else there is a clear
/// error; `--no-store` starts nothing.
#[tokio::test]
async fn dev_uses_a_store_already_there_and_refuses_a_port_taken_otherwise() {
    let first = Dev::start(&[]).await;
    let address = first.store.trim_start_matches("http://").to_owned();
    let second = Dev::start(&["--store", &address]).await;
    assert!(
        second
            .banner
            .contains("is taken by another S3-compatible store"),
        "{}",
        second.banner
    );
    let ticket = second
        .ticket(&json!({"filename": "hello.txt", "content_type": "text/plain"}))
        .await;
    assert_eq!(ticket["url"], format!("{}/uploads", first.store));
    let (status, body) = post_form(&ticket, &[], b"hi").await;
    assert_eq!(
        status, 201,
        "the first dev's store takes the second's ticket: {body}"
    );

    // A port held by something that is not a store: dev says so and exits non-zero.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listener.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
        .args(["dev", "--store", &taken, "--listen", "127.0.0.1:0"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{taken} is in use by something that does not answer like an S3 store"
        )),
        "{stderr}"
    );
    drop(listener);

    let none = Dev::start(&["--no-store"]).await;
    assert!(
        none.banner.contains("store: none started (--no-store)"),
        "{}",
        none.banner
    );
    assert!(none.data.is_none());
}

/// `--data DIR` keeps the objects after dev stops.
#[tokio::test]
async fn data_kept_with_the_data_flag() {
    let dir =
        std::env::temp_dir().join(format!("upload-tickets-dev-kept-{}", uuid::Uuid::new_v4()));
    let dir_text = dir.to_string_lossy().into_owned();
    let mut dev = Dev::start(&["--data", &dir_text]).await;
    assert_eq!(dev.data.as_deref(), Some(dir.as_path()));
    assert!(dev.banner.contains("(kept)"), "{}", dev.banner);
    let ticket = dev
        .ticket(&json!({"filename": "hello.txt", "content_type": "text/plain"}))
        .await;
    assert_eq!(post_form(&ticket, &[], b"kept").await.0, 201);
    assert!(dev.stop().success());
    let key = ticket["key"].as_str().unwrap();
    assert_eq!(
        std::fs::read(dir.join("uploads").join(key)).unwrap(),
        b"kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn upload_tickets_policy(ticket: &Value) -> String {
    let encoded = ticket["fields"]["Policy"].as_str().unwrap();
    String::from_utf8(base64_simd::STANDARD.decode_to_vec(encoded).unwrap()).unwrap()
}

fn base64(text: &str) -> String {
    base64_simd::STANDARD.encode_to_string(text.as_bytes())
}

fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

#[tokio::test]
async fn dev_binds_loopback_whatever_the_environment_says_and_shows_its_token_to_loopback_names_only()
 {
    // Dev::start sets UPLOAD_TICKETS__SERVER__LISTEN=0.0.0.0:0, as the image does.
    let dev = Dev::start(&[]).await;
    assert!(dev.base.starts_with("http://127.0.0.1:"), "{}", dev.base);
    let port = dev.base.rsplit(':').next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let page = |host: String| {
        client
            .get(format!("{}/demo", dev.base))
            .header("host", host)
            .send()
    };
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let response = page(host.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "{host}");
        assert!(
            response.text().await.unwrap().contains(&dev.token),
            "{host}"
        );
    }
    // A page of another origin whose name was rebound to this machine (DNS rebinding).
    for host in [
        format!("attacker.example:{port}"),
        format!("127.0.0.1.nip.example:{port}"),
    ] {
        let response = page(host.clone()).await.unwrap();
        assert_eq!(response.status(), 404, "{host}");
        assert!(
            !response.text().await.unwrap().contains(&dev.token),
            "{host}"
        );
    }
}
