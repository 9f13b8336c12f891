//! Metrics count what happened; logs never hold a token or a secret.

use serde_json::json;

use crate::helpers::*;

/// The value of one series in Prometheus text, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_count_a_scripted_sequence() {
    let app = spawn_app().await;
    let scrape = || async { app.get("/metrics").await.text().await.unwrap() };
    let issued = r#"upload_tickets_tickets_issued_total{tenant="metered"}"#;
    let too_large = r#"upload_tickets_refusals_total{tenant="metered",code="file_too_large"}"#;
    let wrong_type =
        r#"upload_tickets_refusals_total{tenant="metered",code="content_type_not_allowed"}"#;
    let before = scrape().await;

    let t = token("metered", "u");
    for _ in 0..3 {
        assert_eq!(
            app.upload(
                &t,
                &json!({"filename": "a.txt", "content_type": "text/plain"})
            )
            .await
            .status(),
            201
        );
    }
    for _ in 0..2 {
        assert_eq!(
            app.upload(
                &t,
                &json!({"filename": "a.txt", "content_type": "text/plain", "size": 5000})
            )
            .await
            .status(),
            422
        );
    }
    assert_eq!(
        app.upload(
            &t,
            &json!({"filename": "a.png", "content_type": "image/png"})
        )
        .await
        .status(),
        422
    );

    let response = app.get("/metrics").await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let after = response.text().await.unwrap();
    assert_eq!(sample(&after, issued) - sample(&before, issued), 3.0);
    assert_eq!(sample(&after, too_large) - sample(&before, too_large), 2.0);
    assert_eq!(
        sample(&after, wrong_type) - sample(&before, wrong_type),
        1.0
    );
    assert!(
        after.contains("upload_tickets_http_request_duration_seconds_bucket{"),
        "{after}"
    );
    assert!(after.contains(r#"route="/uploads""#));
    // Made-up methods share one label: each would otherwise be a series kept for ever.
    for method in ["BREW", "WHEN"] {
        let response = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url("/uploads"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    let text = scrape().await;
    assert!(
        text.contains(r#"method="other",route="/uploads",status="405""#),
        "{text}"
    );
    assert!(!text.contains("BREW") && !text.contains("WHEN"), "{text}");
    assert!(
        after.contains("upload_tickets_log_lines_dropped_total "),
        "{after}"
    );
    assert!(
        sample(
            &after,
            r#"upload_tickets_credential_refreshes_total{result="ok"}"#
        ) >= 1.0
    );
    // Unauthenticated refusals are counted without a tenant.
    let none = r#"upload_tickets_refusals_total{tenant="none",code="invalid_token"}"#;
    let n = sample(&after, none);
    app.upload("garbage", &json!({"filename": "a"})).await;
    assert_eq!(sample(&scrape().await, none) - n, 1.0);
}

/// Runs the real binary with TRACE logs through a scripted sequence and reads every line.
#[test]
fn no_log_line_holds_a_token_or_a_secret() {
    let session_token = "FwoGZXIvYXdzSESSIONTOKENsecretvalue0123456789";
    let handle = "eyJhbGciOiJIUzI1NiJ9.HANDLEsecretvalue.c2lnbmF0dXJl";
    let aws_secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY";
    let server = Binary::start(
        &base_config(),
        &[
            ("RUST_LOG", "trace"),
            ("AWS_SECRET_ACCESS_KEY", aws_secret),
            ("AWS_SESSION_TOKEN", session_token),
        ],
    );
    let address = server.address.clone();

    let good = token("acme", "user-42");
    let mut expired_claims = claims("acme", "u");
    expired_claims["exp"] = json!(now() - 3600);
    let expired = hs256(&expired_claims);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://{address}/uploads");
        for (token, body) in [
            (
                good.as_str(),
                json!({"filename": "a.pdf", "content_type": "application/pdf"}),
            ),
            (
                good.as_str(),
                json!({"filename": "a.exe", "content_type": "application/x-msdownload"}),
            ),
            (
                expired.as_str(),
                json!({"filename": "a.pdf", "content_type": "application/pdf"}),
            ),
            ("not.a.token", json!({"filename": "a.pdf"})),
        ] {
            let _ = client
                .post(&url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
        }
        let ticket: serde_json::Value = client
            .post(&url)
            .bearer_auth(&good)
            .json(&json!({"filename": "b.pdf", "content_type": "application/pdf"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // A multipart handle is a capability: its routes log their template, not it.
        let _ = client
            .post(format!("http://{address}/uploads/multipart/{handle}/parts"))
            .bearer_auth(&good)
            .json(&json!({"part_numbers": [1]}))
            .send()
            .await
            .unwrap();
        // The ticket itself carries the session token: that is its job.
        assert_eq!(ticket["fields"]["X-Amz-Security-Token"], session_token);
    });
    let lines = server.stop_and_collect();

    assert!(
        lines.len() > 10,
        "too few log lines to judge: {}",
        lines.len()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"code\":\"ticket_issued\"")),
        "no access line"
    );
    let signature_of_good = good.rsplit('.').next().unwrap();
    for line in &lines {
        for (what, secret) in [
            ("the JWT", good.as_str()),
            ("the JWT's signature", signature_of_good),
            ("the expired JWT", expired.as_str()),
            ("the HMAC secret", SECRET),
            ("the AWS secret key", aws_secret),
            ("the session token", session_token),
            ("a multipart handle", handle),
        ] {
            assert!(!line.contains(secret), "{what} is in a log line: {line}");
        }
    }
}

#[tokio::test]
async fn tokens_naming_unknown_tenants_share_one_metric_label() {
    let app = spawn_app().await;
    let series = r#"upload_tickets_refusals_total{tenant="(unknown)",code="tenant_unknown"}"#;
    let before = sample(&app.get("/metrics").await.text().await.unwrap(), series);

    for n in 0..60 {
        let made_up = token(&format!("made-up-{n}-{}", uuid::Uuid::new_v4()), "u");
        let response = app
            .upload(
                &made_up,
                &json!({"filename": "a.txt", "content_type": "text/plain"}),
            )
            .await;
        assert_eq!(response.status(), 403);
    }

    let after = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !after.contains("made-up-"),
        "no label per made-up tenant: {}",
        after.lines().filter(|l| l.contains("made-up-")).count()
    );
    assert!(sample(&after, series) >= before + 60.0, "{after}");
}

#[tokio::test]
async fn an_admin_listener_serves_metrics_and_readiness_and_the_public_port_neither() {
    let config = base_config().replace("[server]\n", "[server]\nadmin_listen = \"127.0.0.1:0\"\n");
    let app = spawn_app_on(&config).await;
    let admin = app.admin.clone().expect("an admin listener");
    assert_ne!(admin, app.base);

    // Public: tickets, liveness and the spec; no metrics, no readiness.
    for (path, status) in [
        ("/livez", 200),
        ("/openapi.yaml", 200),
        ("/metrics", 404),
        ("/readyz", 404),
    ] {
        assert_eq!(app.get(path).await.status(), status, "public {path}");
    }
    let issued = app
        .upload(
            &token("acme", "u"),
            &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
        )
        .await;
    assert_eq!(issued.status(), 201);

    // Admin: probes and metrics, which count the public port's tickets; nothing else.
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{admin}{path}")).send();
    assert_eq!(get("/livez").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        sample(
            &metrics,
            r#"upload_tickets_tickets_issued_total{tenant="acme"}"#
        ) >= 1.0,
        "{metrics}"
    );
    let uploads = client
        .post(format!("{admin}/uploads"))
        .bearer_auth(token("acme", "u"))
        .json(&json!({"filename": "a.pdf", "content_type": "application/pdf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.status(), 404, "no tickets on the admin port");
}
