//! The presigner: signs POST tickets for one region and addressing (and URLs, in
//! [`crate::url`]).

use std::time::SystemTime;

use crate::condition;
use crate::document::DocumentBuilder;
use crate::presigned::FieldList;
use crate::{
    ALGORITHM, Addressing, Credentials, PostRequest, PresignError, PresignedPost, Region,
    SigningKeyCache, UtcSecond,
};

/// Signs POST tickets for one region and addressing: what an `S3Client` is to the seed.
///
/// Cheap to share between threads; it caches derived signing keys.
#[derive(Debug)]
pub struct Presigner {
    region: Region,
    addressing: Addressing,
    pub(crate) keys: SigningKeyCache,
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
            .checked_add(request.validity.get())
            .ok_or(PresignError::InvalidTime)
            .and_then(UtcSecond::from_system_time)?;
        let url = self.addressing.url(&self.region, &request.bucket)?;

        let amz_date = signed_at.amz_date_text();
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
    use crate::{BucketName, Checksum, ChecksumAlgorithm, Condition, ObjectKey};
    use std::time::Duration;

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
