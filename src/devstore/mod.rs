//! The S3-compatible store `upload-tickets dev` brings along, so that the tickets it
//! hands out can be used at once: s3s-fs (files in a directory, SigV4 checked by s3s)
//! behind the presign core's POST-policy evaluator, with CORS for the dev origins.
//!
//! Why our evaluator in front: the dev store must refuse what AWS refuses, or it teaches
//! people tickets that fail in production; the evaluator's verdicts are held to those of
//! Garage, SeaweedFS and s3s-fs 0.17 by the end-to-end differential test, and it says
//! which rule broke in words. (s3s 0.14.1 checks the conditions too; ours answers first.)
//!
//! It verifies declared checksums itself too (POST fields, PUT and part headers) before
//! s3s-fs sees the bytes: s3s-fs 0.14 refuses a wrong one with `BadDigest` but has
//! already written the file, so the object would land anyway.
//!
//! What it is not: a production store. A POST upload's fields are checked (signature,
//! expiry, size range) before a byte of its file is read; the file is then held in
//! memory while it is checked, up to its policy's maximum (at most [`MAX_POST_BYTES`]),
//! as is a PUT that declares a checksum; and there is one key pair.

mod checksums;
mod post;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::s3xml;
pub use checksums::digest;
use post::check_post_policy;

/// The largest POST upload the dev store takes: the form is held in memory while the
/// policy is checked (S3 itself takes up to 5 GiB).
pub const MAX_POST_BYTES: usize = 1 << 30;

/// Where and how to run the store.
#[derive(Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The data directory; `None`: a fresh one under the OS temp dir, removed on drop.
    pub data: Option<PathBuf>,
    /// The one access key id the store knows.
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
    /// The buckets made at start.
    pub buckets: Vec<String>,
    /// Origins the store answers CORS for (the demo page's, the front ends').
    pub origins: Vec<String>,
    /// Checks switched off (a test hook that plays a lax store; none in `dev`). s3s
    /// checks a form's policy again, so a form only the switched-off check refuses is
    /// stored by the dev store itself.
    pub lax: Lax,
}

/// Checks the dev store can be told to skip, each playing a store that does not enforce
/// it: what `upload-tickets doctor` must catch. All off by default. (The signature is
/// not among them: s3s checks it again.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lax {
    /// Takes a form after its policy's expiration.
    pub expiry: bool,
    /// Takes a file outside `content-length-range`.
    pub size: bool,
    /// Takes fields that break an `eq` or `starts-with`.
    pub conditions: bool,
    /// Takes fields no condition names.
    pub unnamed_fields: bool,
    /// Takes `x-amz-*` headers a presigned URL did not sign (as s3s does alone).
    pub unsigned_headers: bool,
}

impl Lax {
    /// Whether `refusal` is one of the checks switched off.
    fn excuses(&self, refusal: &s3_presigned_post::evaluate::Refusal) -> bool {
        use s3_presigned_post::evaluate::Refusal;
        match refusal {
            Refusal::Expired(_) => self.expiry,
            Refusal::SizeOutOfRange { .. } => self.size,
            Refusal::ConditionFailed { .. } => self.conditions,
            Refusal::UnlistedField(_) => self.unnamed_fields,
            _ => false,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("listen", &self.listen)
            .field("data", &self.data)
            .field("access_key", &self.access_key)
            .field("buckets", &self.buckets)
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevStoreError {
    /// The address is taken by something that does not answer like an S3 store.
    #[error(
        "{0} is in use by something that does not answer like an S3 store: free the port, pass --store ADDR, or --no-store"
    )]
    PortTaken(SocketAddr),
    /// Binding failed otherwise.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The data directory cannot be made.
    #[error("the data directory {0}: {1}")]
    Data(PathBuf, std::io::Error),
    /// s3s-fs refused the directory.
    #[error("the data directory {0}: {1}")]
    Store(PathBuf, String),
}

/// A store for `dev` to sign for.
#[derive(Debug)]
pub enum Started {
    /// Ours, running until dropped.
    Embedded(DevStore),
    /// The address was taken by another S3-compatible store: tickets go there.
    Existing(SocketAddr),
}

/// The embedded store, serving until dropped.
#[derive(Debug)]
pub struct DevStore {
    address: SocketAddr,
    data: PathBuf,
    remove_data: bool,
    task: JoinHandle<()>,
}

impl DevStore {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where its objects are: `<data>/<bucket>/<key>`.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// Whether the data directory goes with the store.
    pub fn removes_data(&self) -> bool {
        self.remove_data
    }
}

impl Drop for DevStore {
    fn drop(&mut self) {
        self.task.abort();
        if self.remove_data {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

/// Starts the store on `options.listen`, or finds another S3 store there.
pub async fn start(options: Options) -> Result<Started, DevStoreError> {
    let listener = match TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            return if answers_like_s3(options.listen).await {
                Ok(Started::Existing(options.listen))
            } else {
                Err(DevStoreError::PortTaken(options.listen))
            };
        }
        Err(error) => return Err(DevStoreError::Bind(options.listen, error)),
    };
    let address = listener
        .local_addr()
        .map_err(|e| DevStoreError::Bind(options.listen, e))?;
    let (data, remove_data) = match &options.data {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "upload-tickets-dev-{}-{}",
                std::process::id(),
                address.port()
            )),
            true,
        ),
    };
    // s3s-fs: a directory is a bucket.
    for bucket in &options.buckets {
        std::fs::create_dir_all(data.join(bucket))
            .map_err(|e| DevStoreError::Data(data.clone(), e))?;
    }
    let router = router(&options, &data)?;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the dev store stopped");
        }
    });
    Ok(Started::Embedded(DevStore {
        address,
        data,
        remove_data,
        task,
    }))
}

/// Whether something S3-like answers on `address`: an XML error or an `x-amz-*` header
/// to an unsigned request, as every S3-compatible store gives.
async fn answers_like_s3(address: SocketAddr) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    let Ok(response) = client.get(format!("http://{address}/")).send().await else {
        return false;
    };
    let amz = response
        .headers()
        .keys()
        .any(|name| name.as_str().starts_with("x-amz-"));
    let xml = response
        .text()
        .await
        .is_ok_and(|body| body.contains("<Error>") || body.contains("ListAllMyBucketsResult"));
    amz || xml
}

/// What the gate needs to check a form.
struct Gate {
    access_key: String,
    secret_key: String,
    lax: Lax,
    /// Where s3s-fs keeps objects (`bucket/key`): a lax store writes there itself.
    data: PathBuf,
}

fn router(options: &Options, data: &Path) -> Result<axum::Router, DevStoreError> {
    let fs = s3s_fs::FileSystem::new(data)
        .map_err(|e| DevStoreError::Store(data.to_owned(), format!("{e:?}")))?;
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        options.access_key.as_str(),
        options.secret_key.as_str(),
    ));
    let s3 = builder.build();
    let gate = Arc::new(Gate {
        access_key: options.access_key.clone(),
        secret_key: options.secret_key.clone(),
        lax: options.lax,
        data: data.to_owned(),
    });
    let forward = move |request: Request| {
        let s3 = s3.clone();
        async move {
            match s3.call(request.map(s3s::Body::http_body_unsync)).await {
                Ok(response) => response.map(Body::new),
                Err(error) => s3xml::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    &format!("{error:?}"),
                ),
            }
        }
    };
    Ok(axum::Router::new()
        .fallback(forward)
        .layer(axum::middleware::from_fn_with_state(
            gate,
            check_post_policy,
        ))
        .layer(cors(&options.origins)))
}

/// CORS as a bucket rule for browser uploads would set it: the dev origins and any
/// page served from this machine (the demo's port is not known when the store
/// starts), any request header (the signed ones vary), and the headers upload code
/// reads exposed.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let allowed = move |origin: &HeaderValue, _: &axum::http::request::Parts| {
        origins.contains(origin) || origin.to_str().is_ok_and(is_loopback_origin)
    };
    let exposed = [
        "etag",
        "location",
        "x-amz-request-id",
        "x-amz-version-id",
        "x-amz-checksum-crc32",
        "x-amz-checksum-crc32c",
        "x-amz-checksum-crc64nvme",
        "x-amz-checksum-sha1",
        "x-amz-checksum-sha256",
    ]
    .map(HeaderName::from_static);
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(allowed))
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(exposed)
        .max_age(Duration::from_secs(600))
}

/// `http://127.0.0.1:<port>`, `http://localhost:<port>` or `http://[::1]:<port>`.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|host| {
        rest.strip_prefix(host).is_some_and(|port| {
            port.is_empty()
                || port
                    .strip_prefix(':')
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_on_this_machine_may_upload() {
        assert!(is_loopback_origin("http://127.0.0.1:8080"));
        assert!(is_loopback_origin("http://localhost:5173"));
        assert!(is_loopback_origin("http://[::1]:3000"));
        assert!(is_loopback_origin("http://localhost"));
        assert!(!is_loopback_origin("http://localhost.example.com"));
        assert!(!is_loopback_origin("http://127.0.0.1:80x"));
        assert!(!is_loopback_origin("https://evil.example"));
        assert!(!is_loopback_origin("http://127.0.0.10:80"));
    }
    #[test]
    fn error_documents_escape_the_message() {
        assert_eq!(s3xml::escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
