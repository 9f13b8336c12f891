//! The browser demo (`server.demo = true`, as in `dev`): `GET /demo`, a page that uploads
//! a file with the typed client (`GET /demo/client.js`), and `GET /demo/objects`, what
//! the caller has uploaded, with download links, so the page can show that the upload
//! landed. All are 404 while the demo is off.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts as _, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde::Serialize;

use super::access::TenantLabel;
use super::answers::{self, rfc3339};
use super::error::ApiError;
use super::extract::Authorized;
use super::reply::{Handled, Reply};
use super::state::AppState;
use crate::auth::IssuedToken;
use crate::routes;
use crate::upload;
use crate::webhook::received::{EventLog, ReceivedEvent};
use s3_presigned_post::{BucketName, ObjectKey, UrlRequest, Validity};

/// The page; `{{DEMO_TOKEN}}` is where `dev` puts its token.
const DEMO_HTML: &str = include_str!("../../static/demo.html");

/// The typed client (`clients/typescript`, as tsc builds it), which the page imports;
/// a test holds it to a fresh build.
const CLIENT_JS: &str = include_str!("../../static/client.js");

/// At most this many objects are listed.
const LISTED: u16 = 50;

/// How long a download link works.
const DOWNLOAD_VALIDITY: Duration = Duration::from_secs(300);

/// Whether the demo is served, and with which token.
#[derive(Debug, Clone, Default)]
pub enum Demo {
    /// `/demo` and `/demo/objects` are 404.
    #[default]
    Off,
    /// Served.
    On {
        /// What the page's token field holds, if anything.
        token: Option<IssuedToken>,
        /// What `dev`'s own webhook receiver got, shown by the page (`dev` only).
        events: Option<Arc<EventLog>>,
    },
}

/// Whether `host` (a `Host` header: a name or address, maybe a port) may see the demo:
/// loopback names, and the hosts of the configured CORS origins. Anything else is a page
/// that rebound its own DNS name to this machine (DNS rebinding), which must not read
/// the page's token.
fn allowed_host(host: Option<&HeaderValue>, origins: &[String]) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // [::1]:8080
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.to_ascii_lowercase();
    if matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1") {
        return true;
    }
    origins.iter().any(|origin| {
        url::Url::parse(origin)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
            })
            .is_some_and(|h| h == name)
    })
}

/// The demo routes: always routed, so that other methods get 405 as the spec says.
/// `origins` are the configured CORS origins, whose hosts may see the demo too.
pub(super) fn router(demo: &Demo, origins: &[String]) -> Router<AppState> {
    let page = match demo {
        Demo::Off => None,
        // A JWT is base64url and dots: nothing in it needs escaping in HTML.
        Demo::On { token, events } => Some(
            DEMO_HTML
                .replace(
                    "{{DEMO_TOKEN}}",
                    token.as_ref().map_or("", |t| t.0.as_str()),
                )
                .replace("{{EVENTS}}", if events.is_some() { "on" } else { "off" }),
        ),
    };
    let on = page.is_some();
    let log = match demo {
        Demo::On { events, .. } => events.clone(),
        Demo::Off => None,
    };
    // What the tenant's webhook got, for the page; 404 unless `dev` runs a receiver.
    let events = move |State(state): State<AppState>, mut parts: Parts| async move {
        match Authorized::from_request_parts(&mut parts, &state).await {
            Ok(who) => match &log {
                Some(log) => who
                    .reply("events_listed", received(log, &who))
                    .into_response(),
                None => Reply::refused(
                    TenantLabel::Caller(Arc::clone(&who.caller)),
                    ApiError::NotFound,
                )
                .into_response(),
            },
            Err(rejection) => rejection,
        }
    };
    let origins = origins.to_vec();
    let page = move |headers: axum::http::HeaderMap| async move {
        match allowed_host(headers.get(header::HOST), &origins) {
            true => page.map(Html).ok_or(ApiError::NotFound),
            false => Err(ApiError::NotFound),
        }
    };
    // The token first, as on every route that takes one (and as the spec says: a
    // request without one is a 401); then whether the demo is on.
    let objects = move |State(state): State<AppState>, mut parts: Parts| async move {
        match Authorized::from_request_parts(&mut parts, &state).await {
            Ok(who) if on => who
                .reply("objects_listed", listing(&state, &who).await)
                .into_response(),
            Ok(who) => Reply::refused(
                TenantLabel::Caller(Arc::clone(&who.caller)),
                ApiError::NotFound,
            )
            .into_response(),
            Err(rejection) => rejection,
        }
    };
    let client = move || async move {
        let javascript = HeaderValue::from_static("text/javascript; charset=utf-8");
        match on {
            true => Ok(([(header::CONTENT_TYPE, javascript)], CLIENT_JS)),
            false => Err(ApiError::NotFound),
        }
    };
    Router::new()
        .route(routes::DEMO, get(page))
        .route(routes::DEMO_CLIENT, get(client))
        .route(routes::DEMO_OBJECTS, get(objects))
        .route(routes::DEMO_EVENTS, get(events))
}

/// The deliveries `dev`'s receiver got about the caller's tenant, newest first.
fn received(log: &EventLog, who: &Authorized) -> Handled {
    #[derive(Serialize)]
    struct Received {
        events: Vec<ReceivedEvent>,
    }
    let events = log.of_tenant(who.tenant.id());
    let answer = answers::json(StatusCode::OK, &Received { events })?;
    Ok((answer, String::new()))
}

#[derive(Debug, Serialize)]
struct Listing {
    bucket: String,
    prefix: String,
    objects: Vec<Listed>,
}

#[derive(Debug, Serialize)]
struct Listed {
    key: String,
    size: u64,
    last_modified: Option<String>,
    download_url: String,
}

/// The caller's own objects (under their owner prefix), with a short-lived GET link each.
async fn listing(state: &AppState, who: &Authorized) -> Handled {
    let prefix = who.rules().owner_prefix(&who.caller.subject)?;
    let bucket = who.rules().bucket.as_str();
    let found = state.store.list_objects(bucket, &prefix, LISTED).await?;
    let credentials = upload::credentials(&state.deps(), who.now)?;
    let wanted = Validity::new(DOWNLOAD_VALIDITY).map_err(ApiError::internal)?;
    let validity = upload::usable_validity(wanted, &credentials, who.now, None)?;
    let mut objects = Vec::with_capacity(found.len());
    for object in found {
        let request = ObjectKey::new(object.key.as_str())
            .and_then(|key| UrlRequest::get_object(BucketName::new(bucket)?, key))
            .map(|request| request.with_validity(validity))
            .map_err(ApiError::internal)?;
        let signed = state
            .presigner
            .presign_url(&credentials.credentials, &request, who.now)
            .map_err(ApiError::internal)?;
        objects.push(Listed {
            last_modified: object.last_modified.map(rfc3339).transpose()?,
            key: object.key,
            size: object.size,
            download_url: signed.url,
        });
    }
    let listing = Listing {
        bucket: bucket.to_owned(),
        prefix: prefix.clone(),
        objects,
    };
    Ok((answers::json(StatusCode::OK, &listing)?, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_answers_loopback_names_and_configured_origins_only() {
        let origins = vec!["https://app.example.com".to_owned()];
        let host = |h: &str| HeaderValue::from_str(h).ok();
        for allowed in [
            "localhost:8080",
            "LOCALHOST",
            "127.0.0.1:8080",
            "[::1]:8080",
            "app.example.com",
            "app.example.com:443",
        ] {
            assert!(allowed_host(host(allowed).as_ref(), &origins), "{allowed}");
        }
        for refused in [
            "attacker.example:8080",
            "127.0.0.1.attacker.example",
            "localhost.attacker.example:8080",
            "example.com",
            "192.168.1.10:8080",
            "",
        ] {
            assert!(!allowed_host(host(refused).as_ref(), &origins), "{refused}");
        }
        assert!(!allowed_host(None, &origins), "no Host header");
    }
}
