//! The TypeScript client (`clients/typescript`): its types are the spec's (regenerated
//! from `openapi.yaml` they are the committed ones), it type-checks, and its tests upload
//! with it against `upload-tickets dev` and its own strict store (POST, PUT, multipart with
//! a failed part retried, resume, refusals, abort), and the demo page serves its build.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dev::Dev;

fn package() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/typescript")
}

fn bin(name: &str) -> PathBuf {
    let path = package().join("node_modules/.bin").join(name);
    assert!(
        path.is_file(),
        "{name} is not installed: run scripts/install-test-deps.sh"
    );
    path
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The program, not the whole command: its environment holds the tokens.
    let program = command.get_program().to_string_lossy().into_owned();
    assert!(output.status.success(), "{program} failed:\n{text}");
    text
}

#[test]
fn the_clients_types_are_generated_from_the_spec() {
    let fresh =
        std::env::temp_dir().join(format!("upload-tickets-schema-{}.ts", uuid::Uuid::new_v4()));
    run(Command::new(bin("openapi-typescript"))
        .current_dir(package())
        .arg("../../openapi.yaml")
        .arg("--output")
        .arg(&fresh));
    let generated = std::fs::read_to_string(&fresh).unwrap();
    let _ = std::fs::remove_file(&fresh);
    let committed = std::fs::read_to_string(package().join("src/schema.ts")).unwrap();
    assert!(
        generated == committed,
        "clients/typescript/src/schema.ts is stale: run `npm run generate` in clients/typescript"
    );
}

/// The demo page imports `static/client.js`: it is the client as tsc builds it now.
#[test]
fn the_demo_pages_client_is_the_clients_build() {
    let out = std::env::temp_dir().join(format!("upload-tickets-client-{}", uuid::Uuid::new_v4()));
    run(Command::new(bin("tsc"))
        .current_dir(package())
        .args(["-p", ".", "--outDir"])
        .arg(&out));
    let built = std::fs::read_to_string(out.join("src/index.js")).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let served = std::fs::read_to_string(package().join("../../static/client.js")).unwrap();
    assert!(
        built == served,
        "static/client.js is stale: run `npm run demo` in clients/typescript"
    );
}

#[tokio::test]
async fn the_typescript_client_uploads_through_dev_and_its_tests_pass() {
    let dev = Dev::start(&[]).await;
    let (base, token, put_token) = (dev.base.clone(), dev.token.clone(), dev.put_token.clone());
    let output = tokio::task::spawn_blocking(move || {
        run(Command::new(bin("tsc"))
            .current_dir(package())
            .args(["-p", "."]));
        run(Command::new("node")
            .current_dir(package())
            .args(["--test", "--test-concurrency=1", "dist/test/"])
            .env("UPLOAD_TICKETS_URL", &base)
            .env("UPLOAD_TICKETS_TOKEN", &token)
            .env("UPLOAD_TICKETS_PUT_TOKEN", &put_token))
    })
    .await
    .unwrap();
    assert!(output.contains("# fail 0"), "{output}");
    assert!(output.contains("# pass 8"), "{output}");
}
