//! JWT verification over HTTP: every refusal is 401 `invalid_token` with
//! `WWW-Authenticate`, and no ticket.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::helpers::*;

async fn refused(app: &TestApp, token: &str) {
    let response = app
        .upload(
            token,
            &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
        )
        .await;
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer error=\"invalid_token\""),
    );
    let body = problem(response, 401, "invalid_token").await;
    assert!(
        !body.to_string().contains(token),
        "the problem echoes the token"
    );
}

async fn accepted(app: &TestApp, token: &str) {
    let response = app
        .upload(
            token,
            &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

fn b64(bytes: &[u8]) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

#[tokio::test]
async fn hs256_tokens_are_checked_claim_by_claim() {
    let app = spawn_app().await;
    accepted(&app, &token("acme", "u")).await;

    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims("acme", "u");
        edit(&mut c);
        hs256(&c)
    };
    // Audience lists containing ours are fine.
    accepted(&app, &with(&|c| c["aud"] = json!(["other", AUDIENCE]))).await;
    // Leeway: expired 3 s ago is still inside the 5 s leeway.
    accepted(&app, &with(&|c| c["exp"] = json!(now() - 3))).await;

    for (what, token) in [
        ("expired", with(&|c| c["exp"] = json!(now() - 60))),
        ("not yet valid", with(&|c| c["nbf"] = json!(now() + 600))),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.test/")),
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("someone-else")),
        ),
        (
            "audience list without ours",
            with(&|c| c["aud"] = json!(["a", "b"])),
        ),
        (
            "missing exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "exp as a string",
            with(&|c| c["exp"] = json!((now() + 600).to_string())),
        ),
        (
            "nbf as a string",
            with(&|c| c["nbf"] = json!((now() + 600).to_string())),
        ),
        (
            "missing sub",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        (
            "missing tenant",
            with(&|c| {
                c.as_object_mut().unwrap().remove("tenant");
            }),
        ),
        (
            "tenant of the wrong type",
            with(&|c| c["tenant"] = json!(["acme"])),
        ),
        ("tenant as a number", with(&|c| c["tenant"] = json!(7))),
        ("sub as a number", with(&|c| c["sub"] = json!(42))),
        (
            "scope of the wrong type",
            with(&|c| c["scope"] = json!({"a": 1})),
        ),
    ] {
        let response = app
            .upload(
                &token,
                &json!({"filename": "a.pdf", "content_type": "application/pdf"}),
            )
            .await;
        assert_eq!(response.status(), 401, "{what}");
        problem(response, 401, "invalid_token").await;
    }
}

#[tokio::test]
async fn forged_and_mangled_tokens_are_refused() {
    let app = spawn_app().await;
    let good = token("acme", "u");
    let parts: Vec<&str> = good.split('.').collect();

    // alg: none, with and without a signature.
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    refused(&app, &format!("{none_header}.{}.", parts[1])).await;
    refused(&app, &format!("{none_header}.{}.{}", parts[1], parts[2])).await;
    // Signed with another secret.
    let other = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims("acme", "u"),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes"),
    )
    .unwrap();
    refused(&app, &other).await;
    // Payload swapped for another tenant's, signature kept.
    let forged_payload = b64(claims("globex", "u").to_string().as_bytes());
    refused(&app, &format!("{}.{forged_payload}.{}", parts[0], parts[2])).await;
    // Truncated, padded, garbage.
    refused(&app, &good[..good.len() - 5]).await;
    refused(&app, &format!("{good}AAAA")).await;
    refused(&app, &format!("{good}.x")).await;
    refused(&app, "not-a-jwt").await;
    refused(&app, "a.b.c").await;
    refused(&app, "!!!.@@@.###").await;
    // An RS256 token where only HS256 is allowed.
    refused(
        &app,
        &sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key("rsa-a"),
            None,
        ),
    )
    .await;
    // jku / x5u headers are ignored, never fetched: the token still needs our key.
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.jku = Some("http://127.0.0.1:1/jwks.json".to_owned());
    header.x5u = Some("http://127.0.0.1:1/cert.pem".to_owned());
    accepted(
        &app,
        &jsonwebtoken::encode(
            &header,
            &claims("acme", "u"),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap(),
    )
    .await;
    // Duplicate claims, correctly signed: refused, as parsers disagree on which one counts.
    let dup_payload = b64(format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"u","tenant":"globex","tenant":"acme","scope":"uploads:write","exp":{}}}"#, now() + 600).as_bytes());
    let signing_input = format!("{}.{dup_payload}", parts[0]);
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    refused(&app, &format!("{signing_input}.{signature}")).await;
}

#[tokio::test]
async fn missing_malformed_and_huge_authorization_is_refused() {
    let app = spawn_app().await;
    let body = json!({"filename": "a.pdf", "content_type": "application/pdf"});
    let post = || app.client.post(app.url("/uploads")).json(&body);
    for request in [
        post(),
        post().header("authorization", "Basic dXNlcjpwYXNz"),
        post().header("authorization", "Bearer"),
        post().header("authorization", "Bearer "),
        post().header("authorization", format!("Bearer {}", "a".repeat(9000))),
        post().header(
            "authorization",
            format!("Bearer {}.{}.{}", "a".repeat(4000), "b".repeat(4000), "c"),
        ),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key("www-authenticate"));
    }
    // A 40 KiB token reaches the verifier (the head limit is 64 KiB, near gateways')
    // and gets the same 401 as any bad token; only a head over the limit is cut off by
    // the HTTP layer: a 200 KiB header is a 431.
    let response = post()
        .header("authorization", format!("Bearer {}", "a".repeat(40 << 10)))
        .send()
        .await
        .unwrap();
    problem(response, 401, "invalid_token").await;
    // A fresh connection: a reused one has a read buffer already grown by the last head.
    for header in ["authorization", "x-padding"] {
        let response = reqwest::Client::new()
            .post(app.url("/uploads"))
            .json(&body)
            .header(header, format!("Bearer {}", "a".repeat(200 << 10)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 431, "{header}");
    }
}

fn rs_config(key_source: &str, algorithms: &str) -> String {
    base_config()
        .replace(
            "algorithms = [\"HS256\"]",
            &format!("algorithms = {algorithms}"),
        )
        .replace(&format!("hmac_secret_env = \"{SECRET_ENV}\""), key_source)
}

async fn spawn(config: &str) -> TestApp {
    spawn_app_on(config).await
}

#[tokio::test]
async fn rs256_with_a_pem_key_and_no_algorithm_confusion() {
    let pem = fixture("jwt/rsa-a-public.pem");
    let app = spawn(&rs_config(
        &format!("public_key_pem_file = {:?}", pem.to_str().unwrap()),
        "[\"RS256\"]",
    ))
    .await;
    accepted(
        &app,
        &sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key("rsa-a"),
            None,
        ),
    )
    .await;
    refused(
        &app,
        &sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key("rsa-b"),
            None,
        ),
    )
    .await;
    // HS256 signed with the RSA public key as the secret: the classic confusion attack.
    let public_pem = std::fs::read(&pem).unwrap();
    refused(
        &app,
        &sign(
            Algorithm::HS256,
            &claims("acme", "u"),
            &EncodingKey::from_secret(&public_pem),
            None,
        ),
    )
    .await;
    // PS256 is not in the allow-list even though the key could verify it.
    refused(
        &app,
        &sign(
            Algorithm::PS256,
            &claims("acme", "u"),
            &rsa_key("rsa-a"),
            None,
        ),
    )
    .await;
}

#[tokio::test]
async fn ec_and_ed25519_pem_keys_work_and_families_do_not_mix() {
    let ec = fixture("jwt/ec-public.pem");
    let app = spawn(&rs_config(
        &format!("public_key_pem_file = {:?}", ec.to_str().unwrap()),
        "[\"ES256\"]",
    ))
    .await;
    let ec_key =
        EncodingKey::from_ec_pem(&std::fs::read(fixture("jwt/ec-private.pem")).unwrap()).unwrap();
    accepted(
        &app,
        &sign(Algorithm::ES256, &claims("acme", "u"), &ec_key, None),
    )
    .await;
    refused(
        &app,
        &sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key("rsa-a"),
            None,
        ),
    )
    .await;

    let ed = fixture("jwt/ed25519-public.pem");
    let app = spawn(&rs_config(
        &format!("public_key_pem_file = {:?}", ed.to_str().unwrap()),
        "[\"EdDSA\"]",
    ))
    .await;
    let ed_key =
        EncodingKey::from_ed_pem(&std::fs::read(fixture("jwt/ed25519-private.pem")).unwrap())
            .unwrap();
    accepted(
        &app,
        &sign(Algorithm::EdDSA, &claims("acme", "u"), &ed_key, None),
    )
    .await;
    refused(
        &app,
        &sign(Algorithm::ES256, &claims("acme", "u"), &ec_key, None),
    )
    .await;
}

/// The JWKS body (none: the provider answers 503), the number of fetches, and whether
/// the provider hangs.
type JwksState = (Arc<Mutex<Option<String>>>, Arc<Mutex<u32>>, Arc<AtomicBool>);

/// A stand-in identity provider serving a JWKS that the test can change or break.
pub(crate) struct Jwks {
    pub(crate) addr: SocketAddr,
    body: Arc<Mutex<Option<String>>>,
    hits: Arc<Mutex<u32>>,
    hang: Arc<AtomicBool>,
    _server: tokio::task::JoinHandle<()>,
}

impl Jwks {
    pub(crate) async fn start(file: &str) -> Self {
        let body = Arc::new(Mutex::new(Some(
            std::fs::read_to_string(fixture(&format!("jwt/{file}"))).unwrap(),
        )));
        let hits = Arc::new(Mutex::new(0));
        let hang = Arc::new(AtomicBool::new(false));
        let state = (Arc::clone(&body), Arc::clone(&hits), Arc::clone(&hang));
        let router = Router::new()
            .route(
                "/jwks.json",
                get(|State((body, hits, hang)): State<JwksState>| async move {
                    *hits.lock().unwrap() += 1;
                    if hang.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    match body.lock().unwrap().clone() {
                        Some(text) => (StatusCode::OK, text),
                        None => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    }
                }),
            )
            .with_state(state);
        let (addr, server) = crate::helpers::serve_loopback(router).await;
        Self {
            addr,
            body,
            hits,
            hang,
            _server: server,
        }
    }

    fn serve(&self, file: Option<&str>) {
        *self.body.lock().unwrap() =
            file.map(|f| std::fs::read_to_string(fixture(&format!("jwt/{f}"))).unwrap());
    }

    /// Makes the provider accept requests and never answer.
    fn hang(&self) {
        self.hang.store(true, Ordering::SeqCst);
    }

    fn hits(&self) -> u32 {
        *self.hits.lock().unwrap()
    }
}

fn jwks_config(jwks: &Jwks, min_interval: u64) -> String {
    rs_config(
        &format!(
            "jwks_url = \"http://{}/jwks.json\"\njwks_min_refresh_interval_seconds = {min_interval}",
            jwks.addr
        ),
        "[\"RS256\"]",
    )
}

#[tokio::test]
async fn jwks_keys_rotate_and_unknown_kids_refresh_at_most_once_per_interval() {
    let jwks = Jwks::start("jwks-rsa-a.json").await;
    let app = spawn(&jwks_config(&jwks, 1)).await;
    let a = sign(
        Algorithm::RS256,
        &claims("acme", "u"),
        &rsa_key("rsa-a"),
        Some("rsa-a"),
    );
    let b = sign(
        Algorithm::RS256,
        &claims("acme", "u"),
        &rsa_key("rsa-b"),
        Some("rsa-b"),
    );
    accepted(&app, &a).await;
    // rsa-b is not published yet: unknown kid.
    refused(&app, &b).await;

    // The provider rotates: rsa-b appears. After the minimum interval, an unknown kid
    // triggers a refresh and the new key works.
    jwks.serve(Some("jwks-both.json"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    accepted(&app, &b).await;
    accepted(&app, &a).await;

    // Made-up kids do not turn into a flood of fetches.
    let before = jwks.hits();
    for i in 0..20 {
        let forged = sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key("rsa-a"),
            Some(&format!("made-up-{i}")),
        );
        refused(&app, &forged).await;
    }
    assert!(
        jwks.hits() - before <= 1,
        "{} fetches for 20 unknown kids",
        jwks.hits() - before
    );
}

#[tokio::test]
async fn when_the_identity_provider_is_down_cached_keys_keep_working() {
    let jwks = Jwks::start("jwks-rsa-a.json").await;
    let app = spawn(&jwks_config(&jwks, 0)).await;
    let a = sign(
        Algorithm::RS256,
        &claims("acme", "u"),
        &rsa_key("rsa-a"),
        Some("rsa-a"),
    );
    accepted(&app, &a).await;
    jwks.serve(None);
    // An unknown kid makes it try (and fail) to refresh; the cached key still serves.
    refused(
        &app,
        &sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key("rsa-b"),
            Some("rsa-b"),
        ),
    )
    .await;
    accepted(&app, &a).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn when_the_identity_provider_hangs_requests_do_not() {
    let jwks = Jwks::start("jwks-rsa-a.json").await;
    let app = spawn(&jwks_config(&jwks, 0)).await;
    let a = sign(
        Algorithm::RS256,
        &claims("acme", "u"),
        &rsa_key("rsa-a"),
        Some("rsa-a"),
    );
    accepted(&app, &a).await;
    jwks.hang();
    // Cached keys serve without touching the provider.
    accepted(&app, &a).await;
    // An unknown kid waits for the refresh only briefly (the request timeout is 5 s)
    // and gets its 401, not a timeout; concurrent ones do not pile up either.
    let unknown = sign(
        Algorithm::RS256,
        &claims("acme", "u"),
        &rsa_key("rsa-b"),
        Some("rsa-b"),
    );
    let attempts = (0..8).map(|_| refused(&app, &unknown));
    futures_util::future::join_all(attempts).await;
    accepted(&app, &a).await;
    assert!(jwks.hits() >= 2, "the unknown kid did try the provider");
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn without_any_jwks_the_service_is_not_ready() {
    let jwks = Jwks::start("jwks-rsa-a.json").await;
    jwks.serve(None);
    let app = spawn(&jwks_config(&jwks, 0)).await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["checks"]["token_keys"], false);
    refused(
        &app,
        &sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key("rsa-a"),
            Some("rsa-a"),
        ),
    )
    .await;
    // The provider comes back: the next unknown-kid lookup loads the keys.
    jwks.serve(Some("jwks-rsa-a.json"));
    accepted(
        &app,
        &sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key("rsa-a"),
            Some("rsa-a"),
        ),
    )
    .await;
}

#[tokio::test]
async fn a_warm_token_cache_lets_no_mangled_or_forged_token_through() {
    let app = spawn_app().await;
    let good = token("acme", "u");
    accepted(&app, &good).await;
    accepted(&app, &good).await;
    let parts: Vec<&str> = good.split('.').collect();
    // Every position of the token, changed.
    for at in (0..good.len()).step_by(7) {
        let mut bytes = good.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        if flipped != good {
            refused(&app, &flipped).await;
        }
    }
    // The same claims signed with another key; another tenant's payload, signature kept.
    let resigned = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims("acme", "u"),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes"),
    )
    .unwrap();
    refused(&app, &resigned).await;
    let forged_payload = b64(claims("globex", "u").to_string().as_bytes());
    refused(&app, &format!("{}.{forged_payload}.{}", parts[0], parts[2])).await;
    accepted(&app, &good).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("upload_tickets_token_cache_hits_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_cached_token_dies_with_the_jwks_key_that_verified_it() {
    let jwks = Jwks::start("jwks-both.json").await;
    let app = spawn(&jwks_config(&jwks, 1)).await;
    let sign_with = |key: &str| {
        sign(
            Algorithm::RS256,
            &claims("acme", "u"),
            &rsa_key(key),
            Some(key),
        )
    };
    let (a, b) = (sign_with("rsa-a"), sign_with("rsa-b"));
    accepted(&app, &a).await;
    accepted(&app, &a).await;
    // The provider drops rsa-a; the next refresh (here caused by an unknown kid) must
    // take the cached token with it.
    jwks.serve(Some("jwks-rsa-b.json"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = sign(
        Algorithm::RS256,
        &claims("acme", "u"),
        &rsa_key("rsa-b"),
        Some("not-yet"),
    );
    refused(&app, &unknown).await;
    refused(&app, &a).await;
    accepted(&app, &b).await;
}

/// Two generations of secrets, and the configuration that rotates from one to the other.
mod rotation {
    use std::sync::Arc;

    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;
    use upload_tickets::store::memory::MemoryStore;

    use crate::fake_store::{InProcess, in_process_on, tenants_toml};
    use crate::helpers::*;

    const OLD_JWT: &str = "the-old-jwt-secret-of-at-least-32-bytes";
    const NEW_JWT: &str = "the-new-jwt-secret-of-at-least-32-bytes";
    const OLD_HANDLE: &str = "the-old-handle-secret-of-32-bytes-or-more";
    const NEW_HANDLE: &str = "the-new-handle-secret-of-32-bytes-or-more";

    fn token_signed_with(secret: &str) -> String {
        sign(
            Algorithm::HS256,
            &claims("big", "alice"),
            &EncodingKey::from_secret(secret.as_bytes()),
            None,
        )
    }

    /// The service with `jwt` and `handle` secrets (each current, then previous).
    async fn service(
        jwt: (&str, Option<&str>),
        handle: (&str, Option<&str>),
        store: &Arc<MemoryStore>,
    ) -> InProcess {
        let mut toml =
            tenants_toml().replace("[server]\n", "[server]\nhandle_secret_env = \"H_NOW\"\n");
        if handle.1.is_some() {
            toml = toml.replace(
                "[server]\n",
                "[server]\nhandle_previous_secret_env = \"H_BEFORE\"\n",
            );
        }
        if jwt.1.is_some() {
            toml = toml.replace(
                &format!("hmac_secret_env = \"{SECRET_ENV}\""),
                &format!(
                    "hmac_secret_env = \"{SECRET_ENV}\"\nhmac_previous_secret_env = \"J_BEFORE\""
                ),
            );
        }
        let mut env = vec![(SECRET_ENV, jwt.0), ("H_NOW", handle.0)];
        env.extend(jwt.1.map(|s| ("J_BEFORE", s)));
        env.extend(handle.1.map(|s| ("H_BEFORE", s)));
        let source = Arc::new(crate::helpers::Switchable::new(true));
        in_process_on(&toml, &env, source, Arc::clone(store)).await
    }

    #[tokio::test]
    async fn rotating_secrets_keeps_the_previous_ones_tokens_and_open_uploads_until_dropped() {
        let store = Arc::new(MemoryStore::new());
        let before = service((OLD_JWT, None), (OLD_HANDLE, None), &store).await;
        let old_token = token_signed_with(OLD_JWT);
        let started = before.start(&old_token, 11 << 20).await;
        let handle = started["handle"].as_str().unwrap();
        let parts = format!("/uploads/multipart/{handle}/parts");

        // Rotating: the new secrets sign, the previous ones still verify.
        let rotating = service(
            (NEW_JWT, Some(OLD_JWT)),
            (NEW_HANDLE, Some(OLD_HANDLE)),
            &store,
        )
        .await;
        let new_token = token_signed_with(NEW_JWT);
        for token in [&old_token, &new_token] {
            let (status, body) = rotating
                .post(&parts, token, json!({"part_numbers": [1]}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, _) = rotating
            .post(
                &parts,
                &token_signed_with("a-third-secret-of-at-least-32-bytes!!"),
                json!({"part_numbers": [1]}),
            )
            .await;
        assert_eq!(status, 401);
        let fresh = rotating.start(&new_token, 11 << 20).await;
        let fresh_handle = fresh["handle"].as_str().unwrap();
        let (status, body) = rotating
            .post(
                &format!("/uploads/multipart/{handle}/complete"),
                &new_token,
                rotating.upload_parts(&started, 0),
            )
            .await;
        assert_eq!(
            status, 200,
            "an upload started before the rotation completes: {body}"
        );

        // Rotated: the previous secrets are dropped, and with them what they signed.
        let after = service((NEW_JWT, None), (NEW_HANDLE, None), &store).await;
        let (status, _) = after
            .post(
                &format!("/uploads/multipart/{fresh_handle}/parts"),
                &old_token,
                json!({"part_numbers": [1]}),
            )
            .await;
        assert_eq!(status, 401, "the old secret's tokens");
        let (status, body) = after
            .post(
                &format!("/uploads/multipart/{fresh_handle}/parts"),
                &new_token,
                json!({"part_numbers": [1]}),
            )
            .await;
        assert_eq!(status, 200, "handles signed while rotating: {body}");
        let second = before.start(&old_token, 11 << 20).await;
        let old_handle = second["handle"].as_str().unwrap();
        let (status, body) = after
            .post(
                &format!("/uploads/multipart/{old_handle}/parts"),
                &new_token,
                json!({"part_numbers": [1]}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("upload_not_found")),
            "{body}"
        );
    }

    #[test]
    fn a_previous_secret_needs_a_current_one_and_its_length() {
        let load = |toml: String, env: &[(&str, &str)]| {
            let settings =
                upload_tickets::config::Settings::load(&upload_tickets::config::Source::Text(toml))
                    .unwrap();
            upload_tickets::config::Config::from_settings_with_env(settings, &|name| {
                env.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
            .err()
            .map(|e| e.to_string())
        };
        let toml = tenants_toml().replace(
            "[server]\n",
            "[server]\nhandle_previous_secret_env = \"H_BEFORE\"\n",
        );
        let error = load(toml, &[(SECRET_ENV, SECRET), ("H_BEFORE", OLD_HANDLE)]).unwrap();
        assert!(error.contains("handle_previous_secret_env"), "{error}");
        let toml = tenants_toml().replace(
            &format!("hmac_secret_env = \"{SECRET_ENV}\""),
            &format!("hmac_secret_env = \"{SECRET_ENV}\"\nhmac_previous_secret_env = \"J_BEFORE\""),
        );
        let error = load(toml, &[(SECRET_ENV, SECRET), ("J_BEFORE", "short")]).unwrap();
        assert!(error.contains("hmac_previous_secret_env"), "{error}");
    }
}
