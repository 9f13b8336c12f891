//! `RateLimit-Policy` and `RateLimit` (the IETF httpapi draft that gateways and clients
//! are converging on): a client sees its budget on every ticket, before a 429 tells it.
//! Taken from the counts the ticket's own charge left, so they cost no extra look at the
//! counters (no Redis round trip).
//!
//! Policies, per tenant as configured: `"subject"` (this user's tickets a minute),
//! `"tenant"` (the tenant's tickets a minute), `"bytes"` (the tenant's bytes a UTC day).

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::{Refused, Used};
use crate::policy::Quotas;

/// `RateLimit-Policy`: the tenant's quotas.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of each.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// What a ticket request found at the counters.
#[derive(Debug, Clone, Copy)]
pub enum Seen {
    /// Counted: what is used now.
    Used(Used),
    /// Refused by `Refused`, its window turning in this many seconds.
    Refused(Refused, u64),
}

/// One of the tenant's quotas: its name, its size, its window in seconds, its unit.
struct Policy {
    name: &'static str,
    quota: u64,
    window: u64,
    bytes: bool,
}

fn policies(quotas: &Quotas) -> impl Iterator<Item = Policy> {
    let minute = |name, quota: Option<u32>| {
        quota.map(|quota| Policy {
            name,
            quota: u64::from(quota),
            window: 60,
            bytes: false,
        })
    };
    [
        minute("subject", quotas.subject_per_minute),
        minute("tenant", quotas.tenant_per_minute),
        quotas.bytes_per_day.map(|quota| Policy {
            name: "bytes",
            quota,
            window: 86_400,
            bytes: true,
        }),
    ]
    .into_iter()
    .flatten()
}

/// `RateLimit-Policy` of a tenant with `quotas`, made once when the configuration is
/// loaded; none for a tenant without ticket quotas.
pub fn policy_header(quotas: &Quotas) -> Option<HeaderValue> {
    let mut policy = String::new();
    for p in policies(quotas) {
        if !policy.is_empty() {
            policy.push_str(", ");
        }
        let _ = write!(policy, "\"{}\";q={};w={}", p.name, p.quota, p.window);
        if p.bytes {
            policy.push_str(";qu=\"content-bytes\"");
        }
    }
    // Only digits, names and punctuation: always a valid header value.
    (!policy.is_empty())
        .then(|| HeaderValue::from_str(&policy).ok())
        .flatten()
}

/// The tenant's `policy` header and the `RateLimit` of `quotas` after `seen`. A refusal
/// names only the quota that refused.
pub fn insert(headers: &mut HeaderMap, policy: &HeaderValue, quotas: &Quotas, seen: Seen) {
    headers.insert(RATELIMIT_POLICY, policy.clone());
    let mut left = String::with_capacity(96);
    for p in policies(quotas) {
        let remaining = match seen {
            Seen::Used(used) => {
                let (count, reset) = match p.name {
                    "subject" => (used.subject, used.minute_left),
                    "tenant" => (used.tenant, used.minute_left),
                    _ => (used.bytes, used.day_left),
                };
                Some((p.quota.saturating_sub(count), reset))
            }
            Seen::Refused(refused, reset) => match (refused, p.name) {
                (Refused::SubjectRate, "subject") | (Refused::TenantRate, "tenant") => {
                    Some((0, reset))
                }
                (Refused::Quota { remaining }, "bytes") => Some((remaining, reset)),
                _ => None,
            },
        };
        if let Some((remaining, reset)) = remaining {
            if !left.is_empty() {
                left.push_str(", ");
            }
            let _ = write!(left, "\"{}\";r={remaining};t={reset}", p.name);
        }
    }
    if left.is_empty() {
        return;
    }
    // Handed over without a copy.
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(left)) {
        headers.insert(RATELIMIT, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HeaderValue {
        policy_header(&quotas()).unwrap()
    }

    fn quotas() -> Quotas {
        Quotas {
            subject_per_minute: Some(10),
            tenant_per_minute: Some(100),
            bytes_per_day: Some(5000),
            ..Quotas::default()
        }
    }

    #[test]
    fn a_ticket_says_every_quota_and_what_is_left() {
        let mut headers = HeaderMap::new();
        let used = Used {
            subject: 3,
            tenant: 40,
            bytes: 1200,
            minute_left: 17,
            day_left: 3600,
        };
        insert(&mut headers, &policy(), &quotas(), Seen::Used(used));
        assert_eq!(
            headers[RATELIMIT_POLICY],
            "\"subject\";q=10;w=60, \"tenant\";q=100;w=60, \"bytes\";q=5000;w=86400;qu=\"content-bytes\""
        );
        assert_eq!(
            headers[RATELIMIT],
            "\"subject\";r=7;t=17, \"tenant\";r=60;t=17, \"bytes\";r=3800;t=3600"
        );
    }

    #[test]
    fn a_refusal_names_the_quota_that_refused() {
        let mut headers = HeaderMap::new();
        let tenant = Seen::Refused(Refused::TenantRate, 9);
        insert(&mut headers, &policy(), &quotas(), tenant);
        assert_eq!(headers[RATELIMIT], "\"tenant\";r=0;t=9");
        let mut headers = HeaderMap::new();
        let quota = Refused::Quota { remaining: 12 };
        insert(
            &mut headers,
            &policy(),
            &quotas(),
            Seen::Refused(quota, 500),
        );
        assert_eq!(headers[RATELIMIT], "\"bytes\";r=12;t=500");
        // A refusal by a limit that is no ticket quota: the policies only.
        let mut headers = HeaderMap::new();
        let open = Seen::Refused(Refused::OpenUploads, 5);
        insert(&mut headers, &policy(), &quotas(), open);
        assert!(headers.get(RATELIMIT).is_none());
        assert!(headers.get(RATELIMIT_POLICY).is_some());
    }

    #[test]
    fn a_tenant_without_ticket_quotas_has_no_policy() {
        let open_only = Quotas {
            open_uploads: Some(3),
            ..Quotas::default()
        };
        assert!(policy_header(&Quotas::default()).is_none());
        assert!(policy_header(&open_only).is_none());
    }
}
