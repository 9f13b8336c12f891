//! The presign core: S3 POST policies, signed with AWS Signature Version 4.
//!
//! What `createPresignedPost` of `@aws-sdk/s3-presigned-post` does, in pure Rust and
//! byte for byte the same for the same inputs and clock (the differential test runs the
//! seed to hold us to it), but stricter where the seed lets through tickets S3 would
//! refuse or that are unsafe: see [`PresignError`] for every refusal.
//!
//! No I/O, no clock, no async: the caller passes the credentials and `now`, so the core
//! is deterministic and testable, and usable from any Rust program.
//!
//! # Layout
//! - [`names`]: parsed bucket names, object keys and form field names.
//! - [`checksum`]: declared checksums the store verifies.
//! - [`condition`]: policy conditions and their JSON text.
//! - [`document`]: the policy document and its base64 form.
//! - [`signing`]: SigV4 dates, credential scope, signing keys and their cache.
//! - [`evaluate`]: the store's side: does a posted form meet its policy?
//! - [`endpoint`]: regions, partitions and the URL the form is posted to.
//! - [`url`]: presigned URLs (PUT tickets, multipart parts).
//!
//! # Example
//! ```
//! use std::time::{Duration, SystemTime};
//! use upload_tickets::presign::*;
//!
//! let presigner = Presigner::new(Region::new("eu-west-1")?, Addressing::aws())?;
//! let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalr...EXAMPLEKEY", None)?;
//! let request = PostRequest::new(BucketName::new("acme-uploads")?, ObjectKey::new("u/42/${filename}")?)
//!     .condition(Condition::content_length_range(1, 10 << 20)?)
//!     .field("Content-Type", "image/png")?
//!     .expires_in(Duration::from_secs(300))?;
//! let post = presigner.presign(&credentials, &request, SystemTime::now())?;
//! assert_eq!(post.url(), "https://acme-uploads.s3.eu-west-1.amazonaws.com/");
//! assert_eq!(post.field("Content-Type"), Some("image/png"));
//! # Ok::<(), PresignError>(())
//! ```

pub mod checksum;
pub mod condition;
pub mod credentials;
pub mod document;
pub mod endpoint;
pub mod error;
pub mod evaluate;
pub mod names;
pub mod signing;
pub mod url;

use std::fmt;
use std::ops::Range;
use std::time::{Duration, SystemTime};

pub use checksum::{Checksum, ChecksumAlgorithm};
pub use condition::{Condition, ExactForm};
pub use credentials::Credentials;
pub use document::{EncodedPolicy, MAX_ENCODED_POLICY_BYTES, PolicyDocument};
pub use endpoint::{Addressing, Endpoint, Partition, Region};
pub use error::PresignError;
pub use names::{BucketName, FieldName, ObjectKey};
pub use signing::{ALGORITHM, CredentialScope, SigningKey, SigningKeyCache, UtcSecond};
pub use url::{PresignedUrl, UrlRequest};

use document::DocumentBuilder;

/// Largest object a POST upload may carry: 5 GiB, S3's limit for a single upload.
pub const MAX_POST_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Longest validity SigV4 allows: 7 days.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The seed's default validity: one hour.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);

/// Form field names the presigner sets itself, or that S3 gives a meaning no caller
/// should set (`file`, and the SigV2 fields). Compared case-insensitively; so is every
/// name starting with [`CHECKSUM_FIELD_PREFIX`], which only [`PostRequest::checksum`]
/// sets (it checks the value).
const RESERVED_FIELDS: &[&str] = &[
    "bucket",
    "key",
    "policy",
    "file",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-signature",
    "awsaccesskeyid",
    "signature",
];

/// Form fields and headers of declared checksums start with this.
pub const CHECKSUM_FIELD_PREFIX: &str = "x-amz-checksum-";

/// The form field naming a declared checksum's algorithm.
const CHECKSUM_ALGORITHM_FIELD: &str = "x-amz-checksum-algorithm";

/// What to sign: the seed's `{Bucket, Key, Conditions, Fields, Expires}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRequest {
    bucket: BucketName,
    key: ObjectKey,
    conditions: Vec<Condition>,
    fields: Vec<(FieldName, String)>,
    /// Kept apart from `fields`: its two names are static and its value checked, so a
    /// ticket pays no allocation or name check for them.
    checksum: Option<Checksum>,
    expires_in: Duration,
}

impl PostRequest {
    /// A ticket for `key` in `bucket`, valid for [`DEFAULT_EXPIRES_IN`].
    pub fn new(bucket: BucketName, key: ObjectKey) -> Self {
        Self {
            bucket,
            key,
            conditions: Vec::new(),
            fields: Vec::new(),
            checksum: None,
            expires_in: DEFAULT_EXPIRES_IN,
        }
    }

    /// Adds a condition. Conditions come first in the policy, in the order added.
    pub fn condition(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Adds a form field, which the policy pins with an exact condition. Refused: names
    /// the presigner sets ([`PresignError::ReservedField`]), checksum fields (see
    /// [`PostRequest::checksum`]) and names given twice.
    pub fn field(mut self, name: &str, value: impl Into<String>) -> Result<Self, PresignError> {
        let name = FieldName::new(name)?;
        let checksum_field = name
            .as_str()
            .get(..CHECKSUM_FIELD_PREFIX.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(CHECKSUM_FIELD_PREFIX));
        if checksum_field || RESERVED_FIELDS.iter().any(|reserved| name.is(reserved)) {
            return Err(PresignError::ReservedField(name.as_str().to_owned()));
        }
        if self.fields.iter().any(|(given, _)| given.is(name.as_str())) {
            return Err(PresignError::DuplicateField(name.as_str().to_owned()));
        }
        self.fields.push((name, value.into()));
        Ok(self)
    }

    /// Declares the file's checksum: the fields `x-amz-checksum-algorithm` and
    /// `x-amz-checksum-<algorithm>`, after the caller's fields and each pinned by an
    /// exact condition, so the store refuses any other bytes (and any other
    /// declaration). One per ticket.
    pub fn checksum(mut self, checksum: Checksum) -> Result<Self, PresignError> {
        if self.checksum.is_some() {
            return Err(PresignError::DuplicateField(
                CHECKSUM_ALGORITHM_FIELD.to_owned(),
            ));
        }
        self.checksum = Some(checksum);
        Ok(self)
    }

    /// How long the ticket is valid: 1 second to 7 days (the seed allows any number).
    pub fn expires_in(mut self, expires_in: Duration) -> Result<Self, PresignError> {
        if expires_in < Duration::from_secs(1) || expires_in > MAX_EXPIRES_IN {
            return Err(PresignError::InvalidExpiry(expires_in));
        }
        self.expires_in = expires_in;
        Ok(self)
    }

    /// The bucket.
    pub fn bucket(&self) -> &BucketName {
        &self.bucket
    }

    /// The key (possibly ending with `${filename}`).
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// The conditions, in order.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// The fields, in order (a declared checksum's two last).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        let given = self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        given.chain(self.checksum_fields().into_iter().flatten())
    }

    /// A declared checksum's two fields, named as S3 names them.
    fn checksum_fields(&self) -> Option<[(&'static str, &str); 2]> {
        self.checksum.as_ref().map(|c| {
            let algorithm = c.algorithm();
            [
                (CHECKSUM_ALGORITHM_FIELD, algorithm.name()),
                (algorithm.field(), c.value()),
            ]
        })
    }

    /// The declared checksum, if any.
    pub fn declared_checksum(&self) -> Option<&Checksum> {
        self.checksum.as_ref()
    }

    /// The validity.
    pub fn validity(&self) -> Duration {
        self.expires_in
    }
}

/// A signed ticket: the URL to post to and the form fields to send before the file.
///
/// Fields are in the seed's order: the caller's fields, `bucket`, `X-Amz-Algorithm`,
/// `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Security-Token` (temporary credentials
/// only), `key`, `Policy`, `X-Amz-Signature`. `Debug` hides the session token; the
/// `Serialize` output (`{"url", "fields"}`) is the ticket itself and holds everything.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedPost {
    url: String,
    fields: FieldList,
    expires_at: SystemTime,
    policy: PolicyDocument,
}

/// Form fields in one buffer: a ticket has a dozen short fields, and one allocation for
/// all of them instead of two each is a measurable share of the cost of a ticket.
#[derive(Clone, PartialEq, Eq)]
struct FieldList {
    text: String,
    /// Byte ranges of (name, value) in `text`.
    ranges: Vec<(Range<usize>, Range<usize>)>,
}

impl FieldList {
    fn with_capacity(fields: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            ranges: Vec::with_capacity(fields),
        }
    }

    /// Appends a field whose value `write_value` writes; returns where the value is.
    fn push_with(&mut self, name: &str, write_value: impl FnOnce(&mut String)) -> Range<usize> {
        let name_start = self.text.len();
        self.text.push_str(name);
        let value_start = self.text.len();
        write_value(&mut self.text);
        let value = value_start..self.text.len();
        self.ranges.push((name_start..value_start, value.clone()));
        value
    }

    fn push(&mut self, name: &str, value: &str) {
        self.push_with(name, |out| out.push_str(value));
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.ranges
            .iter()
            .map(|(n, v)| (&self.text[n.clone()], &self.text[v.clone()]))
    }
}

impl PresignedPost {
    /// Where to post the form.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The form fields, in order.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.fields.iter()
    }

    /// The value of one field (names compare exactly).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields().find_map(|(n, v)| (n == name).then_some(v))
    }

    /// When the policy expires (the `expiration` it states, whole seconds).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The signed policy document (its JSON text is the base64-decoded `Policy` field).
    pub fn policy(&self) -> &PolicyDocument {
        &self.policy
    }
}

impl fmt::Debug for PresignedPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has_token = self.field("X-Amz-Security-Token").is_some();
        let fields: Vec<(&str, &str)> = self
            .fields()
            .map(|(n, v)| match n {
                "X-Amz-Security-Token" => (n, "** redacted **"),
                "Policy" if has_token => (n, "** redacted: pins a session token **"),
                _ => (n, v),
            })
            .collect();
        f.debug_struct("PresignedPost")
            .field("url", &self.url)
            .field("fields", &fields)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl serde::Serialize for PresignedPost {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;

        struct Fields<'a>(&'a PresignedPost);
        impl serde::Serialize for Fields<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.fields())
            }
        }

        let mut out = serializer.serialize_struct("PresignedPost", 2)?;
        out.serialize_field("url", &self.url)?;
        out.serialize_field("fields", &Fields(self))?;
        out.end()
    }
}

/// Signs POST tickets for one region and addressing: what an `S3Client` is to the seed.
///
/// Cheap to share between threads; it caches derived signing keys.
#[derive(Debug)]
pub struct Presigner {
    region: Region,
    addressing: Addressing,
    keys: SigningKeyCache,
}

impl Presigner {
    /// A presigner for `region` and `addressing`; refuses addressing options that no
    /// bucket could use there.
    pub fn new(region: Region, addressing: Addressing) -> Result<Self, PresignError> {
        addressing.check(&region)?;
        Ok(Self {
            region,
            addressing,
            keys: SigningKeyCache::new(),
        })
    }

    /// The region tickets are scoped to.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The addressing tickets use.
    pub fn addressing(&self) -> &Addressing {
        &self.addressing
    }

    /// Builds and signs the ticket for `request`, as of `now`.
    pub fn presign(
        &self,
        credentials: &Credentials,
        request: &PostRequest,
        now: SystemTime,
    ) -> Result<PresignedPost, PresignError> {
        let signed_at = UtcSecond::from_system_time(now)?;
        let expires_at = now
            .checked_add(request.expires_in)
            .ok_or(PresignError::InvalidTime)
            .and_then(UtcSecond::from_system_time)?;
        let url = self.addressing.url(&self.region, &request.bucket)?;

        let amz_date = signed_at.amz_date();
        let date_stamp = &amz_date[..8];

        let capacity = Capacity::of(credentials, request, &self.region);
        let mut fields = FieldList::with_capacity(capacity.fields, capacity.field_bytes);
        // The caller's fields and the checksum's, as `PostRequest::fields` lists them
        // (without its iterator chain, which costs a checksummed ticket ~2 %).
        for (name, value) in &request.fields {
            fields.push(name.as_str(), value);
        }
        if let Some(checksum) = request.checksum_fields() {
            for (name, value) in checksum {
                fields.push(name, value);
            }
        }
        fields.push("bucket", request.bucket.as_str());
        fields.push("X-Amz-Algorithm", ALGORITHM);
        fields.push_with("X-Amz-Credential", |out| {
            out.push_str(credentials.access_key_id());
            out.push('/');
            out.push_str(date_stamp);
            out.push('/');
            out.push_str(self.region.as_str());
            out.push_str("/s3/aws4_request");
        });
        fields.push("X-Amz-Date", &amz_date);

        check_conditions(request, &fields)?;

        let mut document = DocumentBuilder::new(expires_at, capacity.policy_bytes);
        for condition in &request.conditions {
            document.push(|out| condition.write_json(out))?;
        }
        // A checksum's fields (static names, checked base64) need no escaping.
        let escaped = request.fields.len();
        let unescaped = escaped + if request.checksum.is_some() { 2 } else { 0 };
        for (at, (name, value)) in fields.iter().enumerate() {
            if (escaped..unescaped).contains(&at) {
                document.push(|out| condition::write_exact_object_unescaped(out, name, value))?;
            } else {
                document.push(|out| condition::write_exact_object(out, name, value))?;
            }
        }
        if let Some(token) = credentials.session_token() {
            document.push_secret_exact("X-Amz-Security-Token", token)?;
            fields.push("X-Amz-Security-Token", token);
        }
        match request.key.filename_prefix() {
            Some(prefix) => {
                document.push(|out| condition::write_operator(out, "starts-with", "key", prefix))?
            }
            None => document
                .push(|out| condition::write_exact_object(out, "key", request.key.as_str()))?,
        };
        let policy = document.finish();
        fields.push("key", request.key.as_str());
        let encoded = fields.push_with("Policy", |out| policy.encode_into(out));
        let signature = self.keys.sign(
            credentials,
            now,
            date_stamp,
            &self.region,
            fields.text[encoded].as_bytes(),
        );
        fields.push("X-Amz-Signature", &signature);
        Ok(PresignedPost {
            url,
            fields,
            expires_at: expires_at.to_system_time(),
            policy,
        })
    }
}

/// What a ticket's two buffers need, computed from its parts so that neither grows nor
/// is much larger than needed: glibc serves blocks up to about 1 KiB from a per-thread
/// cache, and a needlessly large one costs more than writing a field.
struct Capacity {
    /// Form fields.
    fields: usize,
    /// Their names and values, the base64 policy and the signature included.
    field_bytes: usize,
    /// The policy's JSON text (escapes aside, which are rare).
    policy_bytes: usize,
}

impl Capacity {
    fn of(credentials: &Credentials, request: &PostRequest, region: &Region) -> Self {
        // Names and fixed parts of the fields the presigner adds, all pinned.
        const FIXED: usize = "bucket".len()
            + "X-Amz-Algorithm".len()
            + ALGORITHM.len()
            + "X-Amz-Credential//yyyymmdd//s3/aws4_request".len()
            + "X-Amz-Date".len()
            + "yyyymmddThhmmssZ".len()
            + "X-Amz-Security-Token".len()
            + "key".len();
        let pinned = request
            .fields
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum::<usize>()
            + request.checksum_fields().map_or(0, |checksum| {
                checksum.iter().map(|(n, v)| n.len() + v.len()).sum()
            })
            + FIXED
            + request.bucket.as_str().len()
            + credentials.access_key_id().len()
            + region.as_str().len()
            + credentials.session_token().map_or(0, str::len)
            + request.key.as_str().len();
        let pinned_fields = request.fields.len() + 2 * usize::from(request.checksum.is_some()) + 6;
        // `{"name":"value"},` per field; conditions of a few dozen bytes each; the
        // expiration, its date and the brackets.
        let policy_bytes = pinned + 8 * pinned_fields + 48 * request.conditions.len() + 64;
        Self {
            fields: pinned_fields + 2,
            field_bytes: pinned + "PolicyX-Amz-Signature".len() + policy_bytes.div_ceil(3) * 4 + 64,
            policy_bytes,
        }
    }
}

/// Refuses conditions the ticket's own fields contradict (S3 would then refuse every
/// upload, a silent failure the seed lets through), and conflicting size ranges.
fn check_conditions(request: &PostRequest, fields: &FieldList) -> Result<(), PresignError> {
    let mut range = None;
    for condition in &request.conditions {
        let Some(field) = condition.field() else {
            if range.is_some_and(|r| r != condition) {
                return Err(PresignError::DuplicateContentLengthRange);
            }
            range = Some(condition);
            continue;
        };
        let conflict = |value: &str| PresignError::ConflictingCondition {
            condition: condition.to_string(),
            field: field.as_str().to_owned(),
            value: value.to_owned(),
        };
        if field.is("key") {
            let key = request.key.as_str();
            let holds = match request.key.filename_prefix() {
                Some(prefix) => condition.accepts_some_value_starting_with(prefix),
                None => condition.accepts(key),
            };
            if !holds {
                return Err(conflict(key));
            }
        } else if let Some((_, value)) = fields.iter().find(|(n, _)| field.is(n))
            && !condition.accepts(value)
        {
            return Err(conflict(value));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: usize, checksum: bool) -> PostRequest {
        let mut request = PostRequest::new(
            BucketName::new("acme-uploads").unwrap(),
            ObjectKey::new("acme/user-42/0f8c2d1e-5b7a-4c3e/holiday_photo.jpg").unwrap(),
        )
        .condition(Condition::content_length_range(1, 26_214_400).unwrap())
        .condition(Condition::starts_with("Content-Type", "image/").unwrap());
        for i in 0..fields {
            request = request
                .field(&format!("x-amz-meta-f{i}"), "v".repeat(i * 7))
                .unwrap();
        }
        if checksum {
            let value = "xwGN7D1CJO8OjIrCG8yGDbcD126+dPE7yx5C2csNeso=";
            let checksum = Checksum::new(ChecksumAlgorithm::Sha256, value).unwrap();
            request = request.checksum(checksum).unwrap();
        }
        request
    }

    /// The estimate holds every ticket without a buffer growing (escapes aside) and
    /// wastes little: too small costs a copy, too large a slower allocation.
    #[test]
    fn buffers_are_sized_to_the_ticket() {
        let presigner =
            Presigner::new(Region::new("eu-west-1").unwrap(), Addressing::aws()).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let token = "FwoGZXIvYXdzE".repeat(40);
        for session_token in [None, Some(token)] {
            let credentials =
                Credentials::new("AKIAIOSFODNN7EXAMPLE", "secret", session_token.clone()).unwrap();
            for fields in [0, 1, 4, 12] {
                for checksum in [false, true] {
                    let request = request(fields, checksum);
                    let post = presigner.presign(&credentials, &request, now).unwrap();
                    let capacity = Capacity::of(&credentials, &request, &presigner.region);
                    let (text, policy) = (post.fields.text.len(), post.policy.as_str().len());
                    assert!(post.fields.ranges.len() <= capacity.fields);
                    assert!(
                        text <= capacity.field_bytes,
                        "{text} > {}",
                        capacity.field_bytes
                    );
                    assert!(
                        policy <= capacity.policy_bytes,
                        "{policy} > {}",
                        capacity.policy_bytes
                    );
                    assert!(
                        capacity.field_bytes - text < 160,
                        "{text} of {}",
                        capacity.field_bytes
                    );
                    assert!(
                        capacity.policy_bytes - policy < 120,
                        "{policy} of {}",
                        capacity.policy_bytes
                    );
                }
            }
        }
    }
}
