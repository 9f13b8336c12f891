//! The completion check's judgement: does an object the store holds keep the tenant's
//! rules and what its ticket declared?
//!
//! The store enforces a ticket's policy, but an object may have come another way (a
//! leaked key, a store that enforces less). This applies the same rule code a ticket is
//! planned with ([`TenantRules::check_size`], [`TenantRules::allows_type`],
//! [`TenantRules::allows_metadata_key`]) to what the store reports, and says in words
//! what does not hold. Pure: the HTTP layer fetches, this judges.

use std::collections::BTreeMap;

use mime::Mime;

use super::TenantRules;
use s3_presigned_post::{Checksum, ChecksumAlgorithm};

/// What the store reports about an object, in the terms the rules speak.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredObject {
    /// Its size in bytes.
    pub size: u64,
    /// Its `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// Its `x-amz-meta-*` values, by lower-case name.
    pub metadata: BTreeMap<String, String>,
    /// Its checksum as the store reports it.
    pub checksum: Option<StoredChecksum>,
}

/// A checksum as a store reports it for an object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredChecksum {
    /// The algorithm.
    pub algorithm: ChecksumAlgorithm,
    /// The base64 value; a composite one ends with `-<parts>`.
    pub value: String,
    /// `FULL_OBJECT` or `COMPOSITE`, if the store says.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// What the ticket declared, each part optional: the audit compares what is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Declared<'a> {
    /// The size.
    pub size: Option<u64>,
    /// The content type.
    pub content_type: Option<&'a str>,
    /// The checksum of the whole file.
    pub checksum: Option<&'a Checksum>,
}

/// The mismatches of `object` against `rules` and what the ticket `declared`, in
/// words; empty when everything holds.
pub fn audit(rules: &TenantRules, object: &StoredObject, declared: Declared<'_>) -> Vec<String> {
    let (declared_size, declared_type) = (declared.size, declared.content_type);
    let mut mismatches = Vec::new();
    let size = object.size;
    if rules.check_size(size).is_err() {
        mismatches.push(format!(
            "size {size} is outside this tenant's {} to {} bytes",
            rules.min_size, rules.max_size
        ));
    }
    if let Some(expected) = declared_size
        && expected != size
    {
        mismatches.push(format!("size {size} is not the declared {expected}"));
    }
    let shown = object.content_type.as_deref().unwrap_or("(none)");
    let stored: Option<Mime> = object.content_type.as_deref().and_then(|t| t.parse().ok());
    // A tenant without type rules allows any type, even none.
    let allowed = match &stored {
        Some(mime) => rules.allows_type(mime),
        None => rules.content_types.is_empty(),
    };
    if !allowed {
        mismatches.push(format!(
            "content type {shown} is not allowed for this tenant"
        ));
    }
    if let Some(expected) = declared_type {
        let same = match (expected.parse::<Mime>(), &stored) {
            (Ok(e), Some(m)) => e.essence_str() == m.essence_str(),
            _ => false,
        };
        if !same {
            mismatches.push(format!(
                "content type {shown} is not the declared {expected}"
            ));
        }
    }
    for name in object.metadata.keys() {
        if !rules.allows_metadata_key(name) {
            mismatches.push(format!("metadata {name:?} is not allowed for this tenant"));
        }
    }
    let stored = object.checksum.as_ref();
    if rules.check_checksum(stored.map(|c| c.algorithm)).is_err() {
        let wanted = rules.require_checksum.iter().map(|a| a.name());
        let shown = stored.map_or("none", |c| c.algorithm.name());
        mismatches.push(format!(
            "this tenant requires a {} checksum; the store reports {shown}",
            wanted.collect::<Vec<_>>().join(" or ")
        ));
    }
    if let Some(expected) = declared.checksum {
        let algorithm = expected.algorithm();
        match stored {
            Some(c) if c.algorithm == algorithm && c.value == expected.value() => {}
            Some(c) if c.algorithm == algorithm => mismatches.push(format!(
                "{algorithm} checksum {} is not the declared {}",
                c.value,
                expected.value()
            )),
            _ => mismatches.push(format!(
                "the store reports no {algorithm} checksum, so the declared one is unconfirmed"
            )),
        }
    }
    mismatches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TenantSettings;

    fn rules() -> TenantRules {
        let settings: TenantSettings = toml::from_str(
            r#"
            bucket = "acme-uploads"
            min_size = 10
            max_size = 100
            content_types = ["image/*"]
            metadata_keys = ["album"]
            "#,
        )
        .unwrap();
        TenantRules::from_settings("acme", &settings).unwrap()
    }

    fn object(size: u64, content_type: Option<&str>, meta: &[(&str, &str)]) -> StoredObject {
        StoredObject {
            size,
            content_type: content_type.map(str::to_owned),
            metadata: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            checksum: None,
        }
    }

    fn stored_checksum(algorithm: ChecksumAlgorithm, value: &str) -> StoredChecksum {
        StoredChecksum {
            algorithm,
            value: value.to_owned(),
            kind: None,
        }
    }

    #[test]
    fn an_object_within_the_rules_and_its_declaration_has_no_mismatch() {
        let good = object(50, Some("image/png"), &[("album", "2026")]);
        let declared = Declared {
            size: Some(50),
            content_type: Some("image/png"),
            checksum: None,
        };
        assert!(audit(&rules(), &good, declared).is_empty());
        // Parameters do not change a type.
        let charset = object(50, Some("image/png; q=1"), &[]);
        let declared = Declared {
            content_type: Some("IMAGE/PNG"),
            ..Declared::default()
        };
        assert!(audit(&rules(), &charset, declared).is_empty());
    }

    #[test]
    fn a_declared_checksum_is_compared_with_the_stored_one() {
        let sha = |v: &str| Checksum::new(ChecksumAlgorithm::Sha256, v).unwrap();
        let right = sha("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        let other = sha("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        let mut stored = object(50, Some("image/png"), &[]);
        stored.checksum = Some(stored_checksum(ChecksumAlgorithm::Sha256, right.value()));
        let declaring = |checksum| Declared {
            checksum: Some(checksum),
            ..Declared::default()
        };
        assert!(audit(&rules(), &stored, declaring(&right)).is_empty());
        assert_eq!(
            audit(&rules(), &stored, declaring(&other)),
            [format!(
                "SHA256 checksum {} is not the declared {}",
                right.value(),
                other.value()
            )]
        );
        // A store that keeps another algorithm, or none, cannot confirm it.
        stored.checksum = Some(stored_checksum(
            ChecksumAlgorithm::Crc64Nvme,
            "AAAAAAAAAAA=",
        ));
        let unconfirmed =
            "the store reports no SHA256 checksum, so the declared one is unconfirmed";
        assert_eq!(audit(&rules(), &stored, declaring(&right)), [unconfirmed]);
        stored.checksum = None;
        assert_eq!(audit(&rules(), &stored, declaring(&right)), [unconfirmed]);
    }

    #[test]
    fn a_tenant_that_requires_a_checksum_flags_objects_without_one() {
        let mut rules = rules();
        rules.require_checksum = vec![ChecksumAlgorithm::Sha256, ChecksumAlgorithm::Crc64Nvme];
        let mut stored = object(50, Some("image/png"), &[]);
        let flagged = "this tenant requires a SHA256 or CRC64NVME checksum; the store reports";
        assert_eq!(
            audit(&rules, &stored, Declared::default()),
            [format!("{flagged} none")]
        );
        stored.checksum = Some(stored_checksum(ChecksumAlgorithm::Crc32, "AAAAAA=="));
        assert_eq!(
            audit(&rules, &stored, Declared::default()),
            [format!("{flagged} CRC32")]
        );
        stored.checksum = Some(stored_checksum(
            ChecksumAlgorithm::Crc64Nvme,
            "AAAAAAAAAAA=",
        ));
        assert!(audit(&rules, &stored, Declared::default()).is_empty());
    }

    #[test]
    fn every_broken_rule_is_named_once() {
        let bad = object(500, Some("application/x-msdownload"), &[("evil", "1")]);
        let declared = Declared {
            size: Some(10),
            content_type: Some("image/png"),
            checksum: None,
        };
        let found = audit(&rules(), &bad, declared);
        assert_eq!(
            found,
            [
                "size 500 is outside this tenant's 10 to 100 bytes",
                "size 500 is not the declared 10",
                "content type application/x-msdownload is not allowed for this tenant",
                "content type application/x-msdownload is not the declared image/png",
                "metadata \"evil\" is not allowed for this tenant",
            ]
        );
        let untyped = object(5, None, &[]);
        assert_eq!(
            audit(&rules(), &untyped, Declared::default()),
            [
                "size 5 is outside this tenant's 10 to 100 bytes",
                "content type (none) is not allowed for this tenant",
            ]
        );
    }
}
