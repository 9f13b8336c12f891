//! The verdict on a stored object against the tickets it was uploaded with: pure, so
//! that every rule is tested without a store. The store enforces a ticket's policy;
//! this is the second look, after the bytes land, that does not trust it did (a store
//! that enforces less, a key written another way, bytes that are not what their type
//! says).

use crate::limits::records::TicketRecord;
use crate::policy::{self, Declared, StoredObject, TenantRules};

/// Which rule a mismatch breaks: the metrics' `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The tenant's rules (its size range, types, metadata keys, checksum rule).
    TenantRules,
    /// Outside its ticket's size bounds.
    Size,
    /// Not the content type its ticket declared.
    ContentType,
    /// Not the metadata its ticket declared.
    Metadata,
    /// Not the checksum its ticket declared.
    Checksum,
    /// The bytes are not what the type says, or are markup a browser runs.
    Content,
    /// Not what the client's completion call declared.
    Declared,
}

impl Reason {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::TenantRules => "tenant_rules",
            Self::Size => "size",
            Self::ContentType => "content_type",
            Self::Metadata => "metadata",
            Self::Checksum => "checksum",
            Self::Content => "content",
            Self::Declared => "declared",
        }
    }
}

/// One broken rule, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Which rule.
    pub reason: Reason,
    /// What does not hold.
    pub words: String,
}

impl Mismatch {
    fn new(reason: Reason, words: String) -> Self {
        Self { reason, words }
    }
}

/// Everything `object` breaks: the tenant's rules, what the client `declared` at
/// completion, the tickets of its key (it must keep one of them: with several, the
/// newest one's mismatches are told) and, when its first bytes `start` could be read,
/// their agreement with its type.
pub fn verify(
    rules: &TenantRules,
    tickets: &[TicketRecord],
    object: &StoredObject,
    start: Option<&[u8]>,
    declared: Declared<'_>,
) -> Vec<Mismatch> {
    let tenant = policy::audit(rules, object, Declared::default());
    let mut found: Vec<Mismatch> = tenant
        .iter()
        .map(|words| Mismatch::new(Reason::TenantRules, words.clone()))
        .collect();
    if declared != Declared::default() {
        let extra = policy::audit(rules, object, declared);
        found.extend(
            extra
                .into_iter()
                .filter(|words| !tenant.contains(words))
                .map(|words| Mismatch::new(Reason::Declared, words)),
        );
    }
    let mut newest_first: Vec<&TicketRecord> = tickets.iter().collect();
    newest_first.sort_by_key(|t| std::cmp::Reverse(t.expires_at));
    let per_ticket: Vec<Vec<Mismatch>> = newest_first
        .iter()
        .map(|ticket| against_ticket(ticket, object))
        .collect();
    if !per_ticket.iter().any(Vec::is_empty)
        && let Some(newest) = per_ticket.into_iter().next()
    {
        found.extend(newest);
    }
    if let Some(start) = start
        && let Some(words) = policy::content::mismatch(rules, object.content_type.as_deref(), start)
    {
        found.push(Mismatch::new(Reason::Content, words));
    }
    found
}

/// What `object` breaks of what `ticket` allowed and declared.
fn against_ticket(ticket: &TicketRecord, object: &StoredObject) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let size = object.size;
    if !(ticket.min_size..=ticket.max_size).contains(&size) {
        found.push(Mismatch::new(
            Reason::Size,
            format!(
                "size {size} is outside its ticket's {} to {} bytes",
                ticket.min_size, ticket.max_size
            ),
        ));
    }
    if let Some(declared) = &ticket.content_type {
        let essence = |t: &str| {
            t.parse::<mime::Mime>()
                .ok()
                .map(|m| m.essence_str().to_owned())
        };
        let stored = object.content_type.as_deref();
        if stored.and_then(essence) != essence(declared) {
            found.push(Mismatch::new(
                Reason::ContentType,
                format!(
                    "content type {} is not its ticket's {declared}",
                    stored.unwrap_or("(none)")
                ),
            ));
        }
    }
    for (name, value) in &ticket.metadata {
        match object.metadata.get(name) {
            Some(stored) if stored == value => {}
            Some(stored) => found.push(Mismatch::new(
                Reason::Metadata,
                format!("metadata {name:?} is {stored:?}, not its ticket's {value:?}"),
            )),
            None => found.push(Mismatch::new(
                Reason::Metadata,
                format!("metadata {name:?} of its ticket is missing"),
            )),
        }
    }
    for name in object.metadata.keys() {
        if !ticket.metadata.contains_key(name) {
            found.push(Mismatch::new(
                Reason::Metadata,
                format!("metadata {name:?} is not in its ticket"),
            ));
        }
    }
    if let Some(declared) = &ticket.checksum {
        let algorithm = declared.algorithm;
        match &object.checksum {
            Some(c) if c.algorithm == algorithm && c.value == declared.value => {}
            Some(c) if c.algorithm == algorithm => found.push(Mismatch::new(
                Reason::Checksum,
                format!(
                    "{algorithm} checksum {} is not its ticket's {}",
                    c.value, declared.value
                ),
            )),
            _ => found.push(Mismatch::new(
                Reason::Checksum,
                format!("the store reports no {algorithm} checksum for its ticket's"),
            )),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::limits::records::{RecordedChecksum, TicketKind};
    use crate::policy::{StoredChecksum, TenantSettings};
    use s3_presigned_post::ChecksumAlgorithm;

    fn rules() -> TenantRules {
        let settings: TenantSettings = toml::from_str(
            "bucket = \"acme-uploads\"\nmax_size = 1000\ncontent_types = [\"image/*\", \"text/plain\"]\nmetadata_keys = [\"album\"]",
        )
        .unwrap();
        TenantRules::from_settings("acme", &settings).unwrap()
    }

    fn ticket(max: u64, expires_at: u64) -> TicketRecord {
        TicketRecord {
            id: format!("t{max}"),
            tenant: "acme".to_owned(),
            subject: "u".to_owned(),
            bucket: "b".to_owned(),
            key: "acme/u/k".to_owned(),
            kind: TicketKind::Post,
            min_size: 1,
            max_size: max,
            reserved: max,
            day: 0,
            content_type: Some("image/png".to_owned()),
            checksum: None,
            metadata: BTreeMap::new(),
            expires_at,
            due: expires_at,
        }
    }

    fn png(size: u64) -> StoredObject {
        StoredObject {
            size,
            content_type: Some("image/png".to_owned()),
            metadata: BTreeMap::new(),
            checksum: None,
        }
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    fn reasons(found: &[Mismatch]) -> Vec<Reason> {
        found.iter().map(|m| m.reason).collect()
    }

    #[test]
    fn an_object_that_keeps_its_ticket_passes() {
        let found = verify(
            &rules(),
            &[ticket(100, 1)],
            &png(100),
            Some(PNG),
            Declared::default(),
        );
        assert_eq!(found, vec![]);
    }

    #[test]
    fn an_object_larger_than_its_ticket_allowed_is_refused_within_the_tenants_range() {
        let found = verify(
            &rules(),
            &[ticket(100, 1)],
            &png(500),
            Some(PNG),
            Declared::default(),
        );
        assert_eq!(reasons(&found), vec![Reason::Size]);
        assert!(found[0].words.contains("1 to 100"), "{found:?}");
        // Two tickets for one key: keeping either is enough.
        let both = [ticket(100, 1), ticket(600, 2)];
        assert_eq!(
            verify(&rules(), &both, &png(500), Some(PNG), Declared::default()),
            vec![]
        );
    }

    #[test]
    fn html_declared_as_png_is_refused() {
        let found = verify(
            &rules(),
            &[ticket(100, 1)],
            &png(30),
            Some(b"<html><script>x</script>"),
            Declared::default(),
        );
        assert_eq!(reasons(&found), vec![Reason::Content]);
    }

    #[test]
    fn type_metadata_and_checksum_are_those_of_the_ticket() {
        let mut t = ticket(100, 1);
        t.metadata.insert("album".to_owned(), "2026".to_owned());
        t.checksum = Some(RecordedChecksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value: "AAAA".to_owned(),
        });
        let mut object = png(10);
        object.content_type = Some("image/jpeg".to_owned());
        object
            .metadata
            .insert("album".to_owned(), "1999".to_owned());
        object.checksum = Some(StoredChecksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value: "BBBB".to_owned(),
            kind: None,
        });
        let found = verify(&rules(), &[t], &object, None, Declared::default());
        assert_eq!(
            reasons(&found),
            vec![Reason::ContentType, Reason::Metadata, Reason::Checksum]
        );
    }

    #[test]
    fn without_a_ticket_the_tenants_rules_and_the_declaration_still_hold() {
        let mut object = png(5000);
        object.content_type = Some("application/pdf".to_owned());
        let declared = Declared {
            size: Some(10),
            ..Declared::default()
        };
        let found = verify(&rules(), &[], &object, None, declared);
        assert_eq!(
            reasons(&found),
            vec![Reason::TenantRules, Reason::TenantRules, Reason::Declared]
        );
    }
}
