//! The spec is tested, not trusted: every response the server gives in a scripted run
//! is declared in `openapi.yaml` (path, method, status, media type) and validates
//! against the declared schema.

use serde_json::{Value, json};

use crate::helpers::*;

pub fn spec() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    serde_norway::from_str(&text).expect("openapi.yaml is YAML")
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(
                spec,
                spec.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}")),
            )
        }
        None => node,
    }
}

/// Asserts a real response is declared and valid; returns nothing, panics with context.
pub fn assert_declared(
    spec: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: &str,
    body: &Value,
) {
    let operation = &spec["paths"][path][method];
    assert!(
        operation.is_object(),
        "{method} {path} is not in openapi.yaml"
    );
    let response = operation["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {path} {status} is not declared"));
    let response = resolve(spec, response);
    let media = content_type.split(';').next().unwrap().trim();
    let declared = response["content"]
        .get(media)
        .unwrap_or_else(|| panic!("{method} {path} {status}: {media} is not declared"));
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/schema",
        "schema": declared["schema"],
        "components": spec["components"],
    });
    let validator = jsonschema::validator_for(&schema).expect("the declared schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body}"
    );
}

#[tokio::test]
async fn every_response_of_a_scripted_run_is_declared_and_valid() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let app = spawn_app().await;
    let t = token("acme", "user-42");
    let good = json!({"filename": "a.png", "content_type": "image/png", "size": 10, "metadata": {"album": "x"}, "expires_in": 60});

    let mut seen = Vec::new();
    let mut record = |method: &str, path: &str, status: u16, content_type: String, body: Value| {
        assert_declared(&spec, method, path, status, &content_type, &body);
        seen.push((path.to_owned(), status));
    };

    let scripted: Vec<(reqwest::RequestBuilder, &str, &str)> = vec![
        (
            app.client
                .post(app.url("/uploads"))
                .bearer_auth(&t)
                .json(&good),
            "post",
            "/uploads",
        ),
        (
            app.client
                .post(app.url("/uploads"))
                .bearer_auth(&t)
                .json(&json!({"filename": "a.png"})),
            "post",
            "/uploads",
        ),
        (
            app.client
                .post(app.url("/uploads"))
                .bearer_auth(&t)
                .json(&json!({"filename": "a.png", "content_type": "image/png", "size": 0})),
            "post",
            "/uploads",
        ),
        (
            app.client
                .post(app.url("/uploads"))
                .bearer_auth(&t)
                .json(&json!({"filename": 1})),
            "post",
            "/uploads",
        ),
        (
            app.client.post(app.url("/uploads")).json(&good),
            "post",
            "/uploads",
        ),
        (
            app.client
                .post(app.url("/uploads"))
                .bearer_auth(token("initech", "u"))
                .json(&good),
            "post",
            "/uploads",
        ),
        (
            app.client
                .post(app.url("/uploads"))
                .bearer_auth(&t)
                .header("content-type", "text/plain")
                .body("x"),
            "post",
            "/uploads",
        ),
        (
            app.client
                .post(app.url("/uploads"))
                .bearer_auth(&t)
                .header("content-type", "application/json")
                .body("x".repeat(17_000)),
            "post",
            "/uploads",
        ),
        (app.client.get(app.url("/uploads")), "get", "/uploads"),
        (app.client.get(app.url("/livez")), "get", "/livez"),
        (app.client.get(app.url("/readyz")), "get", "/readyz"),
    ];
    for (request, method, path) in scripted {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        let method = if status == 405 { "post" } else { method };
        record(method, path, status, content_type, body);
    }
    // Two a minute in fixed UTC minutes: five requests see a 429 even when a minute
    // turns between them.
    let limited = token("limited", "u");
    for _ in 0..5 {
        let response = app
            .client
            .post(app.url("/uploads"))
            .bearer_auth(&limited)
            .json(&json!({"filename": "a"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        record(
            "post",
            "/uploads",
            status,
            content_type,
            response.json().await.unwrap(),
        );
    }
    for expected in [201, 400, 401, 403, 405, 413, 415, 422, 429] {
        assert!(
            seen.iter().any(|(p, s)| p == "/uploads" && *s == expected),
            "no {expected} was exercised"
        );
    }

    let response = app.get("/openapi.yaml").await;
    assert!(
        spec["paths"]["/openapi.yaml"]["get"]["responses"]["200"]["content"]["application/yaml"]
            .is_object()
    );
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_503_is_declared_and_valid_too() {
    let spec = spec();
    let app = spawn_app_with(&base_config(), std::sync::Arc::new(Switchable::new(false))).await;
    let response = app
        .upload(
            &token("acme", "u"),
            &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
        )
        .await;
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_declared(
        &spec,
        "post",
        "/uploads",
        503,
        &content_type,
        &response.json().await.unwrap(),
    );
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_declared(
        &spec,
        "get",
        "/readyz",
        503,
        &content_type,
        &response.json().await.unwrap(),
    );
}

/// Asserts an event a receiver got is declared under `webhooks` (its type and the
/// signature headers) and valid against its schema.
pub fn assert_event_declared(spec: &Value, event: &Value) {
    let kind = event["type"].as_str().expect("an event has a type");
    let operation = &spec["webhooks"][kind]["post"];
    assert!(
        operation.is_object(),
        "webhook {kind} is not in openapi.yaml"
    );
    let headers: Vec<&str> = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        headers,
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    );
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/schema",
        "schema": operation["requestBody"]["content"]["application/json"]["schema"],
        "components": spec["components"],
    });
    let validator = jsonschema::validator_for(&schema).expect("the event schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "webhook {kind}: {errors:?}\n{event}");
}

#[test]
fn every_error_code_the_server_can_emit_is_in_the_spec() {
    use upload_tickets::auth::AuthError;
    use upload_tickets::http::ApiError;
    use upload_tickets::policy::PolicyError;

    let spec = spec();
    let codes: Vec<&str> = spec["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let every = [
        ApiError::InvalidRequest(String::new()),
        ApiError::UnsupportedMediaType(String::new()),
        ApiError::PayloadTooLarge,
        ApiError::InvalidToken(AuthError::Missing),
        ApiError::InsufficientScope(String::new()),
        ApiError::TenantUnknown,
        ApiError::Policy(PolicyError::InvalidFilename),
        ApiError::UploadRejected(String::new()),
        ApiError::Policy(PolicyError::ContentTypeRequired(String::new())),
        ApiError::Policy(PolicyError::ContentTypeInvalid(String::new())),
        ApiError::Policy(PolicyError::FileTooLarge { size: 2, max: 1 }),
        ApiError::Policy(PolicyError::FileTooSmall { size: 0, min: 1 }),
        ApiError::Policy(PolicyError::MetadataNotAllowed(String::new())),
        ApiError::Policy(PolicyError::InvalidExpiry),
        ApiError::Policy(PolicyError::UnusableSubject),
        ApiError::Limited {
            refused: upload_tickets::limits::Refused::SubjectRate,
            retry_after: 1,
        },
        ApiError::Limited {
            refused: upload_tickets::limits::Refused::TenantRate,
            retry_after: 1,
        },
        ApiError::Limited {
            refused: upload_tickets::limits::Refused::Quota { remaining: 7 },
            retry_after: 1,
        },
        ApiError::Limited {
            refused: upload_tickets::limits::Refused::OpenUploads,
            retry_after: 1,
        },
        ApiError::LimitsUnavailable,
        ApiError::CredentialsUnavailable,
        ApiError::Timeout,
        ApiError::NotFound,
        ApiError::MethodNotAllowed,
        ApiError::Internal("x".into()),
        ApiError::Policy(PolicyError::SizeRequired("x")),
        ApiError::Policy(PolicyError::NeedsMultipart { size: 1 }),
        ApiError::UploadNotFound,
        ApiError::NotOwner,
        ApiError::ObjectNotFound,
        ApiError::PartsInvalid(String::new()),
        ApiError::Store("x".into()),
    ];
    for error in &every {
        let (status, code) = error.status_and_code();
        assert!(
            codes.contains(&code),
            "{code} is not in the spec's Problem.code enum"
        );
        let declared = spec["paths"].as_object().unwrap().values().any(|path| {
            path.as_object()
                .unwrap()
                .values()
                .any(|operation| operation["responses"][status.as_str()].is_object())
        });
        assert!(
            declared || code == "not_found",
            "{code}: status {status} is declared for no operation"
        );
    }
}

#[test]
fn every_example_in_the_spec_validates_against_its_schema() {
    let spec = spec();
    let mut checked = 0;
    let mut stack = vec![spec.clone()];
    while let Some(node) = stack.pop() {
        if let Value::Object(map) = &node {
            if let (Some(schema), Some(Value::Object(examples))) =
                (map.get("schema"), map.get("examples"))
            {
                let schema = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$ref": "#/schema",
                    "schema": schema,
                    "components": spec["components"],
                });
                let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
                for (name, example) in examples {
                    let errors: Vec<String> = validator
                        .iter_errors(&example["value"])
                        .map(|e| e.to_string())
                        .collect();
                    assert!(errors.is_empty(), "example {name}: {errors:?}");
                    checked += 1;
                }
            }
            stack.extend(map.values().cloned());
        } else if let Value::Array(items) = &node {
            stack.extend(items.iter().cloned());
        }
    }
    assert!(checked >= 4, "only {checked} examples checked");
}

/// A standard linter finds nothing: Spectral's `spectral:oas` ruleset (`.spectral.yaml`),
/// at every severity down to hints.
#[test]
fn the_spec_lints_clean_with_spectral() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spectral = root.join("tests/spec/node_modules/.bin/spectral");
    assert!(
        spectral.is_file(),
        "Spectral is not installed: run scripts/install-test-deps.sh"
    );
    let output = std::process::Command::new(&spectral)
        .current_dir(root)
        .args(["lint", "openapi.yaml", "--ruleset", ".spectral.yaml"])
        .args(["--format", "json", "--fail-severity", "hint", "--quiet"])
        .output()
        .expect("spectral runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let findings: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "spectral printed no JSON: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(findings, json!([]), "spectral:oas findings");
    assert!(output.status.success());
}
