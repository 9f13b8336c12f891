//! The multipart checks: an upload run as the service runs it (started by the service, a
//! part through a part URL, listed, completed), another aborted, wrong part checksums of
//! every algorithm, and the lifecycle rule that aborts what clients abandon.

use s3_presigned_post::{ChecksumAlgorithm, ObjectKey, Validity};

use super::probes::{self, BODY, Prober};
use super::{Finding, Verdict, error_chain, pass, said, skip};
use crate::policy::{ObjectPlan, TenantRules};
use crate::store::{Completion, ObjectStore, PartTag, StoreError, UploadRef};

const START: (&str, &str) = ("multipart.start", "a multipart upload starts");
const PART: (&str, &str) = ("multipart.part", "a part is taken through a part URL");
const LIST: (&str, &str) = ("multipart.list", "the store lists the part as sent");
const COMPLETE: (&str, &str) = ("multipart.complete", "the upload completes into the object");
const ABORT: (&str, &str) = ("multipart.abort", "an aborted upload keeps no parts");
const CHECKSUM: (&str, &str) = (
    "multipart.checksum",
    "a part with a wrong checksum header is refused",
);
const LIFECYCLE: (&str, &str) = (
    "multipart.lifecycle",
    "the bucket's lifecycle aborts abandoned uploads",
);

/// The multipart checks of one tenant's bucket, every upload under `prefix`. Every
/// tenant can start multipart uploads, so every tenant needs them.
pub(super) async fn multipart(
    prober: &Prober<'_>,
    store: &dyn ObjectStore,
    rules: &TenantRules,
    prefix: &str,
) -> Vec<Finding> {
    let key = format!("{prefix}multipart");
    let mut findings = Vec::new();
    match start(store, rules, &key, None).await {
        Ok(upload_id) => {
            findings.push(pass(START.0, START.1, "started", true));
            findings.extend(round_trip(prober, store, rules, &key, &upload_id).await);
            findings.push(abort(prober, store, rules, &format!("{key}-abort")).await);
        }
        Err(error) => {
            findings.push(fail(
                START,
                error_chain(&error),
                "multipart uploads (POST /uploads/multipart) fail on this store: check the credentials' rights (s3:PutObject) and the tenant's object settings (storage class, encryption)",
            ));
            for (check, title) in [PART, LIST, COMPLETE, ABORT] {
                findings.push(skip(check, title, "no upload started", true));
            }
        }
    }
    findings.push(checksums(prober, store, rules, prefix).await);
    findings.push(lifecycle(store, rules).await);
    findings
}

/// Starts an upload of a probe object under `key`, with the tenant's object settings as
/// the service starts them, and `algorithm` if given.
async fn start(
    store: &dyn ObjectStore,
    rules: &TenantRules,
    key: &str,
    algorithm: Option<ChecksumAlgorithm>,
) -> Result<String, StoreError> {
    let plan = ObjectPlan {
        key: ObjectKey::new(key).map_err(|e| StoreError::failed(e.to_string()))?,
        content_type: Some(probes::TYPE.to_owned()),
        metadata: Default::default(),
        content_disposition: None,
        min_size: 1,
        max_size: BODY.len() as u64,
        expires_in: Validity::DEFAULT,
        checksum_algorithm: algorithm,
        checksum: None,
    };
    store
        .create_upload(rules.bucket.as_str(), &plan, &rules.object_settings)
        .await
}

/// Part 1 of `upload_id`, listed, then completed: the path every multipart upload takes.
async fn round_trip(
    prober: &Prober<'_>,
    store: &dyn ObjectStore,
    rules: &TenantRules,
    key: &str,
    upload_id: &str,
) -> Vec<Finding> {
    let bucket = rules.bucket.as_str();
    let upload = UploadRef {
        bucket,
        key,
        upload_id,
    };
    let sent = prober.part(key, upload_id, 1, None).await;
    let etag = match &sent {
        Ok(answer) if answer.accepted() => answer.etag.clone(),
        _ => None,
    };
    let part = match (&sent, &etag) {
        (Ok(answer), Some(_)) if answer.accepted() => pass(PART.0, PART.1, &answer.said(), true),
        (Ok(answer), None) if answer.accepted() => fail(
            PART,
            format!("{}, without an ETag", answer.said()),
            "a completion names each part's ETag: the store must answer a part with one (and the bucket's CORS rule expose it)",
        ),
        _ => fail(
            PART,
            said(&sent),
            "part URLs fail on this store: check the credentials' rights (s3:PutObject) and the clock",
        ),
    };
    let listed = store.list_parts(upload).await;
    let size = BODY.len() as u64;
    let list = match &listed {
        Ok(parts)
            if parts.len() == 1
                && parts[0].number == 1
                && parts[0].size == size
                && (parts[0].etag.is_empty()
                    || etag.as_deref().is_none_or(|e| same_etag(e, &parts[0].etag))) =>
        {
            if parts[0].etag.is_empty() {
                // The service then keeps the client's ETag: the completed object's size
                // is the only guard against a part sent again after it was checked.
                Finding {
                    check: LIST.0,
                    title: LIST.1,
                    verdict: Verdict::Warn,
                    observed: format!("part 1, {size} bytes, no ETag"),
                    fix: Some("the store lists parts without ETags: a part uploaded again after the service checked the list is caught only by the completed object's size".to_owned()),
                    needed: false,
                }
            } else {
                pass(LIST.0, LIST.1, &format!("part 1, {size} bytes"), true)
            }
        }
        Ok(parts) => fail(
            LIST,
            format!(
                "listed {}",
                parts
                    .iter()
                    .map(|p| format!("part {} ({} bytes, ETag {})", p.number, p.size, p.etag))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "the service checks the parts' sizes and ETags from this list before completing: a store that lists them wrongly cannot hold multipart uploads to the tenant's limits",
        ),
        Err(error) => fail(
            LIST,
            error_chain(error),
            "the credentials may lack s3:ListMultipartUploadParts",
        ),
    };
    let tag = etag.or_else(|| {
        let parts = listed.as_ref().ok()?;
        Some(parts.first()?.etag.clone())
    });
    let complete = match tag {
        Some(etag) => {
            let tags = [PartTag {
                number: 1,
                etag,
                checksum: None,
            }];
            let completed = store
                .complete_upload(upload, &tags, Completion::default())
                .await;
            match completed {
                Ok(_) => match store.head_object(bucket, key).await {
                    Ok(head) if head.object.size == size => pass(
                        COMPLETE.0,
                        COMPLETE.1,
                        &format!("{size} bytes stored"),
                        true,
                    ),
                    Ok(head) => fail(
                        COMPLETE,
                        format!("{} bytes stored of {size}", head.object.size),
                        "the store completes uploads into other bytes than their parts'",
                    ),
                    Err(error) => fail(
                        COMPLETE,
                        format!(
                            "completed, but the object is not found: {}",
                            error_chain(&error)
                        ),
                        "the credentials may lack s3:GetObject (the completion check reads the object)",
                    ),
                },
                Err(error) => {
                    let _ = store.abort_upload(upload).await;
                    fail(
                        COMPLETE,
                        error_chain(&error),
                        "completions fail on this store: check the credentials' rights (s3:PutObject)",
                    )
                }
            }
        }
        None => {
            let _ = store.abort_upload(upload).await;
            skip(COMPLETE.0, COMPLETE.1, "no part to complete with", true)
        }
    };
    vec![part, list, complete]
}

/// An upload with a part, aborted: the store must drop it (its parts cost storage).
async fn abort(
    prober: &Prober<'_>,
    store: &dyn ObjectStore,
    rules: &TenantRules,
    key: &str,
) -> Finding {
    let upload_id = match start(store, rules, key, None).await {
        Ok(id) => id,
        Err(error) => return fail(ABORT, error_chain(&error), "a second upload did not start"),
    };
    let upload = UploadRef {
        bucket: rules.bucket.as_str(),
        key,
        upload_id: &upload_id,
    };
    let sent = prober.part(key, &upload_id, 1, None).await;
    if let Err(error) = store.abort_upload(upload).await {
        return fail(
            ABORT,
            error_chain(&error),
            "aborts fail on this store: the credentials may lack s3:AbortMultipartUpload, and the parts stay",
        );
    }
    match store.list_parts(upload).await {
        Err(StoreError::NoSuchUpload) => pass(
            ABORT.0,
            ABORT.1,
            &format!("part {}; aborted, then unknown", said(&sent)),
            true,
        ),
        Ok(parts) if parts.is_empty() => pass(ABORT.0, ABORT.1, "aborted, no part listed", true),
        Ok(parts) => fail(
            ABORT,
            format!("aborted, and still lists {} part(s)", parts.len()),
            "aborted uploads keep their parts on this store: they are stored and billed until removed by other means",
        ),
        Err(error) => fail(
            ABORT,
            format!("aborted, then listing said: {}", error_chain(&error)),
            "the store answers an aborted upload's listing with an error other than NoSuchUpload",
        ),
    }
}

/// Per algorithm: an upload started with it, and a part whose checksum header the bytes do
/// not have, which the store must refuse. Fails when the tenant requires an algorithm the
/// store does not start or verify; otherwise, those are a warning (clients declaring them
/// get `store_unsupported`, or no verification).
async fn checksums(
    prober: &Prober<'_>,
    store: &dyn ObjectStore,
    rules: &TenantRules,
    prefix: &str,
) -> Finding {
    let (mut said_by, mut unstarted, mut unverified) = (Vec::new(), Vec::new(), Vec::new());
    for algorithm in ChecksumAlgorithm::ALL {
        let name = algorithm.name();
        let key = format!("{prefix}multipart-checksum-{}", name.to_lowercase());
        let upload_id = match start(store, rules, &key, Some(algorithm)).await {
            Ok(id) => id,
            Err(error) => {
                unstarted.push(algorithm);
                said_by.push(format!("{name} not started ({error})"));
                continue;
            }
        };
        let answer = match probes::wrong(algorithm) {
            Ok(wrong) => prober.part(&key, &upload_id, 1, Some(&wrong)).await,
            Err(error) => Err(error.into()),
        };
        if !matches!(&answer, Ok(a) if !a.accepted()) {
            unverified.push(algorithm);
        }
        said_by.push(format!("{name} {}", said(&answer)));
        let upload = UploadRef {
            bucket: rules.bucket.as_str(),
            key: &key,
            upload_id: &upload_id,
        };
        let _ = store.abort_upload(upload).await;
    }
    let required = |a: &ChecksumAlgorithm| rules.require_checksum.contains(a);
    let verdict = if unstarted.iter().chain(&unverified).any(required) {
        Verdict::Fail
    } else if unstarted.is_empty() && unverified.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Warn
    };
    let names =
        |list: &[ChecksumAlgorithm]| list.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
    let mut fixes = Vec::new();
    if !unstarted.is_empty() {
        fixes.push(format!(
            "the store cannot start multipart uploads with {} checksums (clients declaring them get store_unsupported)",
            names(&unstarted)
        ));
    }
    if !unverified.is_empty() {
        fixes.push(format!(
            "the store does not verify {} part checksums",
            names(&unverified)
        ));
    }
    if verdict == Verdict::Fail {
        fixes.push("do not require those (require_checksum)".to_owned());
    }
    Finding {
        check: CHECKSUM.0,
        title: CHECKSUM.1,
        verdict,
        observed: said_by.join(", "),
        fix: (!fixes.is_empty()).then(|| fixes.join("; ")),
        needed: verdict == Verdict::Fail,
    }
}

/// A lifecycle rule aborting incomplete uploads under every key of the tenant: a client
/// that never completes nor aborts leaves parts that are billed until then. A warning
/// when absent: nothing a ticket depends on.
async fn lifecycle(store: &dyn ObjectStore, rules: &TenantRules) -> Finding {
    let prefix = rules.key_prefix();
    let fix = format!(
        "add a lifecycle rule to the bucket: AbortIncompleteMultipartUpload {{ DaysAfterInitiation = 1 }} for the prefix \"{prefix}\" (or the whole bucket): abandoned parts are stored, and billed, until aborted"
    );
    let warn = |observed: String, fix: String| Finding {
        check: LIFECYCLE.0,
        title: LIFECYCLE.1,
        verdict: Verdict::Warn,
        observed,
        fix: Some(fix),
        needed: false,
    };
    match store.abort_rules(rules.bucket.as_str()).await {
        Ok(found) => {
            let covering = found
                .iter()
                .filter(|rule| prefix.starts_with(&rule.prefix))
                .min_by_key(|rule| rule.days);
            match covering {
                Some(rule) => pass(
                    LIFECYCLE.0,
                    LIFECYCLE.1,
                    &format!(
                        "aborted after {} day(s) (rule on \"{}\")",
                        rule.days, rule.prefix
                    ),
                    false,
                ),
                None if found.is_empty() => warn("no rule aborts incomplete uploads".to_owned(), fix),
                None => warn(
                    format!(
                        "rules abort incomplete uploads only under {}",
                        found
                            .iter()
                            .map(|r| format!("\"{}\"", r.prefix))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    fix,
                ),
            }
        }
        Err(StoreError::Unsupported(why)) => warn(
            format!("the store has no lifecycle configuration: {why}"),
            "remove abandoned uploads by other means (a scheduled ListMultipartUploads and AbortMultipartUpload)".to_owned(),
        ),
        Err(error) => warn(
            error_chain(&error),
            format!("the credentials may lack s3:GetLifecycleConfiguration; {fix}"),
        ),
    }
}

fn fail(check: (&'static str, &'static str), observed: String, fix: &str) -> Finding {
    Finding {
        check: check.0,
        title: check.1,
        verdict: Verdict::Fail,
        observed,
        fix: Some(fix.to_owned()),
        needed: true,
    }
}

/// ETags compared as stores send them: some quote them, some not.
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}
