//! `GET /uploads/usage`: what the caller and their tenant have used of their limits,
//! and when each window turns, so that a UI can show it before a ticket is refused.

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;

use super::answers::{self, rfc3339};
use super::error::ApiError;
use super::extract::Authorized;
use super::reply::{Handled, Reply};
use super::state::AppState;
use crate::routes;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(routes::UPLOADS_USAGE, get(usage))
}

#[derive(Debug, Serialize)]
struct UsageAnswer {
    tenant: String,
    subject: String,
    /// Whether the counts are shared by every replica (Redis) or this one's.
    shared: bool,
    minute: Minute,
    day: Day,
    open_multipart_uploads: Counted,
}

#[derive(Debug, Serialize)]
struct Minute {
    resets_at: String,
    subject_tickets: Counted,
    tenant_tickets: Counted,
}

#[derive(Debug, Serialize)]
struct Day {
    resets_at: String,
    bytes: Counted,
}

/// A count and its limit (`null`: none), with what is left.
#[derive(Debug, Serialize)]
struct Counted {
    used: u64,
    limit: Option<u64>,
    remaining: Option<u64>,
}

impl Counted {
    fn new(used: u64, limit: Option<u64>) -> Self {
        Self {
            used,
            limit,
            remaining: limit.map(|l| l.saturating_sub(used)),
        }
    }
}

async fn usage(State(state): State<AppState>, who: Authorized) -> Reply {
    who.reply("usage_reported", report(&state, &who).await)
}

async fn report(state: &AppState, who: &Authorized) -> Handled {
    let quotas = who.rules().quotas;
    let used = state
        .limits
        .usage(who.rules().id.as_str(), &who.caller.subject, who.now)
        .await?;
    let since_epoch = who
        .now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(ApiError::internal)?
        .as_secs();
    let turn = |window: u64| {
        rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs((since_epoch / window + 1) * window))
    };
    let answer = UsageAnswer {
        tenant: who.rules().id.to_string(),
        subject: who.caller.subject.clone(),
        shared: state.limits.is_shared(),
        minute: Minute {
            resets_at: turn(60)?,
            subject_tickets: Counted::new(
                used.subject_this_minute,
                quotas.subject_per_minute.map(u64::from),
            ),
            tenant_tickets: Counted::new(
                used.tenant_this_minute,
                quotas.tenant_per_minute.map(u64::from),
            ),
        },
        day: Day {
            resets_at: turn(86_400)?,
            bytes: Counted::new(used.bytes_today, quotas.bytes_per_day),
        },
        open_multipart_uploads: Counted::new(used.open_uploads, quotas.open_uploads.map(u64::from)),
    };
    let prefix = who.rules().owner_prefix(&who.caller.subject)?;
    Ok((answers::json(StatusCode::OK, &answer)?, prefix))
}
