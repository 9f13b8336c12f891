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

/// What the store reports about an object, in the terms the rules speak.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredObject {
    /// Its size in bytes.
    pub size: u64,
    /// Its `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// Its `x-amz-meta-*` values, by lower-case name.
    pub metadata: BTreeMap<String, String>,
}

/// The mismatches of `object` against `rules` and what the ticket declared (each
/// optional), in words; empty when everything holds.
pub fn audit(
    rules: &TenantRules,
    object: &StoredObject,
    declared_size: Option<u64>,
    declared_type: Option<&str>,
) -> Vec<String> {
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
        }
    }

    #[test]
    fn an_object_within_the_rules_and_its_declaration_has_no_mismatch() {
        let good = object(50, Some("image/png"), &[("album", "2026")]);
        assert!(audit(&rules(), &good, Some(50), Some("image/png")).is_empty());
        // Parameters do not change a type.
        let charset = object(50, Some("image/png; q=1"), &[]);
        assert!(audit(&rules(), &charset, None, Some("IMAGE/PNG")).is_empty());
    }

    #[test]
    fn every_broken_rule_is_named_once() {
        let bad = object(500, Some("application/x-msdownload"), &[("evil", "1")]);
        let found = audit(&rules(), &bad, Some(10), Some("image/png"));
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
            audit(&rules(), &untyped, None, None),
            [
                "size 5 is outside this tenant's 10 to 100 bytes",
                "content type (none) is not allowed for this tenant",
            ]
        );
    }
}
