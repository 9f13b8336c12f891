//! The Rust peer: the same job as upload-tickets' `POST /uploads` for bench/bench.toml's
//! tenant (verify an HS256 JWT, the scope and tenant, the same rules, the same key scheme,
//! sign a presigned POST), written the way a Rust team would for itself — axum,
//! jsonwebtoken and `rust-s3`'s `presign_post`; no access log, no metrics, no limits.
//! The baseline of issue #31: a ticket of ours is to cost at most 0.75x of one of these.
//!
//! Run with: `BENCH_JWT_SECRET=... upload-tickets-rust-peer 127.0.0.1:18083`

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use s3::creds::Credentials;
use s3::post_policy::{PostPolicy, PostPolicyField, PostPolicyValue};
use s3::{Bucket, Region};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

const MIN_SIZE: u64 = 1;
const MAX_SIZE: u64 = 26_214_400;
const DEFAULT_EXPIRES_IN: u32 = 300;
const MAX_EXPIRES_IN: u32 = 3600;

struct Peer {
    key: DecodingKey,
    validation: Validation,
    bucket: Box<Bucket>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    #[serde(default)]
    scope: String,
}

#[derive(Deserialize)]
struct Ask {
    filename: String,
    content_type: String,
    size: Option<u64>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    expires_in: Option<u32>,
}

#[derive(Serialize)]
struct Ticket {
    method: &'static str,
    url: String,
    fields: HashMap<String, String>,
    key: String,
    bucket: &'static str,
    expires_at: String,
    min_size: u64,
    max_size: u64,
}

fn problem(status: StatusCode, code: &str) -> Response {
    let body = serde_json::json!({ "type": format!("urn:upload-tickets:problem:{code}"), "status": status.as_u16(), "code": code });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn upload(
    State(peer): State<Arc<Peer>>,
    headers: HeaderMap,
    Json(ask): Json<Ask>,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Ok(claims) = jsonwebtoken::decode::<Claims>(token, &peer.key, &peer.validation) else {
        return problem(StatusCode::UNAUTHORIZED, "invalid_token");
    };
    let claims = claims.claims;
    if !claims.scope.split(' ').any(|s| s == "uploads:write") {
        return problem(StatusCode::FORBIDDEN, "insufficient_scope");
    }
    if claims.tenant != "bench" {
        return problem(StatusCode::FORBIDDEN, "tenant_unknown");
    }
    if ask.filename.is_empty() {
        return problem(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let allowed = ask.content_type == "application/pdf"
        || ask
            .content_type
            .strip_prefix("image/")
            .is_some_and(|s| !s.is_empty() && !s.contains('/'));
    if !allowed {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "content_type_not_allowed");
    }
    if ask
        .size
        .is_some_and(|size| !(MIN_SIZE..=MAX_SIZE).contains(&size))
    {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "file_too_large");
    }
    let mut policy = PostPolicy::new(
        ask.expires_in
            .unwrap_or(DEFAULT_EXPIRES_IN)
            .min(MAX_EXPIRES_IN),
    );
    let safe_name: String = ask
        .filename
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches(['.', '_'])
        .chars()
        .take(200)
        .collect();
    let key = format!(
        "bench/{}/{}/{}",
        claims.sub,
        uuid::Uuid::new_v4(),
        safe_name
    );
    let (min, max) = ask.size.map_or((MIN_SIZE, MAX_SIZE), |size| (size, size));
    let mut conditions = vec![
        (
            PostPolicyField::Key,
            PostPolicyValue::Exact(Cow::from(key.as_str())),
        ),
        (
            PostPolicyField::ContentLengthRange,
            PostPolicyValue::Range(min as u32, max as u32),
        ),
        (
            PostPolicyField::ContentType,
            PostPolicyValue::Exact(Cow::from(ask.content_type.as_str())),
        ),
        (
            PostPolicyField::Acl,
            PostPolicyValue::Exact(Cow::from("private")),
        ),
        (
            PostPolicyField::SuccessActionStatus,
            PostPolicyValue::Exact(Cow::from("201")),
        ),
    ];
    for (name, value) in &ask.metadata {
        if name.to_ascii_lowercase() != "album" {
            return problem(StatusCode::UNPROCESSABLE_ENTITY, "metadata_not_allowed");
        }
        conditions.push((
            PostPolicyField::AmzMeta(Cow::from(name.to_ascii_lowercase())),
            PostPolicyValue::Exact(Cow::from(value.as_str())),
        ));
    }
    for (field, value) in conditions {
        policy = match policy.condition(field, value) {
            Ok(policy) => policy,
            Err(_) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
    }
    let Ok(post) = peer.bucket.presign_post(policy).await else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    };
    let expires_at = post
        .expiration
        .0
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let ticket = Ticket {
        method: "POST",
        url: post.url,
        fields: post.fields,
        key,
        bucket: "bench-uploads",
        expires_at,
        min_size: min,
        max_size: max,
    };
    (
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(ticket),
    )
        .into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18083".to_owned());
    let secret = std::env::var("BENCH_JWT_SECRET")?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["https://id.bench/"]);
    validation.set_audience(&["upload-tickets"]);
    let credentials = Credentials::new(
        Some("AKIAIOSFODNN7EXAMPLE"),
        Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        None,
        None,
        None,
    )?;
    let bucket = Bucket::new("bench-uploads", Region::UsEast1, credentials)?;
    let peer = Arc::new(Peer {
        key: DecodingKey::from_secret(secret.as_bytes()),
        validation,
        bucket,
    });
    let app = Router::new()
        .route("/uploads", post(upload))
        .with_state(peer);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
