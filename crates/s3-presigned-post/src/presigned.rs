//! A signed POST ticket: the URL and the form fields, kept in one buffer.

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use crate::PolicyDocument;

/// A signed ticket: the URL to post to and the form fields to send before the file.
///
/// Fields are in the seed's order: the caller's fields, `bucket`, `X-Amz-Algorithm`,
/// `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Security-Token` (temporary credentials
/// only), `key`, `Policy`, `X-Amz-Signature`. `Debug` hides the session token; the
/// `Serialize` output (`{"url", "fields"}`) is the ticket itself and holds everything.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedPost {
    pub(crate) url: String,
    pub(crate) fields: FieldList,
    pub(crate) expires_at: SystemTime,
    pub(crate) policy: PolicyDocument,
}

/// Form fields in one buffer: a ticket has a dozen short fields, and one allocation for
/// all of them instead of two each is a measurable share of the cost of a ticket.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FieldList {
    pub(crate) text: String,
    /// Byte ranges of (name, value) in `text`.
    pub(crate) ranges: Vec<(Range<usize>, Range<usize>)>,
}

impl FieldList {
    pub(crate) fn with_capacity(fields: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            ranges: Vec::with_capacity(fields),
        }
    }

    /// Appends a field whose value `write_value` writes; returns where the value is.
    pub(crate) fn push_with(
        &mut self,
        name: &str,
        write_value: impl FnOnce(&mut String),
    ) -> Range<usize> {
        let name_start = self.text.len();
        self.text.push_str(name);
        let value_start = self.text.len();
        write_value(&mut self.text);
        let value = value_start..self.text.len();
        self.ranges.push((name_start..value_start, value.clone()));
        value
    }

    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.push_with(name, |out| out.push_str(value));
    }

    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
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
