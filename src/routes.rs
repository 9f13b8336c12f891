//! The service's route table, written once: every path the routers serve, and the first
//! segments the configuration keeps Companion's routes away from.

/// `POST`: a ticket.
pub const UPLOADS: &str = "/uploads";
/// `POST`: the completion check.
pub const UPLOADS_COMPLETE: &str = "/uploads/complete";
/// `GET`: the caller's and the tenant's use of the limits.
pub const UPLOADS_USAGE: &str = "/uploads/usage";
/// `POST`: start a multipart upload.
pub const MULTIPART: &str = "/uploads/multipart";
/// `DELETE`: abort it.
pub const MULTIPART_UPLOAD: &str = "/uploads/multipart/{handle}";
/// `POST`: sign part URLs.
pub const MULTIPART_PARTS: &str = "/uploads/multipart/{handle}/parts";
/// `POST`: complete it.
pub const MULTIPART_COMPLETE: &str = "/uploads/multipart/{handle}/complete";
/// `POST`: Uppy 6's `signRequest`.
pub const UPPY_SIGN: &str = "/uploads/uppy/sign";
/// `GET`, `POST`, `DELETE`: a receipt's answer, as S3 would give it.
pub const UPPY_ANSWER: &str = "/uploads/uppy/answer";
/// Liveness.
pub const LIVEZ: &str = "/livez";
/// Readiness.
pub const READYZ: &str = "/readyz";
/// Prometheus text.
pub const METRICS: &str = "/metrics";
/// The spec.
pub const OPENAPI: &str = "/openapi.yaml";
/// The demo page (`dev`).
pub const DEMO: &str = "/demo";
/// The typed client the demo page imports.
pub const DEMO_CLIENT: &str = "/demo/client.js";
/// The caller's objects, for the demo page.
pub const DEMO_OBJECTS: &str = "/demo/objects";
/// What `dev`'s webhook receiver got (the demo page shows it).
pub const DEMO_EVENTS: &str = "/demo/events";

/// Companion's routes, under `server.companion_prefix`.
pub mod companion {
    /// `GET`: a ticket of the tenant's method.
    pub const PARAMS: &str = "/params";
    /// `POST`: start a multipart upload.
    pub const MULTIPART: &str = "/multipart";
    /// `GET`: list its parts; `DELETE`: abort it.
    pub const UPLOAD: &str = "/multipart/{upload_id}";
    /// `GET`: sign a batch of part URLs.
    pub const BATCH: &str = "/multipart/{upload_id}/batch";
    /// `POST`: complete it.
    pub const COMPLETE: &str = "/multipart/{upload_id}/complete";
    /// `GET`: sign one part URL.
    pub const PART: &str = "/multipart/{upload_id}/{part_number}";
}

/// The first segments of every path above but Companion's: a Companion prefix may be
/// neither over nor under one of them.
pub const ROOTS: [&str; 6] = [UPLOADS, LIVEZ, READYZ, METRICS, OPENAPI, DEMO];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_own_path_lies_under_a_root() {
        let own = [
            UPLOADS,
            UPLOADS_COMPLETE,
            UPLOADS_USAGE,
            MULTIPART,
            MULTIPART_UPLOAD,
            MULTIPART_PARTS,
            MULTIPART_COMPLETE,
            UPPY_SIGN,
            UPPY_ANSWER,
            LIVEZ,
            READYZ,
            METRICS,
            OPENAPI,
            DEMO,
            DEMO_CLIENT,
            DEMO_OBJECTS,
            DEMO_EVENTS,
        ];
        for path in own {
            let under = |root: &str| path == root || path.starts_with(&format!("{root}/"));
            assert!(ROOTS.into_iter().any(under), "{path} is under no root");
        }
    }
}
