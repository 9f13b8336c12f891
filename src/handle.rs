//! Multipart upload handles: what binds an upload to its owner without a database.
//!
//! A handle is a short JWT (HS256) signed with the service's own key, naming the tenant,
//! the subject, the bucket, the key, the upload id and the upload's shape, and expiring
//! with the upload's deadline. Every call on the upload verifies the handle AND that the
//! caller's token names the same tenant and subject AND that the key lies under that
//! subject's prefix: a leaked handle is useless to anyone else, and a forged one never
//! verifies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::jws::{self, Expected, HmacKey};
use crate::policy::TenantId;
use s3_presigned_post::{BucketName, ChecksumAlgorithm, ObjectKey};

/// The audience that keeps handles from passing as anything else signed with the key.
const AUDIENCE: &str = "upload-tickets:multipart";

/// The shortest acceptable handle key.
pub const MIN_HANDLE_KEY_BYTES: usize = 32;

/// What a handle says about its upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Tenant id.
    pub tenant: TenantId,
    /// The token subject that started it (as in the token, not escaped).
    pub sub: String,
    /// Bucket.
    pub bucket: BucketName,
    /// Object key.
    pub key: ObjectKey,
    /// The store's upload id.
    pub upload_id: String,
    /// Declared size in bytes.
    pub size: u64,
    /// Size of every part but the last.
    pub part_size: u64,
    /// Number of parts.
    pub part_count: u16,
    /// The content type the object is created with, if any.
    pub content_type: Option<String>,
    /// The checksum algorithm the upload was started with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// The whole object's checksum declared at the start, if any (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Set when the client lays out the parts itself (Uppy picks its own part size):
    /// then any numbering S3 accepts, `part_count` is S3's most, `size` is 0 unless
    /// declared, and the completion holds the total to these bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_parts: Option<SizeBounds>,
    /// The key the client proposed, where it may keep naming the upload by it: Uppy's
    /// `@uppy/aws-s3` 6.0 ignores the key the service picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

impl Upload {
    /// The exact size of part `number` where the service laid out the parts (every part
    /// `part_size`, the last the rest), signed into its URL so the store refuses other
    /// lengths; `None` where the client lays them out or the number is outside.
    pub fn part_len(&self, number: u16) -> Option<u64> {
        if self.client_parts.is_some() || number == 0 || number > self.part_count {
            return None;
        }
        let before = u64::from(number - 1).checked_mul(self.part_size)?;
        let rest = self.size.checked_sub(before)?;
        Some(rest.min(self.part_size))
    }
}

/// The sizes an upload whose parts the client lays out may add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeBounds {
    /// Smallest total in bytes.
    pub min: u64,
    /// Largest total in bytes.
    pub max: u64,
}

#[derive(Serialize, Deserialize)]
struct Claims<T> {
    aud: String,
    exp: u64,
    #[serde(flatten)]
    body: T,
}

/// The audience of receipts, so that a receipt never passes as a handle or back.
const RECEIPT_AUDIENCE: &str = "upload-tickets:receipt";

/// Signs and verifies handles (and receipts, what the service did signed for a client
/// to show it back). Verification is the bearer tokens' own JWS code (`auth::jws`), with
/// the HMAC key prepared once.
pub struct HandleKey {
    encoding: EncodingKey,
    verifying: HmacKey,
    /// The key before the current one, while it is rotated out: handles and receipts it
    /// signed still verify (nothing is signed with it).
    previous: Option<HmacKey>,
    expected: Expected,
    receipts: Expected,
}

impl std::fmt::Debug for HandleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandleKey(..)")
    }
}

/// Why a handle is not accepted (the API does not tell which: forged or expired).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Malformed, forged, or expired.
    #[error("the upload handle is invalid or expired")]
    Invalid,
    /// The deadline cannot be represented.
    #[error("the upload deadline is out of range")]
    Time,
}

impl HandleKey {
    /// A key from secret bytes (at least [`MIN_HANDLE_KEY_BYTES`]; the caller checks).
    pub fn new(secret: &[u8]) -> Self {
        // `exp` and `aud` required; no leeway: the service is its own clock.
        let expected = |audience: &str| Expected {
            issuer: None,
            audience: audience.to_owned(),
            leeway: 0,
        };
        Self {
            encoding: EncodingKey::from_secret(secret),
            verifying: HmacKey::hs256(secret),
            previous: None,
            expected: expected(AUDIENCE),
            receipts: expected(RECEIPT_AUDIENCE),
        }
    }

    /// Also verifies what `previous` signed: the rotation of the secret (sign with the
    /// new one, accept the old one until the open uploads it signed are done).
    pub fn with_previous(mut self, previous: &[u8]) -> Self {
        self.previous = Some(HmacKey::hs256(previous));
        self
    }

    /// A random key: handles then live as long as the process.
    pub fn random() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::new(&secret)
    }

    /// The handle of `upload`, valid until `expires_at`.
    pub fn sign(&self, upload: &Upload, expires_at: SystemTime) -> Result<String, HandleError> {
        self.encode(AUDIENCE, upload, expires_at)
    }

    /// The upload a handle names, if it verifies and has not expired at `now`.
    pub fn verify(
        &self,
        handle: &str,
        now: SystemTime,
    ) -> Result<(Upload, SystemTime), HandleError> {
        self.decode(&self.expected, handle, now)
    }

    /// A receipt of `body`, valid until `expires_at`: never accepted as a handle.
    pub fn sign_receipt<T: Serialize>(
        &self,
        body: &T,
        expires_at: SystemTime,
    ) -> Result<String, HandleError> {
        self.encode(RECEIPT_AUDIENCE, body, expires_at)
    }

    /// What a receipt says, if it verifies and has not expired at `now`.
    pub fn verify_receipt<T: DeserializeOwned>(
        &self,
        receipt: &str,
        now: SystemTime,
    ) -> Result<T, HandleError> {
        self.decode(&self.receipts, receipt, now)
            .map(|(body, _)| body)
    }

    fn encode<T: Serialize>(
        &self,
        audience: &str,
        body: &T,
        expires_at: SystemTime,
    ) -> Result<String, HandleError> {
        let exp = expires_at
            .duration_since(UNIX_EPOCH)
            .map_err(|_| HandleError::Time)?
            .as_secs();
        let claims = Claims {
            aud: audience.to_owned(),
            exp,
            body,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| HandleError::Invalid)
    }

    fn decode<T: DeserializeOwned>(
        &self,
        expected: &Expected,
        token: &str,
        now: SystemTime,
    ) -> Result<(T, SystemTime), HandleError> {
        if token.len() > 8 * 1024 {
            return Err(HandleError::Invalid);
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let payload = jws::verify_hmac(token, &self.verifying, expected, now)
            .or_else(|error| match &self.previous {
                Some(previous) => jws::verify_hmac(token, previous, expected, now),
                None => Err(error),
            })
            .map_err(|_| HandleError::Invalid)?;
        let claims: Claims<T> =
            serde_json::from_slice(&payload).map_err(|_| HandleError::Invalid)?;
        Ok((claims.body, UNIX_EPOCH + Duration::from_secs(claims.exp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload() -> Upload {
        Upload {
            tenant: TenantId::parse("acme").unwrap(),
            sub: "alice".into(),
            bucket: BucketName::new("bucket").unwrap(),
            key: ObjectKey::new("acme/alice/1/a.bin").unwrap(),
            upload_id: "id".into(),
            size: 20 << 20,
            part_size: 16 << 20,
            part_count: 2,
            content_type: None,
            checksum_algorithm: None,
            checksum: None,
            client_parts: None,
            client_key: None,
        }
    }

    #[test]
    fn a_rotated_key_signs_with_the_new_secret_and_accepts_the_previous_ones_handles() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let later = SystemTime::now() + Duration::from_secs(60);
        let before = HandleKey::new(&old).sign(&upload(), later).unwrap();
        let rotated = HandleKey::new(&new).with_previous(&old);
        assert_eq!(
            rotated.verify(&before, SystemTime::now()).unwrap().0,
            upload()
        );
        let after = rotated.sign(&upload(), later).unwrap();
        // Signed with the new secret only: the old key alone refuses it.
        assert_eq!(
            HandleKey::new(&old).verify(&after, SystemTime::now()),
            Err(HandleError::Invalid)
        );
        assert!(
            HandleKey::new(&new)
                .verify(&after, SystemTime::now())
                .is_ok()
        );
        // Once the previous secret is dropped, its handles are refused.
        assert_eq!(
            HandleKey::new(&new).verify(&before, SystemTime::now()),
            Err(HandleError::Invalid)
        );
        // Receipts too.
        let receipt = HandleKey::new(&old).sign_receipt(&upload(), later).unwrap();
        assert!(
            rotated
                .verify_receipt::<Upload>(&receipt, SystemTime::now())
                .is_ok()
        );
    }

    #[test]
    fn parts_of_a_fixed_layout_have_exact_lengths_and_client_layouts_none() {
        let fixed = upload();
        assert_eq!(fixed.part_len(1), Some(16 << 20));
        assert_eq!(fixed.part_len(2), Some(4 << 20));
        assert_eq!(fixed.part_len(0), None);
        assert_eq!(fixed.part_len(3), None);
        let exact = Upload {
            size: 32 << 20,
            ..upload()
        };
        assert_eq!(exact.part_len(2), Some(16 << 20));
        let client = Upload {
            client_parts: Some(SizeBounds { min: 1, max: 100 }),
            part_count: 10_000,
            ..upload()
        };
        assert_eq!(client.part_len(1), None);
    }

    #[test]
    fn handles_verify_only_with_their_key_and_before_their_deadline() {
        let key = HandleKey::new(&[7; 32]);
        let later = SystemTime::now() + Duration::from_secs(60);
        let handle = key.sign(&upload(), later).unwrap();
        assert_eq!(key.verify(&handle, SystemTime::now()).unwrap().0, upload());

        assert_eq!(
            HandleKey::new(&[8; 32]).verify(&handle, SystemTime::now()),
            Err(HandleError::Invalid)
        );
        let past = SystemTime::now() - Duration::from_secs(1);
        assert_eq!(
            key.verify(&key.sign(&upload(), past).unwrap(), SystemTime::now()),
            Err(HandleError::Invalid)
        );
        // A changed claim breaks the signature.
        let mut parts: Vec<String> = handle.split('.').map(str::to_owned).collect();
        let payload = base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(&parts[1])
            .unwrap();
        let tampered = String::from_utf8(payload)
            .unwrap()
            .replace("alice", "mallory");
        parts[1] = base64_simd::URL_SAFE_NO_PAD.encode_to_string(tampered.as_bytes());
        let now = SystemTime::now();
        assert_eq!(key.verify(&parts.join("."), now), Err(HandleError::Invalid));
        assert_eq!(key.verify("not a handle", now), Err(HandleError::Invalid));
        assert_eq!(
            key.verify(&"a".repeat(10_000), now),
            Err(HandleError::Invalid)
        );
    }

    #[test]
    fn receipts_and_handles_never_pass_for_each_other() {
        let key = HandleKey::new(&[7; 32]);
        let later = SystemTime::now() + Duration::from_secs(60);
        let now = SystemTime::now();
        let receipt = key.sign_receipt(&upload(), later).unwrap();
        assert_eq!(
            key.verify_receipt::<Upload>(&receipt, now).unwrap(),
            upload()
        );
        assert_eq!(key.verify(&receipt, now), Err(HandleError::Invalid));
        let handle = key.sign(&upload(), later).unwrap();
        assert_eq!(
            key.verify_receipt::<Upload>(&handle, now),
            Err(HandleError::Invalid)
        );
        let other = HandleKey::new(&[8; 32]);
        assert_eq!(
            other.verify_receipt::<Upload>(&receipt, now),
            Err(HandleError::Invalid)
        );
    }

    #[test]
    fn a_handle_key_never_shows_in_debug() {
        assert_eq!(format!("{:?}", HandleKey::new(&[7; 32])), "HandleKey(..)");
    }
}
