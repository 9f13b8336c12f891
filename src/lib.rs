//! upload-tickets: short-lived S3 upload tickets (presigned POST) for front ends.
//!
//! # Layout
//! - [`presign`]: the pure core. Builds and signs S3 POST policies (SigV4), byte for byte
//!   like `@aws-sdk/s3-presigned-post`. No I/O, no clock: usable from any Rust program.
//! - [`credentials`] (feature `service`): AWS credentials from the default chain.
//! - [`cli`] (feature `service`): the `upload-tickets` command line.

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod presign;

#[cfg(feature = "service")]
pub mod cli;
#[cfg(feature = "service")]
pub mod credentials;
