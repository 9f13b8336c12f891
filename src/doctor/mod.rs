//! `upload-tickets doctor`: what each tenant's store enforces, asked of the store itself
//! with the service's own credentials. A ticket is only as strong as the store that
//! checks it, and stores differ: the operator learns it here rather than from an opaque
//! 403 in production, or from an upload the store should have refused.
//!
//! Every probe writes under one prefix ([`PROBE_PREFIX`] and a fresh id) and everything
//! there is removed afterwards, whatever the store took.

mod multipart;
pub mod probes;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use s3_presigned_post::ChecksumAlgorithm;
use serde::Serialize;

use crate::config::Config;
use crate::credentials::CredentialsCache;
use crate::policy::{TenantRules, UploadMethod};
use crate::store::ObjectStore;
use crate::tenant::Tenant;
use probes::{Answer, PostFault, Prober, PutFault};

/// Where probes write, under the tenant's bucket (then a fresh id per run).
pub const PROBE_PREFIX: &str = "upload-tickets-doctor/";

/// SigV4 refuses requests signed more than 15 minutes off the store's clock.
const SKEW_REFUSED: Duration = Duration::from_secs(15 * 60);
/// Skew worth a warning: tickets expire early or start late by that much.
const SKEW_WARNED: Duration = Duration::from_secs(60);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// As it should be.
    Pass,
    /// Works, but worth a look.
    Warn,
    /// Not enforced, or not working.
    Fail,
    /// Not probed (what it depends on failed).
    Skip,
}

/// One check of one tenant's store.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// A stable name, e.g. `post.signature`.
    pub check: &'static str,
    /// What is checked, in words.
    pub title: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// What the store did.
    pub observed: String,
    /// What to do about it, when something is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Whether this tenant's tickets depend on it (a failure then fails the run).
    pub needed: bool,
}

/// One tenant's store, checked.
#[derive(Debug, Clone, Serialize)]
pub struct TenantReport {
    /// The tenant.
    pub tenant: String,
    /// Its bucket.
    pub bucket: String,
    /// How it hands out tickets: `post` or `put`.
    pub upload_method: &'static str,
    /// The checks, in order.
    pub findings: Vec<Finding>,
}

/// Every checked tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the store is (the configured endpoint, or AWS's for the region).
    pub endpoint: String,
    /// The tenants, by id.
    pub tenants: Vec<TenantReport>,
}

impl Report {
    /// Whether something a tenant's tickets depend on failed.
    pub fn failed(&self) -> bool {
        self.tenants
            .iter()
            .flat_map(|t| &t.findings)
            .any(|f| f.needed && f.verdict == Verdict::Fail)
    }

    /// The report as a person reads it: per tenant, one line per check and its fix.
    pub fn to_text(&self) -> String {
        let mut out = format!("store: {}\n", self.endpoint);
        for tenant in &self.tenants {
            let _ = write!(
                out,
                "\ntenant {} (bucket {}, {} tickets)\n",
                tenant.tenant, tenant.bucket, tenant.upload_method
            );
            for finding in &tenant.findings {
                let mark = match (finding.verdict, finding.needed) {
                    (Verdict::Pass, _) => "ok  ",
                    (Verdict::Warn, _) => "warn",
                    (Verdict::Fail, true) => "FAIL",
                    (Verdict::Fail, false) => "fail",
                    (Verdict::Skip, _) => "skip",
                };
                let _ = writeln!(out, "  {mark}  {:<52} {}", finding.title, finding.observed);
                if let Some(fix) = &finding.fix {
                    let _ = writeln!(out, "        -> {fix}");
                }
            }
        }
        let _ = write!(
            out,
            "\n{}",
            if self.failed() {
                "something these tenants' tickets depend on is not enforced (FAIL above)"
            } else {
                "everything these tenants' tickets depend on is enforced"
            }
        );
        out
    }
}

/// Why `doctor` could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// `--tenant` names no configured tenant.
    #[error("no tenant {0:?} in the configuration")]
    UnknownTenant(String),
}

/// Checks the store of every tenant of `config` (only `tenant`, if named), signing with
/// `credentials` (loaded here) and reaching the store through `store`.
pub async fn examine(
    config: &Config,
    credentials: &CredentialsCache,
    store: &dyn ObjectStore,
    tenant: Option<&str>,
) -> Result<Report, DoctorError> {
    let mut tenants: Vec<&Tenant> = config.tenants.values().map(Arc::as_ref).collect();
    tenants.sort_by(|a, b| a.id().cmp(b.id()));
    if let Some(only) = tenant {
        tenants.retain(|t| t.id() == only);
        if tenants.is_empty() {
            return Err(DoctorError::UnknownTenant(only.to_owned()));
        }
    }
    let loaded = credentials
        .refresh()
        .await
        .map(|()| credentials.current(SystemTime::now()));
    let http = client();
    let endpoint = config
        .s3
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("AWS S3 ({})", config.s3.region));
    let mut report = Report {
        endpoint,
        tenants: Vec::new(),
    };
    for tenant in tenants {
        let rules = &tenant.rules;
        let mut findings = Vec::new();
        let credentials = match (&loaded, &http) {
            (Ok(Some(loaded)), Some(http)) => {
                let key = format!("access key {}", loaded.credentials.access_key_id());
                findings.push(pass("credentials", CREDENTIALS, &key, true));
                Some((Arc::clone(loaded), http))
            }
            (failure, _) => {
                let observed = match failure {
                    Err(error) => error.to_string(),
                    Ok(_) => "no credentials, or no HTTP client".to_owned(),
                };
                findings.push(no_credentials(observed));
                None
            }
        };
        if let Some((loaded, http)) = credentials {
            let prober = Prober {
                presigner: &config.presigner,
                credentials: &loaded.credentials,
                bucket: &rules.bucket,
                http,
                origin: None,
            };
            let origins = if tenant.front_end_origins.is_empty() {
                &config.server.cors_allowed_origins
            } else {
                &tenant.front_end_origins
            };
            let prefix = format!("{PROBE_PREFIX}{}/", uuid::Uuid::new_v4().simple());
            findings.extend(check_tenant(&prober, store, rules, origins, &prefix).await);
            findings.push(clean_up(store, rules.bucket.as_str(), &prefix).await);
        }
        report.tenants.push(TenantReport {
            tenant: rules.id.as_str().to_owned(),
            bucket: rules.bucket.as_str().to_owned(),
            upload_method: match rules.upload_method {
                UploadMethod::Post => "post",
                UploadMethod::Put => "put",
            },
            findings,
        });
    }
    Ok(report)
}

/// The cheap, read-only part of the checks, which `serve` runs at start: per tenant, the
/// credentials, its bucket and the store's clock. For the log: a start never waits for it.
pub async fn glance(app: &crate::app::App) -> Vec<(String, Finding)> {
    let mut tenants: Vec<&TenantRules> = app.tenants.values().map(|t| &t.rules).collect();
    tenants.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    let (Some(loaded), Some(http)) = (app.credentials.current(SystemTime::now()), client()) else {
        return vec![(
            "*".to_owned(),
            no_credentials("no credentials loaded".to_owned()),
        )];
    };
    let mut found = Vec::new();
    for rules in tenants {
        let prober = Prober {
            presigner: &app.presigner,
            credentials: &loaded.credentials,
            bucket: &rules.bucket,
            http: &http,
            origin: None,
        };
        let (findings, _) = reach(&prober, app.store.as_ref(), rules, PROBE_PREFIX).await;
        found.extend(
            findings
                .into_iter()
                .map(|f| (rules.id.as_str().to_owned(), f)),
        );
    }
    found
}

/// The client probes go out with: no redirect followed (a store's redirect is an
/// answer), a bound on every probe.
fn client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .ok()
}

/// The bucket (listed under `prefix`, read-only) and the clock; whether the bucket answers.
async fn reach(
    prober: &Prober<'_>,
    store: &dyn ObjectStore,
    rules: &TenantRules,
    prefix: &str,
) -> (Vec<Finding>, bool) {
    let reachable = store.list_objects(rules.bucket.as_str(), prefix, 1).await;
    let bucket = match &reachable {
        Ok(_) => pass("bucket", "the bucket exists and answers", "listed", true),
        Err(error) => Finding {
            check: "bucket",
            title: "the bucket exists and answers",
            verdict: Verdict::Fail,
            observed: error_chain(error),
            fix: Some("check the bucket's name, the region ([s3] region) and the endpoint, and that the credentials may list it".to_owned()),
            needed: true,
        },
    };
    (vec![bucket, clock(prober).await], reachable.is_ok())
}

/// The checks of one tenant's bucket, every object under `prefix`.
async fn check_tenant(
    prober: &Prober<'_>,
    store: &dyn ObjectStore,
    rules: &TenantRules,
    origins: &[String],
    prefix: &str,
) -> Vec<Finding> {
    let (mut findings, reachable) = reach(prober, store, rules, prefix).await;
    if !reachable {
        return findings;
    }
    let post_needed = rules.upload_method == UploadMethod::Post;
    let put_needed = rules.upload_method == UploadMethod::Put;

    let accepted = prober.post(&format!("{prefix}post"), PostFault::None).await;
    let takes_posts = matches!(&accepted, Ok(answer) if answer.accepted());
    findings.push(acceptance(
        (
            "post.accepted",
            "a POST upload with a signed policy is accepted",
        ),
        &accepted,
        "this store does not take POST uploads: set upload_method = \"put\" for this tenant",
        post_needed,
    ));
    for (check, title, fault, consequence) in POST_REFUSALS {
        let finding = if takes_posts {
            let answer = prober.post(&format!("{prefix}{check}"), *fault).await;
            refusal(check, title, &answer, consequence, post_needed)
        } else {
            skip(check, title, "POST uploads are not accepted", post_needed)
        };
        findings.push(finding);
    }

    let put_key = format!("{prefix}put");
    let put_accepted = prober.put(&put_key, PutFault::None, "").await;
    let takes_puts = matches!(&put_accepted, Ok(answer) if answer.accepted());
    findings.push(acceptance(
        ("put.accepted", "a presigned PUT is accepted"),
        &put_accepted,
        "presigned PUT URLs (PUT tickets, multipart parts) fail on this store: check the credentials' rights (s3:PutObject on the bucket)",
        put_needed,
    ));
    for (check, title, fault, consequence, need) in PUT_REFUSALS {
        let needed = match need {
            Need::PutTickets => put_needed,
            Need::Always => true,
            Need::PreventOverwrite => rules.prevent_overwrite,
        };
        let finding = if takes_puts {
            let answer = prober
                .put(&format!("{prefix}{check}"), *fault, &put_key)
                .await;
            refusal(check, title, &answer, consequence, needed)
        } else {
            skip(check, title, "presigned PUTs are not accepted", needed)
        };
        findings.push(finding);
    }
    findings.push(checksums(prober, rules, prefix, Transport::Post, takes_posts).await);
    findings.push(checksums(prober, rules, prefix, Transport::Put, takes_puts).await);
    findings.extend(multipart::multipart(prober, store, rules, prefix).await);
    findings.extend(cors(prober, rules, origins, prefix).await);
    findings
}

/// How a probe reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Post,
    Put,
}

/// Wrong checksums of every algorithm, sent by `transport`: each must be refused. A
/// failure matters to the tenant when it requires that algorithm; otherwise clients that
/// declare it get no verification (a warning).
async fn checksums(
    prober: &Prober<'_>,
    rules: &TenantRules,
    prefix: &str,
    transport: Transport,
    possible: bool,
) -> Finding {
    let (check, title) = match transport {
        Transport::Post => (
            "post.checksum",
            "a POST with a wrong checksum field is refused",
        ),
        Transport::Put => (
            "put.checksum",
            "a PUT with a wrong checksum header is refused",
        ),
    };
    let needed = !rules.require_checksum.is_empty();
    if !possible {
        return skip(check, title, "the upload itself is not accepted", needed);
    }
    let (mut said, mut unverified) = (Vec::new(), Vec::new());
    for algorithm in ChecksumAlgorithm::ALL {
        let key = format!("{prefix}{check}-{}", algorithm.name().to_lowercase());
        let answer = match transport {
            Transport::Post => prober.post(&key, PostFault::WrongChecksum(algorithm)).await,
            Transport::Put => {
                prober
                    .put(&key, PutFault::WrongChecksum(algorithm), "")
                    .await
            }
        };
        let refused = matches!(&answer, Ok(a) if !a.accepted());
        if !refused {
            unverified.push(algorithm);
        }
        said.push(format!("{} {}", algorithm.name(), self::said(&answer)));
    }
    let required = |a: &ChecksumAlgorithm| rules.require_checksum.contains(a);
    let verdict = if unverified.iter().any(required) {
        Verdict::Fail
    } else if unverified.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Warn
    };
    let names: Vec<&str> = unverified.iter().map(|a| a.name()).collect();
    Finding {
        check,
        title,
        verdict,
        observed: said.join(", "),
        fix: (!names.is_empty()).then(|| {
            format!(
                "the store does not verify {}: do not require it (require_checksum), and do not rely on it",
                names.join(", ")
            )
        }),
        needed: needed && verdict == Verdict::Fail,
    }
}

/// The bucket's CORS rule, as a browser on each of the tenant's front-end `origins`
/// meets it: a preflight for the tenant's method, and `ETag` exposed on a PUT's answer
/// (multipart and Uppy read it).
async fn cors(
    prober: &Prober<'_>,
    rules: &TenantRules,
    origins: &[String],
    prefix: &str,
) -> Vec<Finding> {
    const PREFLIGHT: &str = "a browser's preflight from the front end is allowed";
    const ETAG: &str = "ETag is exposed to the front end";
    if origins.is_empty() {
        let why = "no front_end_origins (nor server.cors_allowed_origins) to ask for";
        return vec![
            skip("cors.preflight", PREFLIGHT, why, false),
            skip("cors.etag", ETAG, why, false),
        ];
    }
    let method = match rules.upload_method {
        UploadMethod::Post => "POST",
        UploadMethod::Put => "PUT",
    };
    let (mut refused, mut unexposed) = (Vec::new(), Vec::new());
    for (n, origin) in origins.iter().enumerate() {
        let from = Prober {
            origin: Some(origin),
            ..*prober
        };
        let allows = |a: &Answer| {
            a.allow_origin
                .as_deref()
                .is_some_and(|o| o == "*" || o == origin)
        };
        let preflight = from.preflight(method, &format!("{prefix}preflight")).await;
        let allowed = matches!(&preflight, Ok(a) if a.accepted()
            && allows(a)
            && a.allow_methods.as_deref().is_none_or(|m| m.contains('*') || m.to_uppercase().contains(method)));
        if !allowed {
            refused.push(format!("{method} from {origin}: {}", said(&preflight)));
        }
        let put = from
            .put(&format!("{prefix}cors-{n}"), PutFault::None, "")
            .await;
        let exposed = match &put {
            Ok(a) if a.accepted() && allows(a) => a.expose_headers.as_deref().is_some_and(|h| {
                h.split(',')
                    .any(|h| h.trim() == "*" || h.trim().eq_ignore_ascii_case("etag"))
            }),
            _ => false,
        };
        if !exposed {
            unexposed.push(match &put {
                Ok(a) => format!(
                    "to {origin}: Access-Control-Allow-Origin: {}, Access-Control-Expose-Headers: {}",
                    a.allow_origin.as_deref().unwrap_or("(none)"),
                    a.expose_headers.as_deref().unwrap_or("(none)")
                ),
                Err(error) => format!("to {origin}: {error}"),
            });
        }
    }
    let listed = origins
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let preflight = if refused.is_empty() {
        pass(
            "cors.preflight",
            PREFLIGHT,
            &format!("{method} from {} allowed", origins.join(", ")),
            true,
        )
    } else {
        Finding {
            check: "cors.preflight",
            title: PREFLIGHT,
            verdict: Verdict::Fail,
            observed: refused.join("; "),
            fix: Some(format!(
                "add a CORS rule to the bucket: AllowedOrigins [{listed}], AllowedMethods [\"POST\", \"PUT\"], AllowedHeaders [\"*\"], ExposeHeaders [\"ETag\"]"
            )),
            needed: true,
        }
    };
    let etag = if unexposed.is_empty() {
        pass("cors.etag", ETAG, "exposed", true)
    } else {
        Finding {
            check: "cors.etag",
            title: ETAG,
            verdict: Verdict::Fail,
            observed: unexposed.join("; "),
            fix: Some("add ExposeHeaders [\"ETag\"] to the bucket's CORS rule: multipart uploads and Uppy read it".to_owned()),
            needed: true,
        }
    };
    vec![preflight, etag]
}

/// The POST probes that must be refused: (check, title, fault, what it means if not).
const POST_REFUSALS: &[(&str, &str, PostFault, &str)] = &[
    (
        "post.signature",
        "a POST with a forged signature is refused",
        PostFault::ForgedSignature,
        "anyone can upload anything to this bucket: no POST ticket protects it",
    ),
    (
        "post.expiry",
        "a POST after the policy's expiration is refused",
        PostFault::Expired,
        "tickets never expire: a leaked ticket uploads forever",
    ),
    (
        "post.content-length-range",
        "a POST larger than content-length-range is refused",
        PostFault::TooLarge,
        "size limits are not enforced: any ticket uploads any size",
    ),
    (
        "post.eq",
        "a POST with another key than the policy's eq is refused",
        PostFault::OtherKey,
        "a ticket writes to any key: a user can overwrite another's objects",
    ),
    (
        "post.starts-with",
        "a POST with a type outside starts-with is refused",
        PostFault::OtherType,
        "content-type rules are not enforced: a ticket for an image uploads anything",
    ),
    (
        "post.unnamed-field",
        "a POST with a field no condition names is refused",
        PostFault::UnnamedField,
        "a client can add fields the policy never allowed (metadata, ACLs)",
    ),
];

/// Which tenants a PUT check matters to.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// Tenants with PUT tickets.
    PutTickets,
    /// Every tenant: multipart part URLs are presigned PUTs too.
    Always,
    /// Tenants with `prevent_overwrite` (PUT tickets and multipart completions send
    /// `If-None-Match: *`).
    PreventOverwrite,
}

/// The PUT probes that must be refused: (check, title, fault, consequence, who needs it).
const PUT_REFUSALS: &[(&str, &str, PutFault, &str, Need)] = &[
    (
        "put.content-length",
        "a PUT of another length than the signed one is refused",
        PutFault::OtherLength,
        "the size of PUT tickets and parts is not enforced",
        Need::PutTickets,
    ),
    (
        "put.unsigned-header",
        "a PUT with an unsigned x-amz-meta-* header is refused",
        PutFault::UnsignedMetadata,
        "headers the URL did not sign ride on every PUT ticket and part URL: an unsigned x-amz-acl: public-read makes an upload public; refuse them with a bucket policy (docs/operating.md)",
        Need::Always,
    ),
    (
        "put.unsigned-copy-source",
        "a PUT with an unsigned x-amz-copy-source is refused",
        PutFault::UnsignedCopySource,
        "a PUT ticket or part URL becomes a server-side copy of any object the service's credentials can read: deny s3:x-amz-copy-source in a bucket policy (docs/operating.md) or narrow the credentials",
        Need::Always,
    ),
    (
        "put.if-none-match",
        "a PUT with If-None-Match: * over an object is refused",
        PutFault::Overwrite,
        "this store ignores If-None-Match: a replayed PUT ticket or a completion overwrites the object; set prevent_overwrite = false to say so (the completion check then warns), or use a store that honours it",
        Need::PreventOverwrite,
    ),
];

/// The store's clock against this machine's (SigV4 and every ticket's expiry depend on it).
async fn clock(prober: &Prober<'_>) -> Finding {
    const TITLE: &str = "the store's clock agrees with this machine's";
    let sent = SystemTime::now();
    let answer = prober.bucket_answer().await;
    let Ok(Answer {
        date: Some(date), ..
    }) = answer
    else {
        return Finding {
            check: "clock",
            title: TITLE,
            verdict: Verdict::Warn,
            observed: format!("no Date header to compare ({})", said(&answer)),
            fix: None,
            needed: true,
        };
    };
    let skew = date
        .duration_since(sent)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    // The header has whole seconds: a second either way is no skew.
    let observed = format!("{} s apart", skew.as_secs().saturating_sub(1));
    if skew >= SKEW_REFUSED {
        Finding {
            check: "clock",
            title: TITLE,
            verdict: Verdict::Fail,
            observed,
            fix: Some("synchronise this machine's clock (NTP): the store refuses requests signed more than 15 minutes off".to_owned()),
            needed: true,
        }
    } else if skew >= SKEW_WARNED {
        Finding {
            check: "clock",
            title: TITLE,
            verdict: Verdict::Warn,
            observed,
            fix: Some(
                "synchronise the clocks (NTP): tickets expire early or late by the difference"
                    .to_owned(),
            ),
            needed: true,
        }
    } else {
        pass("clock", TITLE, &observed, true)
    }
}

/// Removes everything under `prefix`; a finding only if something stays.
async fn clean_up(store: &dyn ObjectStore, bucket: &str, prefix: &str) -> Finding {
    const TITLE: &str = "the probes' objects are removed";
    let mut removed = 0;
    let outcome = async {
        loop {
            let listed = store.list_objects(bucket, prefix, 1000).await?;
            if listed.is_empty() {
                return Ok::<_, crate::store::StoreError>(());
            }
            for object in listed {
                store.delete_object(bucket, &object.key).await?;
                removed += 1;
            }
        }
    }
    .await;
    match outcome {
        Ok(()) => pass(
            "cleanup",
            TITLE,
            &format!("{removed} removed under {prefix}"),
            false,
        ),
        Err(error) => Finding {
            check: "cleanup",
            title: TITLE,
            verdict: Verdict::Warn,
            observed: error_chain(&error),
            fix: Some(format!(
                "remove what is left under {prefix} (the credentials may lack s3:DeleteObject)"
            )),
            needed: false,
        },
    }
}

const CREDENTIALS: &str = "the service's credentials resolve";

/// The credentials finding when none resolve (`observed`: why).
fn no_credentials(observed: String) -> Finding {
    Finding {
        check: "credentials",
        title: CREDENTIALS,
        verdict: Verdict::Fail,
        observed,
        fix: Some("give the service AWS credentials (environment, profile, web identity, ECS or instance role)".to_owned()),
        needed: true,
    }
}

fn pass(check: &'static str, title: &'static str, observed: &str, needed: bool) -> Finding {
    Finding {
        check,
        title,
        verdict: Verdict::Pass,
        observed: observed.to_owned(),
        fix: None,
        needed,
    }
}

fn skip(check: &'static str, title: &'static str, why: &str, needed: bool) -> Finding {
    Finding {
        check,
        title,
        verdict: Verdict::Skip,
        observed: why.to_owned(),
        fix: None,
        needed,
    }
}

/// A probe the store must take: pass when it did, fail with `fix` when not.
fn acceptance(
    (check, title): (&'static str, &'static str),
    outcome: &Result<Answer, probes::ProbeError>,
    fix: &str,
    needed: bool,
) -> Finding {
    match outcome {
        Ok(answer) if answer.accepted() => pass(check, title, &answer.said(), needed),
        outcome => Finding {
            check,
            title,
            verdict: Verdict::Fail,
            observed: said(outcome),
            fix: Some(fix.to_owned()),
            needed,
        },
    }
}

/// A probe that the store must refuse: pass when it did, fail with `consequence` when not.
fn refusal(
    check: &'static str,
    title: &'static str,
    answer: &Result<Answer, probes::ProbeError>,
    consequence: &str,
    needed: bool,
) -> Finding {
    match answer {
        Ok(answer) if !answer.accepted() => {
            pass(check, title, &format!("refused: {}", answer.said()), needed)
        }
        Ok(answer) => Finding {
            check,
            title,
            verdict: Verdict::Fail,
            observed: format!("accepted: {}", answer.said()),
            fix: Some(consequence.to_owned()),
            needed,
        },
        Err(error) => Finding {
            check,
            title,
            verdict: Verdict::Fail,
            observed: error.to_string(),
            fix: None,
            needed,
        },
    }
}

/// A probe's outcome in a few words.
fn said(outcome: &Result<Answer, probes::ProbeError>) -> String {
    match outcome {
        Ok(answer) => answer.said(),
        Err(error) => error.to_string(),
    }
}

/// An error and its causes, for an operator (a store's errors carry no secret).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}
