//! Health endpoints and the served spec.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn livez_and_readyz_answer() {
    let app = spawn_app().await;
    let live = app.get("/livez").await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<Value>().await.unwrap()["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["credentials"], true);
}

#[tokio::test]
async fn the_served_spec_is_the_file_in_the_repository() {
    let app = spawn_app().await;
    let response = app.get("/openapi.yaml").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let served = response.text().await.unwrap();
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    assert_eq!(served, file);
}

#[tokio::test]
async fn the_demo_page_is_served_only_when_enabled() {
    let app = spawn_app().await;
    problem(app.get("/demo").await, 404, "not_found").await;
    problem(app.get("/demo/client.js").await, 404, "not_found").await;
    // Off, the listing is unknown too (after the token is checked, as everywhere).
    let listing = reqwest::Client::new()
        .get(app.url("/demo/objects"))
        .bearer_auth(token("acme", "user-42"))
        .send()
        .await
        .unwrap();
    problem(listing, 404, "not_found").await;

    let config = base_config().replace(
        "shutdown_grace_seconds = 5",
        "shutdown_grace_seconds = 5\ndemo = true",
    );
    let app = spawn_app_with(
        &config,
        std::sync::Arc::new(upload_tickets::credentials::StaticSource(
            s3_presigned_post::Credentials::new(ACCESS_KEY, SECRET_KEY, None).unwrap(),
        )),
    )
    .await;
    let response = app.get("/demo").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("import { upload } from \"/demo/client.js\""));
    // The typed client it imports, an ES module that sends POST forms and PUT URLs.
    let client = app.get("/demo/client.js").await;
    assert_eq!(client.status(), 200);
    assert_eq!(
        client.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let client = client.text().await.unwrap();
    assert!(
        client.contains("export async function upload("),
        "an ES module"
    );
    assert!(client.contains("form.append(\"file\"") && client.contains("method: \"PUT\""));
    // Outside dev nobody's token is filled in, and no placeholder is left.
    assert!(!page.contains("{{DEMO_TOKEN}}"));
    assert!(page.contains("(printed by upload-tickets dev)\"></textarea>"));
    // On, the listing wants a token like every other route.
    let listing = reqwest::Client::new()
        .get(app.url("/demo/objects"))
        .send()
        .await
        .unwrap();
    problem(listing, 401, "invalid_token").await;
}
