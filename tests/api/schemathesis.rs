//! Spec-driven testing: schemathesis generates requests from `openapi.yaml` (valid and
//! invalid) against the running server with a valid token, and checks every response
//! against the spec: status codes, content types, headers, schemas, undeclared methods,
//! server errors.
//!
//! One check is off, `positive_data_acceptance`: tenant rules refuse some schema-valid
//! requests on purpose (a size under the tenant's minimum, a type it does not allow) with
//! 422, which no schema of a multi-tenant API can express. The service talks to a real
//! store (s3s-fs) so that multipart and completion calls reach it.

use std::process::Command;

use crate::helpers::*;
use crate::store::{Kind, Store};

#[tokio::test]
async fn schemathesis_finds_no_failure() {
    let store = Store::start(Kind::S3sFs).await;
    for bucket in ["shared-uploads", "metered-uploads", "limited-uploads"] {
        store.create_bucket(bucket).await;
    }
    let app = spawn_app_on(&base_config().replace("http://127.0.0.1:9000", &store.endpoint)).await;
    let binary = tool("schemathesis-venv/bin/schemathesis");
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/schemathesis.toml");
    let (base, token) = (app.base.clone(), token("acme", "user-42"));
    // Off the test's runtime: the server under test runs on it.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary)
            .arg("--config-file")
            .arg(config)
            .args(["run", &format!("{base}/openapi.yaml"), "--url", &base])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            // A fixed seed keeps CI repeatable; change it to explore.
            .args(["--max-examples", "150", "--seed", "20261125", "--no-color"])
            .env("SCHEMATHESIS_HOOKS", "")
            // It keeps a cache in its working folder: not in the repository.
            .current_dir(std::env::temp_dir())
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(" passed"), "{report}");
}
