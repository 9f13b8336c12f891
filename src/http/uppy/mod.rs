//! Uppy's two front doors, side by side, each a thin adapter of the use cases in
//! `upload` (neither imports the other):
//! - [`companion`]: Uppy Companion's S3 routes, for `@uppy/aws-s3` 4.x and 5.x pointed
//!   at this service (`endpoint`), nested under `server.companion_prefix`;
//! - [`signrequest`]: Uppy 6's `signRequest`, one route that signs each request the
//!   plugin would make, and the answers the store would give for those done here.

pub(crate) mod companion;
pub(crate) mod signrequest;
