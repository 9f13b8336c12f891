//! The dev store's gate for POST uploads: a form posted to a bucket passes on to s3s-fs
//! only if the core's evaluator accepts it, its fields read before its file, the file
//! only up to the policy's range; refusals answered as S3 words them.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::checksums::{check_put_checksum, declared_header, mismatch};
use super::{Gate, MAX_POST_BYTES};
use crate::s3xml;
use s3_presigned_post::ChecksumAlgorithm;
use s3_presigned_post::evaluate::{PostedForm, Refusal, evaluate};

/// A POST upload (a form posted to a bucket) passes only if [`evaluate`] accepts it;
/// everything else goes to s3s as it came.
pub(super) async fn check_post_policy(
    State(gate): State<Arc<Gate>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(header) = unsigned_header(&request).filter(|_| !gate.lax.unsigned_headers) {
        tracing::info!(header, "dev store: presigned request refused");
        return s3xml::error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!("There were headers present in the request which were not signed: {header}"),
        );
    }
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
            Err(refusal) if gate.lax.excuses(&refusal) => Ok(MAX_POST_BYTES as u64),
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
    if let Err(refusal) = &verdict
        && gate.lax.excuses(refusal)
    {
        return store_laxly(&gate, &bucket, &form.fields, bytes).await;
    }
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

/// An `x-amz-*` header of a presigned request (a signature in its query) that its
/// `X-Amz-SignedHeaders` does not list. S3 refuses those: otherwise anything may ride on
/// a ticket (`x-amz-copy-source` turns an upload into a copy, `x-amz-acl` makes it
/// public), and s3s checks only the headers a request says it signed.
fn unsigned_header(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    let signed = url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "X-Amz-SignedHeaders")?
        .1;
    request
        .headers()
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with("x-amz-"))
        .find(|name| !signed.split(';').any(|s| s.eq_ignore_ascii_case(name)))
        .map(str::to_owned)
}

/// What a lax store does with a form it should have refused: stores the file under the
/// form's key (where s3s-fs keeps objects) and answers 204.
async fn store_laxly(
    gate: &Gate,
    bucket: &str,
    fields: &[(String, String)],
    bytes: Bytes,
) -> Response {
    let key = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("key"))
        .map_or("", |(_, v)| v.as_str());
    let relative = std::path::Path::new(bucket).join(key);
    let safe = !key.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe {
        return s3xml::error(StatusCode::BAD_REQUEST, "InvalidArgument", "no usable key");
    }
    let path = gate.data.join(relative);
    let written = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
        std::fs::write(&path, &bytes)
    })
    .await;
    match written {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        _ => s3xml::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the lax store could not write the file",
        ),
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
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_a_form_posted_to_a_bucket_is_a_post_upload() {
        assert_eq!(posted_bucket("/uploads"), Some("uploads"));
        assert_eq!(posted_bucket("/uploads/"), Some("uploads"));
        assert_eq!(posted_bucket("/uploads/a/b"), None);
        assert_eq!(posted_bucket("/"), None);
        assert_eq!(posted_bucket(""), None);
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
