//! `upload-tickets presign`: the core as a command, credentials from the AWS chain.

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{SECRET, case, ours};

/// Runs the command with only the given AWS environment: no profile files, no
/// instance metadata, so nothing outside the test can answer.
fn presign(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
        .arg("presign")
        .args(args)
        .env_clear()
        .env("AWS_CONFIG_FILE", "/nonexistent/upload-tickets-test")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/upload-tickets-test",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

const KEYS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", crate::support::ACCESS_KEY_ID),
    ("AWS_SECRET_ACCESS_KEY", SECRET),
];

#[test]
fn presign_prints_what_the_core_signs() {
    let output = presign(
        &[
            "--bucket",
            "uploads",
            "--key",
            "u/${filename}",
            "--region",
            "eu-west-1",
            "--endpoint",
            "http://127.0.0.1:9000/s3",
            "--condition",
            r#"["content-length-range",1,1048576]"#,
            "--condition",
            r#"["starts-with","$Content-Type","image/"]"#,
            "--field",
            "Content-Type=image/png",
            "--field",
            "x-amz-meta-note=a=b",
            "--expires",
            "600",
            "--now",
            "2026-11-25T12:00:00Z",
        ],
        &KEYS,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");

    let expected = ours(&case(json!({
        "bucket": "uploads", "key": "u/${filename}", "region": "eu-west-1",
        "endpoint": "http://127.0.0.1:9000/s3",
        "conditions": [["content-length-range", 1, 1_048_576], ["starts-with", "$Content-Type", "image/"]],
        "fields": [["Content-Type", "image/png"], ["x-amz-meta-note", "a=b"]],
        "expires": 600, "now": "2026-11-25T12:00:00Z",
    })))
    .unwrap();
    assert_eq!(printed, serde_json::to_value(&expected).unwrap());
    assert_eq!(printed["url"], "http://127.0.0.1:9000/s3/uploads");
    // Field order is part of the output.
    let names: Vec<&str> = printed["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected_names: Vec<&str> = expected.fields().map(|(n, _)| n).collect();
    assert_eq!(names.len(), expected_names.len());
    let text = String::from_utf8(output.stdout).unwrap();
    let mut at = 0;
    for name in expected_names {
        let found = text[at..]
            .find(&format!("\"{name}\":"))
            .expect("fields in order");
        at += found;
    }
}

#[test]
fn presign_signs_with_the_session_token_of_the_chain() {
    let mut env = KEYS.to_vec();
    env.push(("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN"));
    env.push(("AWS_REGION", "us-west-2"));
    let output = presign(
        &[
            "--bucket",
            "uploads",
            "--key",
            "k",
            "--now",
            "2026-11-25T12:00:00Z",
        ],
        &env,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        printed["fields"]["X-Amz-Security-Token"],
        "FwoGZXIvYXdzEXAMPLETOKEN"
    );
    assert_eq!(
        printed["url"],
        "https://uploads.s3.us-west-2.amazonaws.com/"
    );
}

#[test]
fn presign_refuses_bad_input_with_a_message_and_no_secret() {
    for args in [
        &["--bucket", "b", "--key", "k", "--region", "us-east-1"][..],
        &[
            "--bucket",
            "uploads",
            "--key",
            "k",
            "--region",
            "us-east-1",
            "--expires",
            "604801",
        ],
        &[
            "--bucket",
            "uploads",
            "--key",
            "k",
            "--region",
            "us-east-1",
            "--condition",
            "[1]",
        ],
        &[
            "--bucket",
            "uploads",
            "--key",
            "k",
            "--region",
            "us-east-1",
            "--field",
            "novalue",
        ],
        &[
            "--bucket",
            "uploads",
            "--key",
            "k",
            "--region",
            "us-east-1",
            "--field",
            "key=x",
        ],
        &[
            "--bucket",
            "uploads",
            "--key",
            "k",
            "--region",
            "us-east-1",
            "--now",
            "yesterday",
        ],
        &["--bucket", "uploads", "--key", "k"],
    ] {
        let output = presign(args, &KEYS);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains(SECRET));
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn presign_without_credentials_says_so() {
    let output = presign(
        &["--bucket", "uploads", "--key", "k", "--region", "us-east-1"],
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("credentials"), "{stderr}");
}
