//! A tenant as the service runs it: its rules (which carry its limits) and its webhook,
//! in one place, looked up once per request by the tenant id of the caller's token.

use crate::policy::TenantRules;
use crate::webhook::Webhook;

/// One configured tenant.
#[derive(Debug)]
pub struct Tenant {
    /// Bucket, key template, sizes, types, metadata, expiry, checksums, quotas.
    pub rules: TenantRules,
    /// Where completion reports go, if the tenant wants them.
    pub webhook: Option<Webhook>,
    /// The browser origins its front ends run on, which the bucket's CORS rule must let
    /// upload (`doctor` asks for each); none set: `server.cors_allowed_origins`.
    pub front_end_origins: Vec<String>,
    /// Its `RateLimit-Policy` header, made once: none without ticket quotas.
    pub rate_limit_policy: Option<axum::http::HeaderValue>,
}

impl Tenant {
    /// The tenant id (the value of the token's tenant claim).
    pub fn id(&self) -> &str {
        self.rules.id.as_str()
    }
}
