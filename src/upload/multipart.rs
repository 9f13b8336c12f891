//! Multipart uploads (beyond 5 GiB, resumable), started under the caller's own key and
//! bound to them by a signed handle: no database. Two layouts: the service's (the size
//! declared, parts of a fixed size, each part URL pinned to its length) and the
//! client's (Uppy picks its part size: any numbering S3 accepts, the total held to the
//! tenant's bounds at completion).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::found::{self, FoundBy, Outcome};
use super::parts::{self, MAX_PARTS, PART_BATCH};
use super::urls::{PartUrl, part_urls};
use super::{
    Actor, Deps, UploadError, admit, admit_store_call, checksums, new_uuid, ticket_record,
    usable_validity,
};
use crate::credentials::LoadedCredentials;
use crate::handle::{SizeBounds, Upload};
use crate::limits::records::TicketKind;
use crate::policy::Declared;
use crate::policy::{self, ObjectPlan, UploadRequest};
use crate::store::{CompletedObject, Completion, PartTag, StoredPart, UploadRef};
use crate::telemetry::traces::in_span;
use s3_presigned_post::{Checksum, Validity};

/// A started upload of the service's layout: its handle and the first part URLs.
#[derive(Debug)]
pub struct Started {
    /// What the handle binds.
    pub upload: Upload,
    /// The signed handle the client names the upload by.
    pub handle: String,
    /// When the handle (and so the upload) expires.
    pub deadline: SystemTime,
    /// The first part URLs (none when every part must carry a checksum the client
    /// gives with `/parts`).
    pub parts: Vec<PartUrl>,
    /// When those part URLs expire.
    pub parts_expire_at: SystemTime,
}

/// A started upload whose parts the client lays out, and its signed handle.
#[derive(Debug)]
pub struct ClientUpload {
    /// What the handle binds.
    pub upload: Upload,
    /// The signed handle (Uppy's upload id).
    pub handle: String,
}

/// Which parts a completion names.
#[derive(Debug)]
pub enum Claimed {
    /// The parts the client lists, with the ETags its uploads were answered with.
    Listed(Vec<PartTag>),
    /// Every part the store holds (a client that lists none itself).
    Stored,
}

/// A completed upload.
#[derive(Debug)]
pub struct Completed {
    /// The store's answer.
    pub object: CompletedObject,
    /// The object's size, as checked.
    pub size: u64,
}

/// When an upload started at `who.now` expires.
fn deadline(who: &Actor) -> SystemTime {
    who.now + who.rules().multipart_expires_in.get()
}

/// Starts an upload of `request` in the service's layout: the tenant's rules and
/// limits, the store's upload, its handle and the first part URLs.
pub async fn start(
    deps: &Deps<'_>,
    who: &Actor,
    request: &UploadRequest,
) -> Result<Started, UploadError> {
    let subject = &who.caller.subject;
    let plan = in_span!(
        "plan",
        policy::multipart_plan(who.rules(), subject, request, who.now, &new_uuid())
    )?;
    let bounds = (plan.size, plan.size);
    let (upload_id, credentials) =
        create_in_store(deps, who, &plan.object, bounds, plan.size).await?;
    let upload = Upload {
        tenant: who.rules().id.clone(),
        sub: subject.clone(),
        bucket: who.rules().bucket.clone(),
        key: plan.object.key.clone(),
        upload_id,
        size: plan.size,
        part_size: plan.part_size,
        part_count: plan.part_count,
        content_type: plan.object.content_type.clone(),
        checksum_algorithm: plan.object.checksum_algorithm,
        checksum: plan.object.checksum.as_ref().map(|c| c.value().to_owned()),
        client_parts: None,
        client_key: None,
    };
    let deadline = deadline(who);
    let signed = in_span!(
        "sign",
        first_parts(deps, who, &upload, plan.object.expires_in, &credentials)
    );
    match signed {
        Ok((handle, parts, parts_expire_at)) => Ok(Started {
            upload,
            handle,
            deadline,
            parts,
            parts_expire_at,
        }),
        Err(error) => {
            // Nobody will ever hold a handle for it: its parts must not be left behind.
            let _ = store_abort(deps.store, &upload).await;
            release(deps, who, upload.key.as_str()).await;
            Err(error)
        }
    }
}

/// The handle of `upload` and its first part URLs, and when those expire.
fn first_parts(
    deps: &Deps<'_>,
    who: &Actor,
    upload: &Upload,
    wanted: Validity,
    credentials: &LoadedCredentials,
) -> Result<(String, Vec<PartUrl>, SystemTime), UploadError> {
    let deadline = deadline(who);
    let handle = deps
        .handles
        .sign(upload, deadline)
        .map_err(UploadError::internal)?;
    // With a checksum algorithm every part must carry its checksum (S3 and Garage
    // refuse a part without): the client asks `/parts` with them.
    let first: Vec<u16> = match upload.checksum_algorithm {
        Some(_) => Vec::new(),
        None => (1..=upload.part_count.min(PART_BATCH)).collect(),
    };
    let validity = usable_validity(wanted, credentials, who.now, Some(deadline))?;
    let (parts, parts_expire_at) = part_urls(
        deps,
        &credentials.credentials,
        upload,
        &first,
        &BTreeMap::new(),
        validity,
        who.now,
    )?;
    Ok((handle, parts, parts_expire_at))
}

/// Starts an upload of `request` whose parts the client lays out (Uppy's): the tenant's
/// rules and limits, the store's upload, the handle that binds it (and the key the
/// client proposed, if it may keep naming the upload by it).
pub async fn start_client_upload(
    deps: &Deps<'_>,
    who: &Actor,
    request: &UploadRequest,
    client_key: Option<&str>,
) -> Result<ClientUpload, UploadError> {
    let subject = &who.caller.subject;
    let object = in_span!(
        "plan",
        policy::client_multipart_plan(who.rules(), subject, request, who.now, &new_uuid())
    )?;
    let size = request.size;
    let bytes = size.unwrap_or(object.max_size);
    let bounds = match size {
        Some(size) => (size, size),
        None => (object.min_size, object.max_size),
    };
    let (upload_id, _) = create_in_store(deps, who, &object, bounds, bytes).await?;
    let upload = Upload {
        tenant: who.rules().id.clone(),
        sub: subject.clone(),
        bucket: who.rules().bucket.clone(),
        key: object.key.clone(),
        upload_id,
        size: size.unwrap_or(0),
        part_size: 0,
        part_count: MAX_PARTS,
        content_type: object.content_type.clone(),
        checksum_algorithm: None,
        checksum: None,
        client_parts: Some(SizeBounds {
            min: object.min_size,
            max: object.max_size,
        }),
        client_key: client_key.map(str::to_owned),
    };
    match deps.handles.sign(&upload, deadline(who)) {
        Ok(handle) => Ok(ClientUpload { upload, handle }),
        Err(error) => {
            // Nobody will ever hold a handle for it.
            let _ = store_abort(deps.store, &upload).await;
            release(deps, who, upload.key.as_str()).await;
            Err(UploadError::internal(error))
        }
    }
}

/// Counts a new upload of `bounds` bytes (reserving `bytes`) against the tenant's
/// limits, records it and starts it in the store; answers its upload id and the
/// credentials to sign its parts with. An upload the store refuses frees its place
/// among the subject's open ones again (its record is released when it falls due).
async fn create_in_store(
    deps: &Deps<'_>,
    who: &Actor,
    object: &ObjectPlan,
    bounds: (u64, u64),
    bytes: u64,
) -> Result<(String, Arc<LoadedCredentials>), UploadError> {
    let key = object.key.as_str();
    let record = ticket_record(
        deps,
        who,
        TicketKind::Multipart,
        object,
        bounds,
        bytes,
        deadline(who),
    );
    let credentials = admit(deps, who, record, Some((key, deadline(who)))).await?;
    let rules = who.rules();
    let created = deps
        .store
        .create_upload(rules.bucket.as_str(), object, &rules.object_settings)
        .await;
    match created {
        Ok(upload_id) => Ok((upload_id, credentials)),
        Err(error) => {
            release(deps, who, key).await;
            Err(error.into())
        }
    }
}

/// Frees the upload's place among its subject's open uploads.
async fn release(deps: &Deps<'_>, who: &Actor, key: &str) {
    let rules = who.rules();
    deps.limits
        .release(rules.id.as_str(), &who.caller.subject, key)
        .await;
}

/// The upload a handle names, if the caller owns it: same tenant, same subject, and
/// the key under the subject's prefix in the tenant's bucket. Answers its deadline too.
pub fn owned(
    deps: &Deps<'_>,
    who: &Actor,
    handle: &str,
) -> Result<(Upload, SystemTime), UploadError> {
    let (upload, deadline) = deps
        .handles
        .verify(handle, who.now)
        .map_err(|_| UploadError::UploadNotFound)?;
    let rules = who.rules();
    let prefix = rules.owner_prefix(&who.caller.subject)?;
    let owned = upload.tenant == who.caller.tenant
        && upload.sub == who.caller.subject
        && upload.bucket == rules.bucket
        && upload.key.as_str().starts_with(&prefix);
    if !owned {
        return Err(UploadError::NotOwner);
    }
    Ok((upload, deadline))
}

/// The parts the store holds of the caller's `upload`, ascending (a call that reaches
/// the store: counted).
pub async fn stored_parts(
    deps: &Deps<'_>,
    who: &Actor,
    upload: &Upload,
) -> Result<Vec<StoredPart>, UploadError> {
    admit_store_call(deps, who).await?;
    let mut stored = deps.store.list_parts(store_ref(upload)).await?;
    stored.sort_by_key(|p| p.number);
    Ok(stored)
}

/// The whole object's checksum a completion of `upload` goes with: declared at the
/// start or `given` now.
pub fn whole_checksum(
    who: &Actor,
    upload: &Upload,
    given: Option<&str>,
) -> Result<Option<Checksum>, UploadError> {
    checksums::whole(who.rules(), upload, given)
}

/// Completes `upload` once the store holds the claimed parts and they add up to what the
/// upload declared; frees its place among the subject's open uploads.
///
/// A part sent again between the listing and the completion must not slip past the size
/// check: the completion names exactly the ETags of the listing that was checked (a
/// client ETag that differs is refused, a store that checks ETags refuses a part replaced
/// since), and the object is looked at once completed and removed if its size is not the
/// one checked (a store that ignores ETags).
pub async fn complete(
    deps: &Deps<'_>,
    who: &Actor,
    upload: &Upload,
    claimed: Claimed,
    checksum: Option<&Checksum>,
) -> Result<Completed, UploadError> {
    admit_store_call(deps, who).await?;
    let stored = deps.store.list_parts(store_ref(upload)).await?;
    let mut listed = match claimed {
        Claimed::Listed(listed) => parts::as_listed(listed, &stored)?,
        Claimed::Stored => parts::all_stored(&stored),
    };
    if listed.is_empty() {
        return Err(UploadError::PartsInvalid(
            "the store holds no part of this upload yet".to_owned(),
        ));
    }
    let size = parts::check_stored(upload, &listed, &stored)?;
    checksums::fill_from_store(&mut listed, stored, upload.checksum_algorithm);
    let completion = Completion {
        algorithm: upload.checksum_algorithm,
        checksum,
        if_none_match: who.rules().prevent_overwrite,
    };
    let object = deps
        .store
        .complete_upload(store_ref(upload), &listed, completion)
        .await?;
    release(deps, who, upload.key.as_str()).await;
    check_completed_size(deps, upload, size).await?;
    verify_completed(deps, who, upload).await?;
    Ok(Completed { object, size })
}

/// The completed object found: verified against its ticket, reported, and refused (as
/// the tenant's `on_rejected` says) if it breaks a rule the parts could not show, its
/// first bytes above all. The upload is complete whatever happens here: if it cannot be
/// looked at now (the store or the records failing), the completion still succeeds and
/// the sweeper reports it once the upload's deadline and the grace have passed.
async fn verify_completed(
    deps: &Deps<'_>,
    who: &Actor,
    upload: &Upload,
) -> Result<(), UploadError> {
    let key = upload.key.as_str();
    let settled = match deps.limits.tickets_of(who.tenant.id(), key).await {
        Ok(tickets) => {
            let by = FoundBy::Multipart;
            found::settle(
                deps,
                &who.tenant,
                key,
                &tickets,
                by,
                Declared::default(),
                who.now,
            )
            .await
        }
        Err(reason) => Err(crate::limits::LimitError::Unavailable(reason).into()),
    };
    match settled {
        Ok(Outcome::Found(_, verdict)) if !verdict.accepted() => {
            let words: Vec<String> = verdict.mismatches.into_iter().map(|m| m.words).collect();
            Err(UploadError::Rejected(words.join("; ")))
        }
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(%key, %error, "a completed upload could not be verified now; the sweeper reports it later");
            Ok(())
        }
    }
}

/// The completed object is the size that was checked, or it is removed: a store that
/// completes from parts replaced after the listing would otherwise keep an object past
/// the upload's bounds and the tenant's quota.
async fn check_completed_size(
    deps: &Deps<'_>,
    upload: &Upload,
    size: u64,
) -> Result<(), UploadError> {
    let head = deps
        .store
        .head_object(upload.bucket.as_str(), upload.key.as_str())
        .await?;
    if head.object.size == size {
        return Ok(());
    }
    tracing::warn!(
        key = %upload.key,
        checked = size,
        stored = head.object.size,
        "a completed upload is not the size its parts were checked at: removed"
    );
    deps.store
        .delete_object(upload.bucket.as_str(), upload.key.as_str())
        .await?;
    Err(UploadError::PartsInvalid(format!(
        "the completed object holds {} bytes, not the {size} its parts held when checked: a part was replaced during the completion; the object was removed",
        head.object.size
    )))
}

/// Aborts the caller's `upload` and frees its place among the subject's open uploads.
pub async fn abort(deps: &Deps<'_>, who: &Actor, upload: &Upload) -> Result<(), UploadError> {
    admit_store_call(deps, who).await?;
    store_abort(deps.store, upload).await?;
    release(deps, who, upload.key.as_str()).await;
    Ok(())
}

async fn store_abort(
    store: &dyn crate::store::ObjectStore,
    upload: &Upload,
) -> Result<(), crate::store::StoreError> {
    store.abort_upload(store_ref(upload)).await
}

/// The store's name for `upload`.
pub fn store_ref(upload: &Upload) -> UploadRef<'_> {
    UploadRef {
        bucket: upload.bucket.as_str(),
        key: upload.key.as_str(),
        upload_id: &upload.upload_id,
    }
}
