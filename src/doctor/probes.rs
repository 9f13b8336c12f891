//! The requests `doctor` sends a store: forms and PUTs as a browser sends them, signed with
//! the service's own credentials, most of them broken in exactly one way on purpose.

use std::time::{Duration, SystemTime};

use s3_presigned_post::{
    BucketName, Checksum, ChecksumAlgorithm, Condition, Credentials, ObjectKey, PostRequest,
    PresignError, PresignedPost, PresignedUrl, Presigner, UrlRequest,
};

/// What a store answered: its status, its S3 error code if it sent one, its `Date`.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `<Code>` of an S3 error document.
    pub code: Option<String>,
    /// The `Date` header, when it parses.
    pub date: Option<SystemTime>,
    /// `Access-Control-Allow-Origin`, when the probe came from an origin.
    pub allow_origin: Option<String>,
    /// `Access-Control-Allow-Methods` (a preflight's answer).
    pub allow_methods: Option<String>,
    /// `Access-Control-Expose-Headers`.
    pub expose_headers: Option<String>,
    /// The `ETag` of what was stored (a part's is named again at completion).
    pub etag: Option<String>,
}

impl Answer {
    /// Whether the store took the request.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer in a few words: `403 SignatureDoesNotMatch`.
    pub fn said(&self) -> String {
        match &self.code {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// Why a probe got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe could not be signed (a bucket or key the core refuses).
    #[error("cannot sign the probe: {0}")]
    Sign(#[from] PresignError),
    /// No answer: refused connection, timeout, TLS.
    #[error("no answer from {url}: {reason}")]
    Unreachable {
        /// Where the probe went (no query string: it would carry a signature).
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// One way to break a POST form, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostFault {
    /// A form as issued.
    None,
    /// The signature's last digit changed.
    ForgedSignature,
    /// A policy that expired five minutes ago.
    Expired,
    /// One byte more than `content-length-range` allows.
    TooLarge,
    /// Another key than the policy's `eq`.
    OtherKey,
    /// A content type outside the policy's `starts-with`.
    OtherType,
    /// A field no condition names.
    UnnamedField,
    /// A checksum field of `algorithm` that the bytes do not have.
    WrongChecksum(ChecksumAlgorithm),
}

/// One way to break a PUT, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutFault {
    /// The URL as issued, with its headers.
    None,
    /// One byte more than the signed `Content-Length`.
    OtherLength,
    /// An `x-amz-meta-*` header the URL did not sign.
    UnsignedMetadata,
    /// An `x-amz-copy-source` the URL did not sign, naming `source` (a probe's own
    /// object): a store that takes it copies instead of uploading.
    UnsignedCopySource,
    /// A signed `If-None-Match: *` to a key that holds an object (`source`).
    Overwrite,
    /// A signed checksum header of `algorithm` that the bytes do not have.
    WrongChecksum(ChecksumAlgorithm),
}

/// The bytes every probe uploads.
pub const BODY: &[u8] = b"upload-tickets doctor probe\n";
/// Their content type.
pub const TYPE: &str = "text/plain";

/// Signs and sends probes for one bucket (`Debug` redacts the credentials, as theirs does).
#[derive(Debug, Clone, Copy)]
pub struct Prober<'a> {
    /// Signs them.
    pub presigner: &'a Presigner,
    /// With these.
    pub credentials: &'a Credentials,
    /// To this bucket.
    pub bucket: &'a BucketName,
    /// Sends them; follows no redirect (a store's redirect is an answer).
    pub http: &'a reqwest::Client,
    /// The front-end origin probes come from (`Origin`), if any is configured.
    pub origin: Option<&'a str>,
}

impl Prober<'_> {
    /// An unsigned `GET` of the bucket: any answer carries the store's clock.
    pub async fn bucket_answer(&self) -> Result<Answer, ProbeError> {
        let url = self
            .presigner
            .addressing()
            .url(self.presigner.region(), self.bucket)?;
        self.send(self.http.get(&url), &url).await
    }

    /// A POST of [`BODY`] to `key` (a fresh key under the probe prefix), broken as `fault`
    /// says.
    pub async fn post(&self, key: &str, fault: PostFault) -> Result<Answer, ProbeError> {
        let now = SystemTime::now();
        // Expired: signed ten minutes ago for five, so that the date is within the
        // 15 minutes a store tolerates and only the expiration is past.
        let (signed_at, valid) = match fault {
            PostFault::Expired => (now - Duration::from_secs(600), Duration::from_secs(300)),
            _ => (now, Duration::from_secs(3600)),
        };
        let object = ObjectKey::new(key)?;
        let mut request = PostRequest::new(self.bucket.clone(), object)
            .condition(Condition::content_length_range(1, BODY.len() as u64)?)
            .condition(Condition::starts_with("Content-Type", "text/")?)
            .field("Content-Type", TYPE)?
            .expires_in(valid)?;
        if let PostFault::WrongChecksum(algorithm) = fault {
            request = request.checksum(wrong(algorithm)?)?;
        }
        let post = self
            .presigner
            .presign(self.credentials, &request, signed_at)?;
        let form = form_of(&post, key, fault);
        let body = match fault {
            PostFault::TooLarge => [BODY, b"!"].concat(),
            _ => BODY.to_vec(),
        };
        let (boundary, bytes) = multipart(&form, &body);
        let builder = self
            .http
            .post(post.url())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(bytes);
        self.send(builder, post.url()).await
    }

    /// A presigned PUT of [`BODY`] to `key`, broken as `fault` says (`copy_from`: an
    /// object's key, which an unsigned copy source names or an overwrite goes to).
    pub async fn put(
        &self,
        key: &str,
        fault: PutFault,
        copy_from: &str,
    ) -> Result<Answer, ProbeError> {
        let length = match fault {
            PutFault::UnsignedCopySource => 0,
            _ => BODY.len(),
        };
        let target = if fault == PutFault::Overwrite {
            copy_from
        } else {
            key
        };
        let mut request = UrlRequest::put_object(self.bucket.clone(), ObjectKey::new(target)?)?
            .header("content-length", length.to_string())?
            .header("content-type", TYPE)?
            .expires_in(Duration::from_secs(600))?;
        match fault {
            PutFault::Overwrite => request = request.header("if-none-match", "*")?,
            PutFault::WrongChecksum(algorithm) => request = request.checksum(&wrong(algorithm)?)?,
            _ => {}
        }
        let (signed, mut builder) = self.signed_put(&request)?;
        let body = match fault {
            PutFault::None
            | PutFault::UnsignedMetadata
            | PutFault::Overwrite
            | PutFault::WrongChecksum(_) => BODY.to_vec(),
            PutFault::OtherLength => [BODY, b"!"].concat(),
            PutFault::UnsignedCopySource => Vec::new(),
        };
        builder = match fault {
            PutFault::UnsignedMetadata => builder.header("x-amz-meta-doctor", "unsigned"),
            PutFault::UnsignedCopySource => builder.header(
                "x-amz-copy-source",
                format!("/{}/{}", self.bucket.as_str(), copy_from),
            ),
            _ => builder,
        };
        self.send(builder.body(body), &signed.url).await
    }

    /// Part `number` of the multipart upload `upload_id` of `key`: [`BODY`] through a part
    /// URL signed as the service signs them (its length, and `checksum` if given).
    pub async fn part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        checksum: Option<&Checksum>,
    ) -> Result<Answer, ProbeError> {
        let mut request =
            UrlRequest::upload_part(self.bucket.clone(), ObjectKey::new(key)?, upload_id, number)?
                .header("content-length", BODY.len().to_string())?
                .expires_in(Duration::from_secs(600))?;
        if let Some(checksum) = checksum {
            request = request.checksum(checksum)?;
        }
        let (signed, builder) = self.signed_put(&request)?;
        self.send(builder.body(BODY.to_vec()), &signed.url).await
    }

    /// `request` signed now, and a PUT to its URL with the headers it signed (but the
    /// length, which the body sets).
    fn signed_put(
        &self,
        request: &UrlRequest,
    ) -> Result<(PresignedUrl, reqwest::RequestBuilder), ProbeError> {
        let signed = self
            .presigner
            .presign_url(self.credentials, request, SystemTime::now())?;
        let mut builder = self.http.put(&signed.url);
        for (name, value) in &signed.headers {
            if name != "content-length" {
                builder = builder.header(name, value);
            }
        }
        Ok((signed, builder))
    }

    /// A CORS preflight from the origin for `method` to the bucket (`POST`) or to an
    /// object under it (`PUT`, at `key`).
    pub async fn preflight(&self, method: &str, key: &str) -> Result<Answer, ProbeError> {
        let mut url = self
            .presigner
            .addressing()
            .url(self.presigner.region(), self.bucket)?;
        if method == "PUT" {
            if !url.ends_with('/') {
                url.push('/');
            }
            url.push_str(key);
        }
        let request = self
            .http
            .request(reqwest::Method::OPTIONS, &url)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "content-type");
        self.send(request, &url).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Answer, ProbeError> {
        let request = match self.origin {
            Some(origin) => request.header(reqwest::header::ORIGIN, origin),
            None => request,
        };
        let unreachable = |reason: String| ProbeError::Unreachable {
            url: url.split('?').next().unwrap_or_default().to_owned(),
            reason,
        };
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let date = header(reqwest::header::DATE).and_then(|v| httpdate::parse_http_date(&v).ok());
        let allow_origin = header(reqwest::header::ACCESS_CONTROL_ALLOW_ORIGIN);
        let allow_methods = header(reqwest::header::ACCESS_CONTROL_ALLOW_METHODS);
        let expose_headers = header(reqwest::header::ACCESS_CONTROL_EXPOSE_HEADERS);
        let etag = header(reqwest::header::ETAG);
        let text = response.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            code: error_code(&text),
            date,
            allow_origin,
            allow_methods,
            expose_headers,
            etag,
        })
    }
}

/// The form fields of `post`, broken as `fault` says; the key field is `key` but for
/// [`PostFault::OtherKey`].
fn form_of(post: &PresignedPost, key: &str, fault: PostFault) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = post
        .fields()
        .map(|(name, value)| {
            let value = match (fault, name) {
                (PostFault::ForgedSignature, "X-Amz-Signature") => forge(value),
                (PostFault::OtherKey, "key") => format!("{key}-other"),
                (PostFault::OtherType, "Content-Type") => "image/png".to_owned(),
                _ => value.to_owned(),
            };
            (name.to_owned(), value)
        })
        .collect();
    if fault == PostFault::UnnamedField {
        form.push(("x-amz-meta-doctor".to_owned(), "unnamed".to_owned()));
    }
    form
}

/// A well-formed checksum of `algorithm` that [`BODY`] does not have (all zero).
pub fn wrong(algorithm: ChecksumAlgorithm) -> Result<Checksum, PresignError> {
    Checksum::from_digest(algorithm, &vec![0; algorithm.digest_len()])
}

/// `signature` with its last hex digit changed.
fn forge(signature: &str) -> String {
    let mut forged = signature.to_owned();
    let last = forged
        .pop()
        .map_or('0', |c| if c == '0' { '1' } else { '0' });
    forged.push(last);
    forged
}

/// A `multipart/form-data` body: the fields in order, then the file (S3 reads fields
/// after the file as part of it).
fn multipart(fields: &[(String, String)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!(
        "----upload-tickets-doctor-{}",
        uuid::Uuid::new_v4().simple()
    );
    let mut body = Vec::with_capacity(file.len() + 256 * (fields.len() + 1));
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"probe.txt\"\r\nContent-Type: {TYPE}\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// `<Code>` of an S3 error document.
fn error_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].trim().to_owned()).filter(|c| !c.is_empty() && c.len() < 80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_code_is_read_from_an_s3_error_document() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>";
        assert_eq!(error_code(xml).as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(error_code("<html>503</html>"), None);
        assert_eq!(error_code("<Code>"), None);
    }

    #[test]
    fn a_forged_signature_differs_in_its_last_digit_only() {
        assert_eq!(forge("ab0"), "ab1");
        assert_eq!(forge("ab7"), "ab0");
    }

    #[test]
    fn the_file_is_the_last_part_of_a_form() {
        let fields = vec![("key".to_owned(), "k".to_owned())];
        let (boundary, body) = multipart(&fields, b"bytes");
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.find("name=\"key\"").unwrap() < text.find("name=\"file\"").unwrap());
        assert!(text.ends_with(&format!("bytes\r\n--{boundary}--\r\n")));
    }
}
