//! Presigned URLs (SigV4 in the query string): `PUT` tickets for stores without POST
//! uploads, and `UploadPart` URLs of multipart uploads.
//!
//! Unlike a POST policy, a URL cannot carry a size range: what it pins is the exact
//! value of every header it signs. So a PUT ticket signs `Content-Length` (one exact
//! size) and `Content-Type`, and the store refuses a request whose headers differ.
//! The canonical request is ours, as S3 wants it (single percent-encoding, no path
//! normalisation, unsigned payload), and held to `aws-sigv4`'s by a differential test;
//! the signing key and the HMAC are the POST tickets' (cached per day).

use std::time::{Duration, SystemTime};

use std::borrow::Cow;
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest as _, Sha256};

use crate::signing::{ALGORITHM, CredentialScope};
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
        let signed_at = UtcSecond::from_system_time(now)?;
        let expires_at = now
            .checked_add(request.validity.get())
            .ok_or(PresignError::InvalidTime)?;
        UtcSecond::from_system_time(expires_at)?;

        let mut url = self.unsigned_url(request)?;
        let amz_date = signed_at.amz_date_text();
        let date_stamp = &amz_date[..8];
        let host = host_of(&url)?;
        // The headers to sign: `host` and the request's, by name (names are unique and
        // lower-case: `UrlRequest::header` sees to it).
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(request.headers.len() + 1);
        headers.push(("host", host.as_str()));
        headers.extend(
            request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        headers.sort_unstable_by_key(|&(name, _)| name);
        let mut signed_headers =
            String::with_capacity(headers.iter().map(|(n, _)| n.len() + 1).sum());
        for (at, (name, _)) in headers.iter().enumerate() {
            if at > 0 {
                signed_headers.push(';');
            }
            signed_headers.push_str(name);
        }
        let mut credential = String::with_capacity(credentials.access_key_id().len() + 64);
        credential.push_str(credentials.access_key_id());
        credential.push('/');
        let _ = write!(
            credential,
            "{}",
            CredentialScope::new(date_stamp, self.region())
        );
        let expires = request.validity.get().as_secs().to_string();
        let mut signing = vec![
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", credential.as_str()),
            ("X-Amz-Date", &*amz_date),
            ("X-Amz-Expires", expires.as_str()),
            ("X-Amz-SignedHeaders", signed_headers.as_str()),
        ];
        if let Some(token) = credentials.session_token() {
            signing.push(("X-Amz-Security-Token", token));
        }

        // The URL's path: after the authority, up to the query.
        let authority_at = url.find("://").map_or(0, |at| at + 3);
        let path_at = url[authority_at..]
            .find('/')
            .map_or(url.len(), |at| authority_at + at);
        let path_end = url[path_at..]
            .find('?')
            .map_or(url.len(), |at| path_at + at);
        let path = if path_at == path_end {
            "/"
        } else {
            &url[path_at..path_end]
        };
        let canonical = canonical_request(
            request.method,
            path,
            request
                .query
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .chain(signing.iter().copied()),
            &headers,
            &signed_headers,
        );
        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str(ALGORITHM);
        string_to_sign.push('\n');
        string_to_sign.push_str(&amz_date);
        string_to_sign.push('\n');
        let _ = write!(
            string_to_sign,
            "{}",
            CredentialScope::new(date_stamp, self.region())
        );
        string_to_sign.push('\n');
        push_hex(&mut string_to_sign, &Sha256::digest(canonical.as_bytes()));
        let signature = self.keys.sign(
            credentials,
            now,
            date_stamp,
            self.region(),
            string_to_sign.as_bytes(),
        );
        // In the URL, in `aws-sigv4`'s order: the signature before a session token.
        let token = signing.pop_if(|(name, _)| *name == "X-Amz-Security-Token");
        signing.push(("X-Amz-Signature", signature.as_str()));
        signing.extend(token);
        push_params(&mut url, !request.query.is_empty(), signing.into_iter());
        Ok(PresignedUrl {
            method: request.method,
            url,
            headers: request.headers.clone(),
            expires_at,
        })
    }
}

impl Presigner {
    /// `request`'s URL before its signature: the object's, then the request's query.
    fn unsigned_url(&self, request: &UrlRequest) -> Result<String, PresignError> {
        let base = self.addressing().url(self.region(), &request.bucket)?;
        let mut url = String::with_capacity(base.len() + request.key.as_str().len() * 3 + 512);
        url.push_str(&base);
        if !url.ends_with('/') {
            url.push('/');
        }
        encode_into(&mut url, request.key.as_str(), true);
        let query = request.query.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        push_params(&mut url, false, query);
        Ok(url)
    }
}

/// Appends `params` to `url`'s query (which `has_query` says it has already), names and
/// values encoded.
fn push_params<'a>(
    url: &mut String,
    has_query: bool,
    params: impl Iterator<Item = (&'a str, &'a str)>,
) {
    let mut separator = if has_query { '&' } else { '?' };
    for (name, value) in params {
        url.push(separator);
        separator = '&';
        encode_into(url, name, false);
        url.push('=');
        encode_into(url, value, false);
    }
}

/// SigV4's canonical request for a presigned URL: `path` as the URL has it (already
/// encoded once: S3 does not encode it again), the query's names and values encoded and
/// sorted by name then value, the headers by name with their values' runs of spaces
/// collapsed, and an unsigned payload.
fn canonical_request<'a>(
    method: &str,
    path: &str,
    query: impl Iterator<Item = (&'a str, &'a str)>,
    headers: &[(&str, &str)],
    signed_headers: &str,
) -> String {
    let mut query: Vec<(Cow<'a, str>, Cow<'a, str>)> = query
        .map(|(name, value)| {
            (
                utf8_percent_encode(name, UNRESERVED).into(),
                utf8_percent_encode(value, UNRESERVED).into(),
            )
        })
        .collect();
    query.sort_unstable();
    let query_bytes: usize = query.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = String::with_capacity(
        method.len() + path.len() + query_bytes + header_bytes + signed_headers.len() + 24,
    );
    out.push_str(method);
    out.push('\n');
    out.push_str(path);
    out.push('\n');
    for (at, (name, value)) in query.iter().enumerate() {
        if at > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out.push('\n');
    for (name, value) in headers {
        out.push_str(name);
        out.push(':');
        push_trimmed(&mut out, value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str("UNSIGNED-PAYLOAD");
    out
}

/// `value` without leading and trailing spaces and with each run of spaces as one (the
/// canonical form of a header value; only spaces, as S3 has it).
fn push_trimmed(out: &mut String, value: &str) {
    let mut last_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
}

/// Lower-case hex of `bytes`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
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

    /// The URL `aws-sigv4` signs for `request`: how this module signed before its
    /// canonical request was its own, and the oracle it is held to.
    fn signed_by_aws_sigv4(
        presigner: &Presigner,
        credentials: &Credentials,
        request: &UrlRequest,
        now: SystemTime,
    ) -> String {
        use aws_credential_types::Credentials as AwsCredentials;
        use aws_sigv4::http_request::{
            PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
            UriPathNormalizationMode, sign,
        };
        use aws_sigv4::sign::v4;

        let mut url = presigner.unsigned_url(request).unwrap();
        let identity = AwsCredentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            credentials.session_token().map(str::to_owned),
            None,
            "test",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(request.validity.get());
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(presigner.region().as_str())
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let host = host_of(&url).unwrap();
        let mut headers = vec![("host", host.as_str())];
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
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let signed = instructions.params().iter().map(|(n, v)| (*n, v.as_ref()));
        push_params(&mut url, !request.query.is_empty(), signed);
        url
    }

    /// Text `aws-sigv4` and S3 encode alike in a query (it leaves a few of RFC 3986's
    /// reserved characters as they are, which S3 would encode; none is in an upload id
    /// or a session token as stores and STS hand them out).
    const QUERY_TEXT: &str = "[A-Za-z0-9._~/+=:,;@!$&'()*%<>\"^{}|# -]{1,40}";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// Every URL request signs to the URL `aws-sigv4` signs: keys of any text,
        /// header values with runs of spaces, queries, session tokens, addressing styles,
        /// validities.
        #[test]
        fn urls_are_signed_as_aws_sigv4_signs_them(
            key in "[^\\x00-\\x1f\\x7f]{1,60}",
            headers in proptest::collection::btree_map("[a-z][a-z0-9-]{0,12}", "[!-~](( {1,3}|[!-~]){0,12}[!-~])?", 0..4),
            upload_id in QUERY_TEXT,
            part in 1u16..=10_000,
            kind in 0u8..3,
            token in proptest::option::of(QUERY_TEXT),
            endpoint in 0u8..3,
            seconds in 1u64..=604_800,
            now in 1_000_000_000u64..4_000_000_000,
        ) {
            let addressing = match endpoint {
                0 => crate::Addressing::aws(),
                1 => crate::Addressing::custom(crate::Endpoint::parse("http://127.0.0.1:9000").unwrap()),
                _ => crate::Addressing::custom(crate::Endpoint::parse("https://store.example:8443").unwrap())
                    .force_path_style(true),
            };
            let presigner = Presigner::new(crate::Region::new("eu-central-1").unwrap(), addressing).unwrap();
            let credentials = Credentials::new("AKIDEXAMPLE", "secret/key+example", token).unwrap();
            let bucket = BucketName::new("tickets-bucket").unwrap();
            let Ok(key) = ObjectKey::new(key) else { return Ok(()) };
            let request = match kind {
                0 => UrlRequest::put_object(bucket, key),
                1 => UrlRequest::upload_part(bucket, key, &upload_id, part),
                _ => UrlRequest::list_parts(bucket, key, &upload_id),
            };
            let Ok(mut request) = request else { return Ok(()) };
            for (name, value) in &headers {
                // A header the request refuses (a signing header's name) is left out.
                if let Ok(with) = request.clone().header(name, value.as_str()) {
                    request = with;
                }
            }
            let request = request.expires_in(Duration::from_secs(seconds)).unwrap();
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
            let ours = presigner.presign_url(&credentials, &request, now).unwrap();
            proptest::prop_assert_eq!(ours.url, signed_by_aws_sigv4(&presigner, &credentials, &request, now));
        }
    }

    #[test]
    fn header_values_are_trimmed_and_their_spaces_collapsed() {
        let mut out = String::new();
        push_trimmed(&mut out, "  a  b   c d ");
        assert_eq!(out, "a b c d");
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
