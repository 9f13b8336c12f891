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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::http::s3xml;
use s3_presigned_post::evaluate::{PostedForm, Refusal, evaluate};
use s3_presigned_post::{Checksum, ChecksumAlgorithm, PresignError};

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

/// A POST upload (a form posted to a bucket) passes only if [`evaluate`] accepts it;
/// everything else goes to s3s as it came.
async fn check_post_policy(
    State(gate): State<Arc<Gate>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(declared) = declared_header(&request) {
        return check_put_checksum(declared, request, next).await;
    }
    let Some(boundary) = form_boundary(&request) else {
        return next.run(request).await;
    };
    let Some(bucket) = posted_bucket(request.uri().path()).map(str::to_owned) else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let secret_for = |id: &str| (id == gate.access_key).then(|| gate.secret_key.clone());
    // The signature, the expiry and the size range before a byte of the file is read:
    // a form nobody signed is not buffered, and a signed one only up to its range.
    let admit = |fields: &[(String, String)], filename: &str| {
        let posted = PostedForm {
            bucket: &bucket,
            fields,
            filename,
            size: 0,
        };
        match evaluate(&posted, secret_for, SystemTime::now()) {
            Ok(()) => Ok(MAX_POST_BYTES as u64),
            Err(Refusal::SizeOutOfRange { max, .. }) => Ok(max.min(MAX_POST_BYTES as u64)),
            Err(refusal) => Err(refusal),
        }
    };
    let (form, bytes) = match read_form(body, boundary, admit).await {
        Ok(read) => read,
        Err(FormError::Refused(refusal)) => return refused(&refusal),
        Err(FormError::TooLarge(max)) => {
            return s3xml::error(
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                &format!("the file is over the {max} bytes its policy (and the dev store) allows"),
            );
        }
        Err(FormError::Malformed(reason)) => {
            return s3xml::error(StatusCode::BAD_REQUEST, "MalformedPOSTRequest", &reason);
        }
    };
    let posted = PostedForm {
        bucket: &bucket,
        fields: &form.fields,
        filename: &form.filename,
        size: form.size,
    };
    let verdict = evaluate(&posted, secret_for, SystemTime::now());
    if verdict.is_ok()
        && let Some(mismatch) = form.declared.and_then(|d| mismatch(&d, &form.file))
    {
        return mismatch;
    }
    match verdict {
        Ok(()) => {
            let host = parts.headers.get(header::HOST).cloned();
            let mut response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            if response.status().is_success() {
                let key = form
                    .fields
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("key"));
                let key = key.map_or("", |(_, v)| v.as_str());
                add_post_headers(&mut response, host, &bucket, key, &form.file);
            }
            response
        }
        Err(refusal) => refused(&refusal),
    }
}

/// The answer to a refused POST upload, logged.
fn refused(refusal: &Refusal) -> Response {
    tracing::info!(%refusal, "dev store: POST upload refused");
    let (status, code) = s3_code(refusal);
    s3xml::error(status, code, &refusal.to_string())
}

/// The `ETag` and `Location` headers S3 answers a POST upload with and s3s-fs leaves
/// out: upload code reads them (Uppy waits for the ETag for ever without it).
fn add_post_headers(
    response: &mut Response,
    host: Option<HeaderValue>,
    bucket: &str,
    key: &str,
    file: &[u8],
) {
    use md5::Digest as _;
    let headers = response.headers_mut();
    if !headers.contains_key(header::ETAG) {
        let etag = format!("\"{}\"", hex::encode(md5::Md5::digest(file)));
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
    }
    let host = host.as_ref().and_then(|h| h.to_str().ok());
    if let Some(host) = host
        && !headers.contains_key(header::LOCATION)
    {
        let key: String = key
            .split('/')
            .map(|segment| percent_encoding::utf8_percent_encode(segment, KEY_SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/");
        if let Ok(value) = HeaderValue::from_str(&format!("http://{host}/{bucket}/{key}")) {
            headers.insert(header::LOCATION, value);
        }
    }
}

/// What a key's path segment keeps unencoded in a URL: RFC 3986's unreserved characters.
const KEY_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A PUT (object or part) that declares a checksum in a header: its algorithm and value.
fn declared_header(request: &Request) -> Option<(ChecksumAlgorithm, String)> {
    if request.method() != Method::PUT {
        return None;
    }
    ChecksumAlgorithm::ALL.into_iter().find_map(|algorithm| {
        let value = request.headers().get(algorithm.field())?.to_str().ok()?;
        Some((algorithm, value.to_owned()))
    })
}

/// Passes a PUT on only if its body has the checksum it declares.
async fn check_put_checksum(
    declared: (ChecksumAlgorithm, String),
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_POST_BYTES).await else {
        return s3xml::error(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            &format!("the dev store verifies checksums of uploads of up to {MAX_POST_BYTES} bytes"),
        );
    };
    if let Some(mismatch) = mismatch(&declared, &bytes) {
        return mismatch;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `BadDigest` unless `bytes` have the declared checksum (a malformed value is
/// `InvalidDigest`).
fn mismatch((algorithm, value): &(ChecksumAlgorithm, String), bytes: &[u8]) -> Option<Response> {
    if Checksum::new(*algorithm, value).is_err() {
        let message = format!("{} is not a base64 {}", algorithm.field(), algorithm.name());
        return Some(s3xml::error(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            &message,
        ));
    }
    let actual = match digest(*algorithm, bytes) {
        Ok(actual) => actual,
        Err(error) => {
            let message = error.to_string();
            return Some(s3xml::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &message,
            ));
        }
    };
    (actual.value() != value).then(|| {
        let message = format!(
            "the {} of the bytes is {}, not the declared {value}",
            algorithm.name(),
            actual.value()
        );
        s3xml::error(StatusCode::BAD_REQUEST, "BadDigest", &message)
    })
}

/// The checksum of `bytes` as S3 computes it: the digest, big-endian for CRCs, base64.
/// (Each digest has its algorithm's length: the error cannot happen.)
pub fn digest(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> Result<Checksum, PresignError> {
    use crc_fast::CrcAlgorithm as Crc;
    use sha2::Digest as _;
    let crc32 = |crc| {
        let value = u32::try_from(crc_fast::checksum(crc, bytes)).unwrap_or_default();
        value.to_be_bytes().to_vec()
    };
    let raw = match algorithm {
        ChecksumAlgorithm::Crc32 => crc32(Crc::Crc32IsoHdlc),
        ChecksumAlgorithm::Crc32c => crc32(Crc::Crc32Iscsi),
        ChecksumAlgorithm::Crc64Nvme => crc_fast::checksum(Crc::Crc64Nvme, bytes)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Sha1 => sha1::Sha1::digest(bytes).to_vec(),
        ChecksumAlgorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
    };
    Checksum::from_digest(algorithm, &raw)
}

/// The boundary of a `multipart/form-data` POST.
fn form_boundary(request: &Request) -> Option<String> {
    if request.method() != Method::POST {
        return None;
    }
    let content_type = request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    multer::parse_boundary(content_type).ok()
}

/// The bucket of a path-style POST upload (`/bucket` or `/bucket/`); other paths are
/// other operations.
fn posted_bucket(path: &str) -> Option<&str> {
    let bucket = path.strip_prefix('/')?;
    let bucket = bucket.strip_suffix('/').unwrap_or(bucket);
    (!bucket.is_empty() && !bucket.contains('/')).then_some(bucket)
}

/// A posted form: the fields before the file, the file's name, size and bytes, and a
/// checksum its fields declare. Fields after the file are ignored, as S3 does.
#[derive(Debug)]
struct Form {
    fields: Vec<(String, String)>,
    filename: String,
    size: u64,
    file: Vec<u8>,
    declared: Option<(ChecksumAlgorithm, String)>,
}

/// Why a form was not read whole.
#[derive(Debug)]
enum FormError {
    /// `admit` refused its fields: why.
    Refused(Refusal),
    /// The file is over the bound `admit` gave, or the form over the dev store's.
    TooLarge(u64),
    /// Not a form S3 would read.
    Malformed(String),
}

/// Largest text field of a form (a policy is a few KiB).
const MAX_FIELD_BYTES: u64 = 64 * 1024;

/// Reads a POST form as it streams in: the fields before the file, then, once `admit`
/// has passed them (with the file's name) and said how many bytes the file may have,
/// the file within that bound. Answers the form and the bytes read, to pass on.
async fn read_form(
    body: Body,
    boundary: String,
    admit: impl FnOnce(&[(String, String)], &str) -> Result<u64, Refusal>,
) -> Result<(Form, Bytes), FormError> {
    use futures_util::StreamExt as _;
    use std::task::Poll;
    // What multer reads, kept to be passed on whole (s3s-fs reads the form itself).
    let raw = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let kept = Arc::clone(&raw);
    // multer reads as long as the stream has data ready; a chunk at a time (a pause,
    // woken at once, after each) it reads only what each step needs, so the file's
    // bytes wait in the socket until the fields are admitted, and then only to the bound.
    let mut inner = body.into_data_stream();
    let mut paused = false;
    let stream = futures_util::stream::poll_fn(move |cx| {
        if paused {
            paused = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &next {
            paused = true;
            if let Ok(mut raw) = kept.lock() {
                raw.extend_from_slice(chunk);
            }
        }
        next
    });
    let limits = multer::SizeLimit::new()
        .whole_stream(MAX_POST_BYTES as u64 + MAX_FIELD_BYTES)
        .per_field(MAX_POST_BYTES as u64);
    let constraints = multer::Constraints::new().size_limit(limits);
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let malformed = |e: multer::Error| FormError::Malformed(e.to_string());
    let mut fields: Vec<(String, String)> = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if !name.eq_ignore_ascii_case("file") {
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                value.extend_from_slice(&chunk);
                if value.len() as u64 > MAX_FIELD_BYTES {
                    return Err(FormError::Malformed(format!(
                        "the field {name:?} is over {MAX_FIELD_BYTES} bytes"
                    )));
                }
            }
            let value = String::from_utf8(value)
                .map_err(|_| FormError::Malformed(format!("the field {name:?} is not UTF-8")))?;
            fields.push((name, value));
            continue;
        }
        let filename = field.file_name().unwrap_or_default().to_owned();
        let max = admit(&fields, &filename).map_err(FormError::Refused)?;
        let mut file = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            file.extend_from_slice(&chunk);
            if file.len() as u64 > max {
                return Err(FormError::TooLarge(max));
            }
        }
        drop(field);
        // S3 ignores what follows the file; read to the end so that all of it passes on.
        while let Some(mut after) = multipart.next_field().await.map_err(malformed)? {
            while after.chunk().await.map_err(malformed)?.is_some() {}
        }
        let declared = ChecksumAlgorithm::ALL.into_iter().find_map(|algorithm| {
            let (_, value) = fields
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(algorithm.field()))?;
            Some((algorithm, value.clone()))
        });
        let form = Form {
            size: file.len() as u64,
            fields,
            filename,
            file,
            declared,
        };
        let bytes = std::mem::take(
            &mut *raw
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        return Ok((form, Bytes::from(bytes)));
    }
    Err(FormError::Malformed(
        "the form has no file field (it must come last)".to_owned(),
    ))
}

/// The status and S3 error code AWS answers for a refusal.
fn s3_code(refusal: &Refusal) -> (StatusCode, &'static str) {
    match refusal {
        Refusal::MissingField(_) | Refusal::BadSigningFields(_) => {
            (StatusCode::BAD_REQUEST, "InvalidArgument")
        }
        Refusal::MalformedPolicy(_) => (StatusCode::BAD_REQUEST, "InvalidPolicyDocument"),
        Refusal::UnknownAccessKey(_) => (StatusCode::FORBIDDEN, "InvalidAccessKeyId"),
        Refusal::SignatureMismatch => (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"),
        Refusal::SizeOutOfRange { size, max, .. } if size > max => {
            (StatusCode::BAD_REQUEST, "EntityTooLarge")
        }
        Refusal::SizeOutOfRange { .. } => (StatusCode::BAD_REQUEST, "EntityTooSmall"),
        // What S3 answers for any other broken rule of a policy (the evaluator may name
        // new ones: its refusals are non-exhaustive).
        _ => (StatusCode::FORBIDDEN, "AccessDenied"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_form_posted_to_a_bucket_is_a_post_upload() {
        assert_eq!(posted_bucket("/uploads"), Some("uploads"));
        assert_eq!(posted_bucket("/uploads/"), Some("uploads"));
        assert_eq!(posted_bucket("/uploads/a/b"), None);
        assert_eq!(posted_bucket("/"), None);
        assert_eq!(posted_bucket(""), None);
    }

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

    #[tokio::test]
    async fn a_form_is_its_fields_before_the_file() {
        let body = "--X\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk/${filename}\r\n\
                    --X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n\
                    --X\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nignored\r\n--X--\r\n";
        let seen = std::sync::Mutex::new(None);
        let admit = |fields: &[(String, String)], filename: &str| {
            *seen.lock().unwrap() = Some((fields.to_vec(), filename.to_owned()));
            Ok(100)
        };
        let (form, raw) = read_form(Body::from(body), "X".to_owned(), admit)
            .await
            .unwrap();
        assert_eq!(
            form.fields,
            vec![("key".to_owned(), "k/${filename}".to_owned())]
        );
        assert_eq!((form.filename.as_str(), form.size), ("a.txt", 5));
        assert_eq!(raw, body.as_bytes(), "every byte passes on");
        assert_eq!(
            seen.lock().unwrap().clone(),
            Some((form.fields.clone(), "a.txt".to_owned())),
            "admitted on the fields before the file"
        );
        let no_file = "--X\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--X--\r\n";
        assert!(
            read_form(Body::from(no_file), "X".to_owned(), |_, _| Ok(100))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_refused_form_is_not_read_past_its_fields_and_a_signed_one_only_to_its_bound() {
        // A body that never ends after the file's first bytes: reading it whole would hang.
        let head = "--X\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n\
                    --X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n";
        let endless = |head: &'static str| {
            let first =
                futures_util::stream::once(
                    async move { Ok::<_, std::io::Error>(Bytes::from(head)) },
                );
            let more = futures_util::stream::repeat_with(|| Ok(Bytes::from(vec![b'x'; 4096])));
            Body::from_stream(futures_util::StreamExt::chain(first, more))
        };
        let refusal = read_form(endless(head), "X".to_owned(), |_, _| {
            Err(Refusal::SignatureMismatch)
        });
        let refusal = tokio::time::timeout(Duration::from_secs(5), refusal)
            .await
            .expect("refused without reading the file");
        assert!(
            matches!(refusal, Err(FormError::Refused(Refusal::SignatureMismatch))),
            "{refusal:?}"
        );
        let bounded = read_form(endless(head), "X".to_owned(), |_, _| Ok(10_000));
        let bounded = tokio::time::timeout(Duration::from_secs(5), bounded)
            .await
            .expect("stopped at the bound");
        assert!(matches!(bounded, Err(FormError::TooLarge(10_000))));
    }
}
