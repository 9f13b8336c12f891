//! upload-tickets: short-lived S3 upload tickets (presigned POST) for front ends.
//!
//! The presign core (POST policies, presigned URLs, the POST-policy evaluator) is its own
//! crate, `s3-presigned-post`; this one is the service around it.
//!
//! # Layout
//! - [`policy`] (feature `rules`, part of `service`): tenant rules, from a request to a
//!   ticket plan.
//! - [`auth`] (feature `service`): JWT verification, keys from a secret, PEM or JWKS.
//! - [`credentials`] (feature `service`): AWS credentials from the default chain, cached.
//! - [`config`] (feature `service`): typed settings, file plus environment, validated.
//! - [`http`] (feature `service`): the axum router, the front doors (ours, Uppy's) as
//!   thin adapters of [`upload`], and the one problem+json mapping.
//! - [`handle`] (feature `service`): signed multipart upload handles.
//! - [`store`] (feature `service`): the one place that talks to the object store: a
//!   trait, its `aws-sdk-s3` implementation and an in-memory one for tests.
//! - [`clock`] (feature `service`): the time handlers read, injectable in tests.
//! - [`setting`] (feature `rules`): the one refusal type of start-up checks.
//! - [`app`] (feature `service`): the application: the use cases' dependencies, the
//!   tenants and the clock, made once from the configuration.
//! - [`events`] (feature `service`): the background work after the bytes land: the
//!   sweeper and the delivery of upload events, with retries.
//! - [`webhook`] (feature `service`): Standard Webhooks signatures, one attempt each.
//! - [`tenant`] (feature `service`): a tenant's rules and webhook, in one place.
//! - [`upload`] (feature `service`): the life of an upload as use cases without HTTP:
//!   tickets, multipart uploads, the completion check, finding, verifying and reporting
//!   an upload.
//! - [`startup`], [`telemetry`], [`cli`] (feature `service`): running it.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

#[cfg(feature = "service")]
pub mod app;
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
pub mod doctor;
#[cfg(feature = "service")]
pub mod events;
#[cfg(feature = "service")]
pub mod handle;
#[cfg(feature = "service")]
pub mod http;
#[cfg(feature = "service")]
pub mod limits;
#[cfg(feature = "rules")]
pub mod policy;
#[cfg(feature = "service")]
pub mod routes;
#[cfg(feature = "service")]
pub(crate) mod s3xml;
#[cfg(feature = "rules")]
pub mod setting;
#[cfg(feature = "service")]
pub mod startup;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod telemetry;
#[cfg(feature = "service")]
pub mod tenant;
#[cfg(feature = "service")]
pub mod upload;
#[cfg(feature = "service")]
pub mod webhook;
