//! Single-request tickets: a POST form or a PUT URL, as the tenant's rules make it of a
//! request, counted against the tenant's limits and signed.

use std::sync::Arc;
use std::time::SystemTime;

use s3_presigned_post::{ObjectKey, PresignedPost, PresignedUrl, Validity};

use super::{Actor, Deps, UploadError, admit, new_uuid, ticket_record, usable_validity};
use crate::credentials::LoadedCredentials;
use crate::limits::records::TicketKind;
use crate::policy::{self, ObjectPlan, PutPlan, UploadMethod, UploadRequest};
use crate::telemetry::traces::in_span;

/// A signed POST form and what it allows.
#[derive(Debug)]
pub struct PostTicket {
    /// URL and fields.
    pub post: PresignedPost,
    /// The key the service chose.
    pub key: ObjectKey,
    /// Smallest upload the policy allows.
    pub min_size: u64,
    /// Largest upload the policy allows.
    pub max_size: u64,
}

/// A signed PUT URL, the headers it must carry, and what it allows.
#[derive(Debug)]
pub struct PutTicket {
    /// URL, method, headers and expiry.
    pub signed: PresignedUrl,
    /// The key the service chose.
    pub key: ObjectKey,
    /// Smallest upload allowed (a PUT signs one exact length: the declared size).
    pub min_size: u64,
    /// Largest upload allowed.
    pub max_size: u64,
}

/// A ticket of the tenant's method.
#[derive(Debug)]
pub enum Ticket {
    /// A POST form.
    Post(PostTicket),
    /// A PUT URL.
    Put(PutTicket),
}

impl Ticket {
    /// The key the ticket uploads to, taken out of it (once it has been answered).
    pub fn into_key(self) -> String {
        match self {
            Self::Post(ticket) => ticket.key.into(),
            Self::Put(ticket) => ticket.key.into(),
        }
    }

    /// The key the ticket uploads to.
    pub fn key(&self) -> &str {
        match self {
            Self::Post(ticket) => ticket.key.as_str(),
            Self::Put(ticket) => ticket.key.as_str(),
        }
    }

    /// When the ticket stops being accepted.
    pub fn expires_at(&self) -> SystemTime {
        match self {
            Self::Post(ticket) => ticket.post.expires_at(),
            Self::Put(ticket) => ticket.signed.expires_at,
        }
    }
}

/// The ticket the tenant hands out for `request`: a POST form or a PUT URL.
pub async fn issue(
    deps: &Deps<'_>,
    who: &Actor,
    request: &UploadRequest,
) -> Result<Ticket, UploadError> {
    match who.rules().upload_method {
        UploadMethod::Post => Ok(Ticket::Post(post(deps, who, request).await?)),
        UploadMethod::Put => Ok(Ticket::Put(put(deps, who, put_plan(who, request)?).await?)),
    }
}

/// The tenant's POST ticket for `request`, counted against its limits and signed.
pub async fn post(
    deps: &Deps<'_>,
    who: &Actor,
    request: &UploadRequest,
) -> Result<PostTicket, UploadError> {
    let subject = &who.caller.subject;
    let mut plan = in_span!(
        "plan",
        policy::plan(who.rules(), subject, request, who.now, &new_uuid())
    )?;
    let wanted = plan.request.validity();
    let credentials = admit_single(deps, who, TicketKind::Post, &plan.object, wanted).await?;
    let validity = usable_validity(plan.request.validity(), &credentials, who.now, None)?;
    plan.request = plan.request.with_validity(validity);
    let post = in_span!(
        "sign",
        deps.presigner
            .presign(&credentials.credentials, &plan.request, who.now)
    )
    .map_err(UploadError::internal)?;
    Ok(PostTicket {
        post,
        key: plan.object.key,
        min_size: plan.object.min_size,
        max_size: plan.object.max_size,
    })
}

/// Counts and records a single-request ticket for `object`, valid at most `wanted`: its
/// bounds are the object's, its reservation the most it may upload.
async fn admit_single(
    deps: &Deps<'_>,
    who: &Actor,
    kind: TicketKind,
    object: &ObjectPlan,
    wanted: Validity,
) -> Result<Arc<LoadedCredentials>, UploadError> {
    let bounds = (object.min_size, object.max_size);
    let expires_at = who.now + wanted.get();
    let record = ticket_record(deps, who, kind, object, bounds, object.max_size, expires_at);
    admit(deps, who, record, None).await
}

/// The PUT ticket the tenant's rules make of `request`, not yet counted nor signed (a
/// front door may still refuse it for a client that cannot send its headers).
pub fn put_plan(who: &Actor, request: &UploadRequest) -> Result<PutPlan, UploadError> {
    let subject = &who.caller.subject;
    Ok(in_span!(
        "plan",
        policy::put_plan(who.rules(), subject, request, who.now, &new_uuid())
    )?)
}

/// `plan` counted against the tenant's limits and signed.
pub async fn put(
    deps: &Deps<'_>,
    who: &Actor,
    mut plan: PutPlan,
) -> Result<PutTicket, UploadError> {
    let wanted = plan.request.validity();
    let credentials = admit_single(deps, who, TicketKind::Put, &plan.object, wanted).await?;
    let validity = usable_validity(plan.request.validity(), &credentials, who.now, None)?;
    plan.request = plan.request.with_validity(validity);
    let signed = in_span!(
        "sign",
        deps.presigner
            .presign_url(&credentials.credentials, &plan.request, who.now)
    )
    .map_err(UploadError::internal)?;
    Ok(PutTicket {
        signed,
        key: plan.object.key,
        min_size: plan.object.min_size,
        max_size: plan.object.max_size,
    })
}
