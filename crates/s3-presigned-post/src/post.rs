//! What a POST ticket signs: the seed's `{Bucket, Key, Conditions, Fields, Expires}`.

use std::time::Duration;

use crate::{
    BucketName, CHECKSUM_FIELD_PREFIX, Checksum, Condition, FieldName, ObjectKey, PresignError,
    Validity,
};

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

/// The form field naming a declared checksum's algorithm.
const CHECKSUM_ALGORITHM_FIELD: &str = "x-amz-checksum-algorithm";

/// What to sign: the seed's `{Bucket, Key, Conditions, Fields, Expires}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRequest {
    pub(crate) bucket: BucketName,
    pub(crate) key: ObjectKey,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) fields: Vec<(FieldName, String)>,
    /// Kept apart from `fields`: its two names are static and its value checked, so a
    /// ticket pays no allocation or name check for them.
    pub(crate) checksum: Option<Checksum>,
    pub(crate) validity: Validity,
}

impl PostRequest {
    /// A ticket for `key` in `bucket`, valid for [`Validity::DEFAULT`] (an hour).
    pub fn new(bucket: BucketName, key: ObjectKey) -> Self {
        Self {
            bucket,
            key,
            conditions: Vec::new(),
            fields: Vec::new(),
            checksum: None,
            validity: Validity::DEFAULT,
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

    /// How long the ticket is valid: 1 second to 7 days (see [`Validity`]).
    pub fn expires_in(self, expires_in: Duration) -> Result<Self, PresignError> {
        Ok(self.with_validity(Validity::new(expires_in)?))
    }

    /// How long the ticket is valid, already checked.
    pub fn with_validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
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
    pub(crate) fn checksum_fields(&self) -> Option<[(&'static str, &str); 2]> {
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
    pub fn validity(&self) -> Validity {
        self.validity
    }
}
