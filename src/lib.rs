//! upload-tickets: short-lived S3 upload tickets (presigned POST) for front ends.
//!
//! # Layout
//! - [`presign`]: the pure core. Builds and signs S3 POST policies (SigV4), byte for byte
//!   like `@aws-sdk/s3-presigned-post`. No I/O, no clock: usable from any Rust program.
//! - [`policy`] (feature `rules`, part of `service`): tenant rules, from a request to a
//!   ticket plan.
//! - [`auth`] (feature `service`): JWT verification, keys from a secret, PEM or JWKS.
//! - [`credentials`] (feature `service`): AWS credentials from the default chain, cached.
//! - [`config`] (feature `service`): typed settings, file plus environment, validated.
//! - [`http`] (feature `service`): the axum router, handlers and the problem+json mapping.
//! - [`handle`] (feature `service`): signed multipart upload handles.
//! - [`store`] (feature `service`): the one place that talks to the object store: a
//!   trait, its `aws-sdk-s3` implementation and an in-memory one for tests.
//! - [`clock`] (feature `service`): the time handlers read, injectable in tests.
//! - [`setting`] (feature `rules`): the one refusal type of start-up checks.
//! - [`webhook`] (feature `service`): signed completion reports to tenants' endpoints.
//! - [`startup`], [`telemetry`], [`cli`] (feature `service`): running it.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod presign;

#[cfg(feature = "service")]
pub mod auth;
#[cfg(feature = "service")]
pub mod cli;
#[cfg(feature = "service")]
pub mod clock;
#[cfg(feature = "service")]
pub mod config;
#[cfg(feature = "service")]
pub mod credentials;
#[cfg(feature = "dev-store")]
pub mod devstore;
#[cfg(feature = "service")]
pub mod handle;
#[cfg(feature = "service")]
pub mod http;
#[cfg(feature = "service")]
pub mod limits;
#[cfg(feature = "rules")]
pub mod policy;
#[cfg(feature = "rules")]
pub mod setting;
#[cfg(feature = "service")]
pub mod startup;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod telemetry;
#[cfg(feature = "service")]
pub mod webhook;
