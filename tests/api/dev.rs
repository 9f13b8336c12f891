//! `upload-tickets dev`: one command, no cloud account, a token and a curl line that work.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// Kills the child it guards on drop, also when the test fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn dev_prints_a_token_and_a_curl_line_that_work() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
        .arg("dev")
        .env_clear()
        .env("UPLOAD_TICKETS__SERVER__LISTEN", "127.0.0.1:0")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);

    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("-d '");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let lines = tokio::time::timeout(std::time::Duration::from_secs(30), lines)
        .await
        .expect("dev prints its banner")
        .unwrap();
    let text = lines.join("\n");
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.ends_with("/uploads"))
        .expect("a curl URL");
    let token = text
        .lines()
        .find(|l| l.starts_with("eyJ"))
        .expect("a token line")
        .trim();
    assert!(text.contains(&format!("Bearer {token}")));

    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&json!({"filename": "hello.txt", "content_type": "text/plain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let ticket: Value = response.json().await.unwrap();
    assert_eq!(ticket["url"], "http://127.0.0.1:9000/uploads");
    assert!(
        ticket["fields"]["X-Amz-Credential"]
            .as_str()
            .unwrap()
            .starts_with("minioadmin/")
    );
    assert!(ticket["key"].as_str().unwrap().starts_with("dev/dev-user/"));
    drop(running);
}
