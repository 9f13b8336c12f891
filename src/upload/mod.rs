//! The life of an upload, without HTTP: tickets, multipart uploads (start, part URLs,
//! completion, abort) and the completion check.
//!
//! Plain functions over what they are handed: the dependencies ([`Deps`]: the store, the
//! limits, the handle key, the presigner, the credentials) and the request's [`Actor`]
//! (the verified caller, their tenant, and `now`, read once from the clock). They answer
//! data and their own [`UploadError`]; the front doors (`http::uploads` and friends, the
//! Uppy adapters) turn both into HTTP, and `http/error.rs` alone gives errors a status.
//!
//! # Layout
//! - [`ticket`]: POST forms and PUT URLs, counted and signed.
//! - [`multipart`]: multipart uploads, the service's layout or the client's (Uppy's).
//! - [`urls`]: the URLs on the store a client uses: parts, `ListParts`, the object.
//! - [`parts`]: the pure checks of a part list against its upload and the store's.
//! - [`checksums`]: a multipart upload's part and whole-object checksums.
//! - [`check`]: the client's completion call: a stored object's report.
//! - [`found`]: an upload found (by the client, a multipart completion or the sweeper):
//!   verified against its tickets, acted on, settled and reported once.
//! - [`verify`]: the pure verdict on a stored object against its tickets.

pub mod check;
pub mod checksums;
pub mod found;
pub mod multipart;
pub mod parts;
pub mod ticket;
pub mod urls;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3_presigned_post::{Presigner, Validity};

use crate::auth::Caller;
use crate::credentials::{CredentialsCache, LoadedCredentials};
use crate::handle::HandleKey;
use crate::limits::EventSettings;
use crate::limits::records::{ChecksumRef, NewTicket, TicketKind};
use crate::limits::{Charge, LimitError, Limits};
use crate::policy::{ObjectPlan, PolicyError, TenantRules};
use crate::store::{ObjectStore, StoreError};
use crate::telemetry::traces::await_in_span;
use crate::tenant::Tenant;

/// What the use cases work with, borrowed from the application for one request.
#[derive(Clone, Copy, Debug)]
pub struct Deps<'a> {
    /// The object store, for what a ticket cannot do alone.
    pub store: &'a dyn ObjectStore,
    /// The tenants' limits and quotas.
    pub limits: &'a Limits,
    /// Signs and verifies multipart handles.
    pub handles: &'a HandleKey,
    /// Signs tickets and URLs.
    pub presigner: &'a Presigner,
    /// The AWS credentials of the moment.
    pub credentials: &'a CredentialsCache,
    /// How uploads are found and events delivered.
    pub events: &'a EventSettings,
    /// Wakes this replica's delivery of events when one is queued.
    pub outbox: &'a tokio::sync::Notify,
}

/// Who asks, under which tenant, judged at which time.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The verified caller.
    pub caller: Arc<Caller>,
    /// Their tenant: rules and webhook.
    pub tenant: Arc<Tenant>,
    /// Now, for the token, the rules and the signatures alike.
    pub now: SystemTime,
    /// What the request's ticket left used of the tenant's limits, once counted (the
    /// answer's `RateLimit` header).
    pub counted: std::sync::OnceLock<crate::limits::Used>,
}

impl Actor {
    /// The caller's tenant's rules.
    pub fn rules(&self) -> &TenantRules {
        &self.tenant.rules
    }
}

/// Why a use case did not do what was asked, in its own terms (`http/error.rs` gives
/// each a status and a stable code).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The tenant's rules refuse the request.
    #[error(transparent)]
    Rules(#[from] PolicyError),
    /// A limit refuses it, or the limits cannot be checked.
    #[error(transparent)]
    Limits(#[from] LimitError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No credentials to sign with right now (or none that last a second).
    #[error("signing credentials are not available right now; retry shortly")]
    CredentialsUnavailable,
    /// The handle is forged, expired or for an aborted upload.
    #[error("no such multipart upload, or its handle has expired")]
    UploadNotFound,
    /// A valid handle or key, but of another subject or tenant.
    #[error("this upload belongs to someone else")]
    NotOwner,
    /// The request is malformed, in words.
    #[error("{0}")]
    InvalidRequest(String),
    /// The part list does not complete the upload, in words.
    #[error("{0}")]
    PartsInvalid(String),
    /// The upload is complete but breaks its ticket or the tenant's rules (in words):
    /// removed, quarantined or kept as the tenant says, and reported so.
    #[error("the upload was refused: {0}")]
    Rejected(String),
    /// Something that cannot happen did (a plan the rules accepted that the core would
    /// not sign; a handle that would not sign): the cause is for the log only.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl UploadError {
    /// Any unexpected error.
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }
}

/// The credentials to sign with at `now`.
pub fn credentials(
    deps: &Deps<'_>,
    now: SystemTime,
) -> Result<Arc<LoadedCredentials>, UploadError> {
    deps.credentials
        .current(now)
        .ok_or(UploadError::CredentialsUnavailable)
}

/// `wanted`, shortened so that a signature never outlives what signs it: temporary
/// credentials (less a margin) and, for parts, the upload's deadline.
pub fn usable_validity(
    wanted: Validity,
    credentials: &LoadedCredentials,
    now: SystemTime,
    deadline: Option<SystemTime>,
) -> Result<Validity, UploadError> {
    let mut left = Validity::MAX.get();
    if let Some(expiry) = credentials.expires_at {
        let margin = Duration::from_secs(5);
        left = left.min(
            expiry
                .duration_since(now)
                .unwrap_or_default()
                .saturating_sub(margin),
        );
    }
    if let Some(deadline) = deadline {
        left = left.min(deadline.duration_since(now).unwrap_or_default());
    }
    wanted
        .at_most(left)
        .ok_or(UploadError::CredentialsUnavailable)
}

/// Hands the credentials to sign a ticket with, counts it against the tenant's limits
/// and records it (its bytes reserved for the day until its upload is settled; a
/// multipart upload's key and deadline): the last step before signing, after every
/// rule has been checked, so that a refused request counts nothing. Without
/// credentials nothing is counted either.
pub async fn admit(
    deps: &Deps<'_>,
    who: &Actor,
    record: NewTicket<'_>,
    upload: Option<(&str, SystemTime)>,
) -> Result<Arc<LoadedCredentials>, UploadError> {
    let credentials = credentials(deps, who.now)?;
    let rules = who.rules();
    let charge = Charge {
        tenant: rules.id.as_str(),
        subject: &who.caller.subject,
        bytes: record.reserved,
        upload,
    };
    let used = await_in_span!(
        deps.limits
            .admit(&rules.quotas, charge, Some(record), who.now),
        "admit"
    )?;
    if let Some(used) = used {
        // One ticket a request: the first count is the one to tell.
        let _ = who.counted.set(used);
    }
    Ok(credentials)
}

/// The record of a ticket of `kind` for `object`, allowing `min..=max` bytes,
/// reserving `reserved` of the day's and valid until `expires_at`.
pub fn ticket_record<'a>(
    deps: &Deps<'_>,
    who: &'a Actor,
    kind: TicketKind,
    object: &'a ObjectPlan,
    (min_size, max_size): (u64, u64),
    reserved: u64,
    expires_at: SystemTime,
) -> NewTicket<'a> {
    let expires_at = crate::clock::unix(expires_at);
    NewTicket {
        id: uuid::Uuid::new_v4(),
        tenant: who.rules().id.as_str(),
        subject: &who.caller.subject,
        bucket: who.rules().bucket.as_str(),
        key: object.key.as_str(),
        kind,
        min_size,
        max_size,
        reserved,
        day: crate::clock::unix(who.now) / 86_400,
        content_type: object.content_type.as_deref(),
        checksum: object.checksum.as_ref().map(|c| ChecksumRef {
            algorithm: c.algorithm(),
            value: c.value(),
        }),
        metadata: &object.metadata,
        expires_at,
        due: expires_at + deps.events.grace_seconds,
    }
}

/// Counts a call of the caller that reaches the store or the tenant's webhook against
/// the subject's `store_calls_per_minute`.
pub async fn admit_store_call(deps: &Deps<'_>, who: &Actor) -> Result<(), UploadError> {
    let rules = who.rules();
    deps.limits
        .admit_store_call(
            &rules.quotas,
            rules.id.as_str(),
            &who.caller.subject,
            who.now,
        )
        .await?;
    Ok(())
}

/// A new UUID for a key's `{uuid}`, as text on the stack.
pub fn new_uuid() -> UuidText {
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    UuidText(text)
}

/// A UUID's hyphenated lower-case text (ASCII).
#[derive(Debug, Clone, Copy)]
pub struct UuidText([u8; uuid::fmt::Hyphenated::LENGTH]);

impl std::ops::Deref for UuidText {
    type Target = str;

    fn deref(&self) -> &str {
        // `encode_lower` wrote ASCII hex digits and hyphens only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}
