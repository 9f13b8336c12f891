//! `POST /uploads`: the ticket, its guarantees and every error code.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

fn has_condition(policy: &Value, condition: &Value) -> bool {
    policy["conditions"].as_array().unwrap().contains(condition)
}

#[tokio::test]
async fn a_valid_request_gets_a_ticket_that_pins_every_rule() {
    let app = spawn_app().await;
    let response = app
        .upload(
            &token("acme", "user-42"),
            &json!({"filename": "holiday photo.jpg", "content_type": "image/jpeg", "size": 2048, "metadata": {"album": "2026"}, "expires_in": 120}),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().contains_key("x-request-id"));
    let ticket: Value = response.json().await.unwrap();

    assert_eq!(ticket["method"], "POST");
    assert_eq!(ticket["url"], "http://127.0.0.1:9000/shared-uploads");
    assert_eq!(ticket["bucket"], "shared-uploads");
    let key = ticket["key"].as_str().unwrap();
    assert!(
        key.starts_with("acme/user-42/") && key.ends_with("/holiday_photo.jpg"),
        "{key}"
    );
    assert_eq!(ticket["fields"]["key"], key);
    assert_eq!(
        (ticket["min_size"].as_u64(), ticket["max_size"].as_u64()),
        (Some(2048), Some(2048))
    );

    let policy = policy_of(&ticket);
    assert!(has_condition(&policy, &json!({"key": key})));
    assert!(has_condition(&policy, &json!({"bucket": "shared-uploads"})));
    assert!(has_condition(
        &policy,
        &json!(["content-length-range", 2048, 2048])
    ));
    assert!(has_condition(
        &policy,
        &json!({"Content-Type": "image/jpeg"})
    ));
    assert!(has_condition(&policy, &json!({"x-amz-meta-album": "2026"})));
    assert!(has_condition(
        &policy,
        &json!({"success_action_status": "201"})
    ));
    // Every returned field is pinned by an exact condition.
    for (name, value) in ticket["fields"].as_object().unwrap() {
        if name == "Policy" || name == "X-Amz-Signature" {
            continue;
        }
        assert!(
            has_condition(&policy, &json!({ name: value })),
            "{name} is not pinned"
        );
    }
    // Expiry: now + min(requested, tenant max).
    let expires = time::OffsetDateTime::parse(
        ticket["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp() as u64;
    assert!((now() + 118..=now() + 121).contains(&expires), "{expires}");
    assert_eq!(
        policy["expiration"],
        ticket["expires_at"].as_str().unwrap(),
        "the policy states the same expiry"
    );
}

#[tokio::test]
async fn without_a_size_the_tenant_range_is_pinned_and_expiry_is_capped() {
    let app = spawn_app().await;
    let response = app
        .upload(&token("acme", "u"), &json!({"filename": "a.pdf", "content_type": "application/pdf", "expires_in": 999_999_999}))
        .await;
    assert_eq!(response.status(), 201);
    let ticket: Value = response.json().await.unwrap();
    assert!(has_condition(
        &policy_of(&ticket),
        &json!(["content-length-range", 1, 1_048_576])
    ));
    let expires = time::OffsetDateTime::parse(
        ticket["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp() as u64;
    assert!(
        expires <= now() + 3600,
        "capped at the tenant's max_expires_in"
    );
}

#[tokio::test]
async fn the_client_cannot_choose_the_key() {
    let app = spawn_app().await;
    let response = app
        .upload(
            &token("acme", "u"),
            &json!({"filename": "a.png", "content_type": "image/png", "key": "globex/x"}),
        )
        .await;
    problem(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_token_of_one_tenant_never_yields_a_key_outside_its_prefix() {
    let app = spawn_app().await;
    let subjects = [
        "../globex",
        "globex/../../x",
        "/",
        "..",
        "%2F..%2Fglobex",
        "a\u{0}b",
        "\u{202E}x",
        "${filename}",
        "$key",
        "é\u{301}",
    ];
    let filenames = [
        "../../globex/x.png",
        "..\\..\\x.png",
        "%2F..%2Fx.png",
        "x\u{0}.png",
        "a\nb.png",
        "\u{202E}gnp.exe.png",
        "${filename}",
        "$key.png",
        "😀.png",
        "e\u{301}.png",
        &"n".repeat(5000),
    ];
    for sub in subjects {
        for filename in filenames {
            let response = app
                .upload(&token("acme", sub), &json!({"filename": filename, "content_type": "image/png", "metadata": {"album": filename.chars().take(50).collect::<String>()}}))
                .await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            if status != 201 {
                assert!(
                    (400..500).contains(&status),
                    "{sub:?} {filename:?}: {status} {body}"
                );
                continue;
            }
            let key = body["key"].as_str().unwrap();
            assert!(key.starts_with("acme/"), "{key}");
            assert_eq!(key.split('/').count(), 4, "{key}");
            assert!(
                !key.split('/')
                    .any(|s| s == ".." || s == "." || s.is_empty()),
                "{key}"
            );
            assert_eq!(body["bucket"], "shared-uploads");
            assert!(has_condition(&policy_of(&body), &json!({"key": key})));
        }
    }
    // And the other tenant stays in its own.
    let response = app
        .upload(
            &token("globex", "../acme"),
            &json!({"filename": "../acme/x"}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert!(
        body["key"]
            .as_str()
            .unwrap()
            .starts_with("globex/=2E=2E=2Facme/")
            || body["key"].as_str().unwrap().starts_with("globex/"),
        "{body}"
    );
    assert!(!body["key"].as_str().unwrap().starts_with("acme/"));
}

#[tokio::test]
async fn different_subjects_never_share_a_prefix() {
    let app = spawn_app().await;
    let mut prefixes = std::collections::HashSet::new();
    for sub in ["a/b", "a_b", "a=2Fb", "a b", "a%2Fb", "A/B"] {
        let body: Value = app
            .upload(&token("globex", sub), &json!({"filename": "x.bin"}))
            .await
            .json()
            .await
            .unwrap();
        let key = body["key"].as_str().unwrap();
        let prefix = key.split('/').take(2).collect::<Vec<_>>().join("/");
        assert!(prefixes.insert(prefix.clone()), "{sub:?} shares {prefix}");
    }
}

#[tokio::test]
async fn rule_violations_get_their_codes() {
    let app = spawn_app().await;
    let t = token("acme", "u");
    let cases = [
        (
            json!({"filename": "a.exe", "content_type": "application/x-msdownload"}),
            422,
            "content_type_not_allowed",
        ),
        (
            json!({"filename": "a.png"}),
            422,
            "content_type_not_allowed",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "size": 1_048_577}),
            422,
            "file_too_large",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "size": 5_368_709_121_u64}),
            422,
            "file_too_large",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "size": 0}),
            422,
            "file_too_small",
        ),
        (
            json!({"filename": "..", "content_type": "image/png"}),
            422,
            "invalid_filename",
        ),
        (
            json!({"filename": "", "content_type": "image/png"}),
            422,
            "invalid_filename",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "metadata": {"owner": "x"}}),
            422,
            "metadata_not_allowed",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "metadata": {"album": "x".repeat(300)}}),
            422,
            "metadata_not_allowed",
        ),
        (
            json!({"filename": "a.png", "content_type": "not a type"}),
            400,
            "invalid_request",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "expires_in": 0}),
            400,
            "invalid_request",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "expires_in": -5}),
            400,
            "invalid_request",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "size": -1}),
            400,
            "invalid_request",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "size": 1.5}),
            400,
            "invalid_request",
        ),
        (
            json!({"filename": "a.png", "content_type": "image/png", "size": "12"}),
            400,
            "invalid_request",
        ),
        (json!({"content_type": "image/png"}), 400, "invalid_request"),
        (json!([1, 2]), 400, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let response = app.upload(&t, &body).await;
        let got = response.status().as_u16();
        assert_eq!(got, status, "{body}");
        problem(response, status, code).await;
    }
}

#[tokio::test]
async fn malformed_bodies_are_refused_before_anything_is_signed() {
    let app = spawn_app().await;
    let t = token("acme", "u");
    let post = || app.client.post(app.url("/uploads")).bearer_auth(&t);
    problem(
        post()
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        400,
        "invalid_request",
    )
    .await;
    problem(
        post()
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    problem(
        post().body("{}").send().await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let huge = format!("{{\"filename\": \"{}\"}}", "a".repeat(20 * 1024));
    problem(
        post()
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap(),
        413,
        "payload_too_large",
    )
    .await;
}

#[tokio::test]
async fn unknown_tenants_and_missing_scopes_are_forbidden() {
    let app = spawn_app().await;
    problem(
        app.upload(&token("initech", "u"), &json!({"filename": "a"}))
            .await,
        403,
        "tenant_unknown",
    )
    .await;
    let mut c = claims("acme", "u");
    c["scope"] = json!("openid profile");
    let response = app.upload(&hs256(&c), &json!({"filename": "a"})).await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    problem(response, 403, "insufficient_scope").await;
    // `scp` as a list works too.
    let mut c = claims("acme", "u");
    c.as_object_mut().unwrap().remove("scope");
    c["scp"] = json!(["uploads:write"]);
    assert_eq!(
        app.upload(
            &hs256(&c),
            &json!({"filename": "a.pdf", "content_type": "application/pdf"})
        )
        .await
        .status(),
        201
    );
}

#[tokio::test]
async fn a_rate_limited_tenant_gets_429_with_retry_after() {
    let app = spawn_app().await;
    let t = token("limited", "u");
    for _ in 0..2 {
        assert_eq!(
            app.upload(&t, &json!({"filename": "a"})).await.status(),
            201
        );
    }
    let response = app.upload(&t, &json!({"filename": "a"})).await;
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    problem(response, 429, "rate_limited").await;
    // Another subject of the same tenant has its own budget.
    assert_eq!(
        app.upload(&token("limited", "v"), &json!({"filename": "a"}))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn without_credentials_the_service_answers_503_and_recovers_by_itself() {
    let source = Switchable::new(false);
    let app = spawn_app_with(&base_config(), Arc::new(source.clone())).await;
    let body = json!({"filename": "a.pdf", "content_type": "application/pdf"});
    let response = app.upload(&token("acme", "u"), &body).await;
    assert!(response.headers().contains_key("retry-after"));
    problem(response, 503, "credentials_unavailable").await;
    assert_eq!(app.get("/readyz").await.status(), 503);

    source.on.store(true, Ordering::SeqCst);
    let mut recovered = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if app.upload(&token("acme", "u"), &body).await.status() == 201 {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "the service did not recover within 20 s");
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    problem(app.get("/nope").await, 404, "not_found").await;
    problem(app.get("/uploads").await, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/livez"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let made: Vec<uuid::Uuid> = [app.get("/livez").await, app.get("/livez").await]
        .iter()
        .map(|r| uuid::Uuid::parse_str(r.headers()["x-request-id"].to_str().unwrap()).unwrap())
        .collect();
    assert_eq!(made[0].get_version_num(), 4);
    assert_ne!(made[0], made[1]);
}

#[tokio::test]
async fn every_connection_is_served_whichever_worker_takes_it() {
    let app = spawn_app_on(&base_config().replace("[server]\n", "[server]\nworkers = 3\n")).await;
    let token = token("acme", "user-42");
    // More connections than workers, each kept open for several requests.
    let clients: Vec<reqwest::Client> = (0..8)
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap()
        })
        .collect();
    let body = json!({"filename": "a.pdf", "content_type": "application/pdf"});
    let statuses = futures_util::future::join_all(clients.iter().map(|client| async {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let response = client
                .post(app.url("/uploads"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    }))
    .await;
    assert!(statuses.iter().flatten().all(|&s| s == 201), "{statuses:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn browsers_of_allowed_origins_may_call() {
    let app = spawn_app().await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/uploads"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // Caches keep answers apart by the CORS request headers: said once, on each answer.
    const VARY: &str = "origin, access-control-request-method, access-control-request-headers";
    let varies = |response: &reqwest::Response| {
        response
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(varies(&preflight), [VARY]);
    let call = app
        .client
        .post(app.url("/uploads"))
        .header("origin", "https://app.example.com")
        .bearer_auth(token("acme", "u"))
        .json(&serde_json::json!({"filename": "a.png", "content_type": "image/png", "size": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 201);
    assert_eq!(
        call.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        call.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("ratelimit-policy")
    );
    assert_eq!(varies(&call), [VARY]);
    let other = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/uploads"))
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let app = spawn_app().await;
    let t = token("acme", "u");
    let client = app.client.clone();
    let url = app.url("/uploads");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(t)
            .json(&json!({"filename": "a.pdf", "content_type": "application/pdf"}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let base = app.base.clone();
    app.stop().await.expect("a clean stop");
    // Sent before the stop: it completes, before the stop or during the drain.
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 201);
    // After the stop nothing is accepted.
    assert!(reqwest::get(format!("{base}/livez")).await.is_err());
}

#[tokio::test]
async fn an_internal_failure_is_a_500_that_reveals_nothing() {
    // A provider handing out a 16 KiB session token makes every policy too large to sign.
    let huge_token = "T".repeat(16 * 1024);
    let credentials =
        s3_presigned_post::Credentials::new(ACCESS_KEY, SECRET_KEY, Some(huge_token)).unwrap();
    let app = spawn_app_with(
        &base_config(),
        Arc::new(upload_tickets::credentials::StaticSource(credentials)),
    )
    .await;
    let response = app
        .upload(
            &token("acme", "u"),
            &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
        )
        .await;
    let body = problem(response, 500, "internal").await;
    assert!(!body.to_string().contains("TTTT"), "{body}");
    assert!(
        !body["detail"].as_str().unwrap().contains("policy"),
        "{body}"
    );
}
