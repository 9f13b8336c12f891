//! Presigned URLs (SigV4 in the query string): `PUT` tickets for stores without POST
//! uploads, and `UploadPart` URLs of multipart uploads.
//!
//! Unlike a POST policy, a URL cannot carry a size range: what it pins is the exact
//! value of every header it signs. So a PUT ticket signs `Content-Length` (one exact
//! size) and `Content-Type`, and the store refuses a request whose headers differ.
//! The canonical request is built by `aws-sigv4`, configured the way S3 wants it
//! (single percent-encoding, no path normalisation, unsigned payload).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{
    BucketName, CHECKSUM_FIELD_PREFIX, Checksum, Credentials, ObjectKey, PresignError, Presigner,
    UtcSecond, Validity,
};

/// What to presign: one S3 request on one object, with the headers it must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRequest {
    method: &'static str,
    bucket: BucketName,
    key: ObjectKey,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    validity: Validity,
}

impl UrlRequest {
    /// `PUT` of one whole object (the key must be literal: no `${filename}`).
    pub fn put_object(bucket: BucketName, key: ObjectKey) -> Result<Self, PresignError> {
        Self::new("PUT", bucket, key)
    }

    /// `PUT ?partNumber=N&uploadId=ID`: one part of a multipart upload.
    pub fn upload_part(
        bucket: BucketName,
        key: ObjectKey,
        upload_id: &str,
        part_number: u16,
    ) -> Result<Self, PresignError> {
        check_upload_id(upload_id)?;
        if !(1..=10_000).contains(&part_number) {
            return Err(PresignError::InvalidUrlRequest(
                "part numbers are 1 to 10000",
            ));
        }
        let mut request = Self::new("PUT", bucket, key)?;
        request.query = vec![
            ("partNumber".to_owned(), part_number.to_string()),
            ("uploadId".to_owned(), upload_id.to_owned()),
        ];
        Ok(request)
    }

    /// `GET ?uploadId=ID`: the parts a multipart upload holds (ListParts), for a client
    /// that resumes by asking the store itself.
    pub fn list_parts(
        bucket: BucketName,
        key: ObjectKey,
        upload_id: &str,
    ) -> Result<Self, PresignError> {
        check_upload_id(upload_id)?;
        let mut request = Self::new("GET", bucket, key)?;
        request.query = vec![("uploadId".to_owned(), upload_id.to_owned())];
        Ok(request)
    }

    /// `GET` of an object (a download link; also what AWS's published example signs).
    pub fn get_object(bucket: BucketName, key: ObjectKey) -> Result<Self, PresignError> {
        Self::new("GET", bucket, key)
    }

    fn new(method: &'static str, bucket: BucketName, key: ObjectKey) -> Result<Self, PresignError> {
        if key.filename_prefix().is_some() {
            return Err(PresignError::InvalidUrlRequest(
                "${filename} has a meaning in POST forms only",
            ));
        }
        Ok(Self {
            method,
            bucket,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            validity: Validity::DEFAULT,
        })
    }

    /// Adds a header the client must send with exactly this value (it is signed).
    /// Names are lower-cased; `host` and `x-amz-*` signing headers are the signer's,
    /// checksum headers [`UrlRequest::checksum`]'s (it checks the value).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Result<Self, PresignError> {
        let name = name.to_ascii_lowercase();
        let value = value.into();
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(PresignError::InvalidUrlRequest(
                "a header name is not a token",
            ));
        }
        if matches!(
            name.as_str(),
            "host"
                | "authorization"
                | "x-amz-date"
                | "x-amz-security-token"
                | "x-amz-content-sha256"
        ) {
            return Err(PresignError::InvalidUrlRequest(
                "host, authorization and x-amz signing headers are set by the signer",
            ));
        }
        if name.starts_with(CHECKSUM_FIELD_PREFIX) {
            return Err(PresignError::InvalidUrlRequest(
                "checksum headers are declared with UrlRequest::checksum",
            ));
        }
        if value.trim() != value || value.chars().any(char::is_control) {
            return Err(PresignError::InvalidUrlRequest(
                "header values have no control characters and no surrounding spaces",
            ));
        }
        if !is_signable_header_value(&value) {
            return Err(PresignError::InvalidUrlRequest(
                "header values are printable ASCII",
            ));
        }
        if self.headers.iter().any(|(n, _)| *n == name) {
            return Err(PresignError::InvalidUrlRequest("a header is given twice"));
        }
        self.headers.push((name, value));
        Ok(self)
    }

    /// Declares the body's checksum: the signed header `x-amz-checksum-<algorithm>`,
    /// which the store verifies against the bytes it receives.
    pub fn checksum(mut self, checksum: &Checksum) -> Result<Self, PresignError> {
        let name = checksum.algorithm().field();
        if self
            .headers
            .iter()
            .any(|(n, _)| n.starts_with(CHECKSUM_FIELD_PREFIX))
        {
            return Err(PresignError::InvalidUrlRequest("a checksum is given twice"));
        }
        self.headers
            .push((name.to_owned(), checksum.value().to_owned()));
        Ok(self)
    }

    /// Validity, 1 second to 7 days (see [`Validity`]); default one hour.
    pub fn expires_in(self, expires_in: Duration) -> Result<Self, PresignError> {
        Ok(self.with_validity(Validity::new(expires_in)?))
    }

    /// Validity, already checked.
    pub fn with_validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
    }

    /// The validity asked for.
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// Names of the headers the request will sign besides `host`, lower-case, so a caller
    /// can tell before signing whether its client is able to send them.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().map(|(name, _)| name.as_str())
    }
}

/// Whether `value` can be a signed header's value: printable ASCII, spaces and tabs (what
/// SigV4's canonical request takes; S3's REST rule for user metadata too).
pub fn is_signable_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// A signed URL and the headers the request must carry (exactly these values).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PresignedUrl {
    /// `PUT` or `GET`.
    pub method: &'static str,
    /// The URL, signature in the query.
    pub url: String,
    /// Signed headers to send, lower-case names, in signing order.
    pub headers: Vec<(String, String)>,
    /// When the signature stops being accepted.
    #[serde(skip)]
    pub expires_at: SystemTime,
}

impl Presigner {
    /// The object's plain URL, unsigned: where an upload landed, as S3's `Location`
    /// names it (a private bucket still refuses an unsigned GET of it).
    pub fn object_url(&self, bucket: &BucketName, key: &ObjectKey) -> Result<String, PresignError> {
        let mut url = self.addressing().url(self.region(), bucket)?;
        if !url.ends_with('/') {
            url.push('/');
        }
        encode_into(&mut url, key.as_str(), true);
        Ok(url)
    }

    /// Signs `request` as of `now`.
    pub fn presign_url(
        &self,
        credentials: &Credentials,
        request: &UrlRequest,
        now: SystemTime,
    ) -> Result<PresignedUrl, PresignError> {
        // Both ends must be representable, as for POST tickets.
        UtcSecond::from_system_time(now)?;
        let expires_at = now
            .checked_add(request.validity.get())
            .ok_or(PresignError::InvalidTime)?;
        UtcSecond::from_system_time(expires_at)?;

        let base = self.addressing().url(self.region(), &request.bucket)?;
        let mut url = String::with_capacity(base.len() + request.key.as_str().len() * 3 + 512);
        url.push_str(&base);
        if !url.ends_with('/') {
            url.push('/');
        }
        encode_into(&mut url, request.key.as_str(), true);
        for (i, (name, value)) in request.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            encode_into(&mut url, name, false);
            url.push('=');
            encode_into(&mut url, value, false);
        }

        let identity = AwsCredentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            credentials.session_token().map(str::to_owned),
            None,
            "upload-tickets",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(request.validity.get());
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region().as_str())
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| PresignError::Signing(e.to_string()))?
            .into();
        let host = host_of(&url)?;
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(request.headers.len() + 1);
        headers.push(("host", host.as_str()));
        headers.extend(
            request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let signable = SignableRequest::new(
            request.method,
            url.as_str(),
            headers.into_iter(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| PresignError::Signing(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| PresignError::Signing(e.to_string()))?
            .into_parts();
        let mut separator = if request.query.is_empty() { '?' } else { '&' };
        for (name, value) in instructions.params() {
            url.push(separator);
            separator = '&';
            encode_into(&mut url, name, false);
            url.push('=');
            encode_into(&mut url, value, false);
        }
        Ok(PresignedUrl {
            method: request.method,
            url,
            headers: request.headers.clone(),
            expires_at,
        })
    }
}

/// `host[:port]` of a URL the addressing made (so it always has one).
fn host_of(url: &str) -> Result<String, PresignError> {
    let parsed = url::Url::parse(url).map_err(|e| PresignError::Signing(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or(PresignError::InvalidUrlRequest("the URL has no host"))?;
    Ok(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// An upload id as stores hand them out: not empty, not overlong, no control characters.
fn check_upload_id(upload_id: &str) -> Result<(), PresignError> {
    if upload_id.is_empty() || upload_id.len() > 1024 || upload_id.chars().any(char::is_control) {
        return Err(PresignError::InvalidUrlRequest(
            "the upload id is not usable",
        ));
    }
    Ok(())
}

/// What SigV4 (RFC 3986) leaves unencoded: letters, digits and `-._~`. Everything
/// else is `%XX`, upper-case hex of its UTF-8 bytes. Tag values in `x-amz-tagging`
/// are encoded the same way.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// [`UNRESERVED`] plus `/`: how object keys appear in paths.
const UNRESERVED_PATH: &AsciiSet = &UNRESERVED.remove(b'/');

fn encode_into(out: &mut String, text: &str, keep_slash: bool) {
    let set = if keep_slash {
        UNRESERVED_PATH
    } else {
        UNRESERVED
    };
    out.extend(utf8_percent_encode(text, set));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Addressing, Endpoint, Region};

    fn aws_example() -> (Presigner, Credentials, SystemTime) {
        // The documented example of query-string authentication (S3 API reference,
        // "Authenticating Requests: Using Query Parameters"): examplebucket, 2013-05-24.
        let presigner = Presigner::new(
            Region::new("us-east-1").unwrap(),
            Addressing::custom(Endpoint::parse("https://s3.amazonaws.com").unwrap()),
        )
        .unwrap();
        let credentials = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        )
        .unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        (presigner, credentials, now)
    }

    #[test]
    fn aws_published_example_gives_its_signature() {
        let (presigner, credentials, now) = aws_example();
        let request = UrlRequest::get_object(
            BucketName::new("examplebucket").unwrap(),
            ObjectKey::new("test.txt").unwrap(),
        )
        .unwrap()
        .expires_in(Duration::from_secs(86_400))
        .unwrap();
        let signed = presigner.presign_url(&credentials, &request, now).unwrap();
        assert_eq!(
            signed.url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn put_tickets_sign_their_headers_and_parts_their_query() {
        let (presigner, credentials, now) = aws_example();
        let bucket = BucketName::new("examplebucket").unwrap();
        let key = ObjectKey::new("acme/u 1/ä+b.txt").unwrap();
        let put = UrlRequest::put_object(bucket.clone(), key.clone())
            .unwrap()
            .header("Content-Type", "text/plain")
            .unwrap()
            .header("Content-Length", "11")
            .unwrap();
        let signed = presigner.presign_url(&credentials, &put, now).unwrap();
        assert!(signed.url.starts_with(
            "https://examplebucket.s3.amazonaws.com/acme/u%201/%C3%A4%2Bb.txt?X-Amz-Algorithm="
        ));
        assert!(
            signed
                .url
                .contains("&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&")
        );
        assert_eq!(signed.headers.len(), 2);

        let part = UrlRequest::upload_part(bucket.clone(), key.clone(), "id/+=x", 7).unwrap();
        let signed = presigner.presign_url(&credentials, &part, now).unwrap();
        assert!(
            signed
                .url
                .contains(".txt?partNumber=7&uploadId=id%2F%2B%3Dx&X-Amz-Algorithm="),
            "{}",
            signed.url
        );

        let list = UrlRequest::list_parts(bucket.clone(), key.clone(), "id/+=x").unwrap();
        let signed = presigner.presign_url(&credentials, &list, now).unwrap();
        assert_eq!(signed.method, "GET");
        assert!(
            signed
                .url
                .contains(".txt?uploadId=id%2F%2B%3Dx&X-Amz-Algorithm="),
            "{}",
            signed.url
        );
        assert_eq!(
            presigner.object_url(&bucket, &key).unwrap(),
            "https://examplebucket.s3.amazonaws.com/acme/u%201/%C3%A4%2Bb.txt"
        );

        let with_token = Credentials::new("AKID", "secret", Some("token/+=".to_owned())).unwrap();
        let signed = presigner.presign_url(&with_token, &part, now).unwrap();
        assert!(signed.url.contains("&X-Amz-Security-Token=token%2F%2B%3D"));
    }

    #[test]
    fn bad_url_requests_are_refused() {
        let bucket = BucketName::new("examplebucket").unwrap();
        let key = ObjectKey::new("k").unwrap();
        let put = || UrlRequest::put_object(bucket.clone(), key.clone()).unwrap();
        assert!(put().header("Host", "evil").is_err());
        assert!(put().header("bad name", "x").is_err());
        assert!(put().header("x-a", "line\nbreak").is_err());
        assert!(
            put()
                .header("x-a", "1")
                .unwrap()
                .header("X-A", "2")
                .is_err()
        );
        assert!(put().expires_in(Duration::ZERO).is_err());
        assert!(
            put()
                .expires_in(crate::MAX_EXPIRES_IN + Duration::from_secs(1))
                .is_err()
        );
        assert!(UrlRequest::upload_part(bucket.clone(), key.clone(), "id", 0).is_err());
        assert!(UrlRequest::upload_part(bucket.clone(), key.clone(), "id", 10_001).is_err());
        assert!(UrlRequest::upload_part(bucket.clone(), key.clone(), "", 1).is_err());
        assert!(UrlRequest::list_parts(bucket.clone(), key.clone(), "").is_err());
        assert!(UrlRequest::list_parts(bucket.clone(), key.clone(), "a\nb").is_err());
        assert!(UrlRequest::put_object(bucket, ObjectKey::new("u/${filename}").unwrap()).is_err());
    }
}
