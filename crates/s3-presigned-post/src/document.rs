//! The POST policy document: its JSON text and its base64 form.

use std::fmt;
use std::ops::Range;

use super::PresignError;
use super::signing::UtcSecond;

/// Largest encoded policy (the `Policy` form field) the core issues. S3 caps all form
/// fields before the file together at 20 KiB; the seed checks nothing.
pub const MAX_ENCODED_POLICY_BYTES: usize = 20 * 1024;

/// Largest JSON text whose base64 form fits [`MAX_ENCODED_POLICY_BYTES`].
const MAX_POLICY_JSON_BYTES: usize = MAX_ENCODED_POLICY_BYTES / 4 * 3;

/// A policy document's JSON text, compact and in the seed's byte order.
///
/// `Display` and `Debug` hide the session token if the policy pins one; [`as_str`]
/// gives the exact text that is encoded and signed.
///
/// [`as_str`]: PolicyDocument::as_str
#[derive(Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    json: String,
    /// Where the session token's JSON string stands, to redact it.
    secret: Option<Range<usize>>,
}

impl PolicyDocument {
    /// The exact JSON text.
    pub fn as_str(&self) -> &str {
        &self.json
    }

    /// Base64 (standard alphabet, padded) of the JSON text: the `Policy` field and the
    /// SigV4 string to sign.
    pub fn encode(&self) -> EncodedPolicy {
        let mut base64 = String::new();
        self.encode_into(&mut base64);
        EncodedPolicy {
            base64,
            has_secret: self.secret.is_some(),
        }
    }

    /// Appends the base64 form to `out`, without an allocation of its own.
    pub(crate) fn encode_into(&self, out: &mut String) {
        base64_simd::STANDARD.encode_append(self.json.as_bytes(), out);
    }
}

impl fmt::Display for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.secret {
            Some(secret) => {
                f.write_str(&self.json[..secret.start])?;
                f.write_str("\"** redacted **\"")?;
                f.write_str(&self.json[secret.end..])
            }
            None => f.write_str(&self.json),
        }
    }
}

impl fmt::Debug for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PolicyDocument")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// The base64 policy: the `Policy` form field and what is signed.
///
/// `Display` and `Debug` hide it when it carries a session token; [`as_str`] gives it.
///
/// [`as_str`]: EncodedPolicy::as_str
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedPolicy {
    base64: String,
    has_secret: bool,
}

impl EncodedPolicy {
    /// The exact base64 text.
    pub fn as_str(&self) -> &str {
        &self.base64
    }

    /// The base64 text, owned.
    pub fn into_string(self) -> String {
        self.base64
    }
}

impl fmt::Display for EncodedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.has_secret {
            f.write_str("** redacted: the policy pins a session token **")
        } else {
            f.write_str(&self.base64)
        }
    }
}

impl fmt::Debug for EncodedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EncodedPolicy")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// Writes a policy document condition by condition, dropping exact duplicates as the
/// seed does (by JSON text, first one kept), without building a string per condition.
pub(crate) struct DocumentBuilder {
    json: String,
    /// Byte ranges of the conditions written so far, to find duplicates.
    conditions: Vec<Range<usize>>,
    secret: Option<Range<usize>>,
}

impl DocumentBuilder {
    pub(crate) fn new(expiration: UtcSecond, capacity: usize) -> Self {
        let mut json = String::with_capacity(capacity);
        json.push_str("{\"expiration\":\"");
        expiration.write_iso8601(&mut json);
        json.push_str("\",\"conditions\":[");
        Self {
            json,
            conditions: Vec::with_capacity(16),
            secret: None,
        }
    }

    /// Appends the condition `write` writes, unless the same text is already there.
    /// Returns whether it was appended.
    pub(crate) fn push(&mut self, write: impl FnOnce(&mut String)) -> Result<bool, PresignError> {
        let mark = self.json.len();
        if !self.conditions.is_empty() {
            self.json.push(',');
        }
        let start = self.json.len();
        write(&mut self.json);
        // Quadratic in the conditions, so each comparison is kept to a length test for
        // all but the rare same-length pair.
        let bytes = self.json.as_bytes();
        let text = &bytes[start..];
        if self
            .conditions
            .iter()
            .any(|r| r.len() == text.len() && bytes[r.clone()] == *text)
        {
            self.json.truncate(mark);
            return Ok(false);
        }
        // Checked as we go so that a flood of conditions stops early.
        if self.json.len() + 2 > MAX_POLICY_JSON_BYTES {
            return Err(PresignError::PolicyTooLarge {
                limit: MAX_ENCODED_POLICY_BYTES,
            });
        }
        self.conditions.push(start..self.json.len());
        Ok(true)
    }

    /// Appends `{"name":"value"}` where the value is a secret to hide in `Display`.
    pub(crate) fn push_secret_exact(
        &mut self,
        name: &str,
        value: &str,
    ) -> Result<(), PresignError> {
        let appended = self.push(|out| super::condition::write_exact_object(out, name, value))?;
        if appended && let Some(last) = self.conditions.last() {
            // `{"name":` comes first; the value runs to the closing brace.
            let value_start = last.start + name.len() + 4;
            self.secret = Some(value_start..last.end - 1);
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> PolicyDocument {
        self.json.push_str("]}");
        PolicyDocument {
            json: self.json,
            secret: self.secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn expiration() -> UtcSecond {
        UtcSecond::from_system_time(UNIX_EPOCH + Duration::from_secs(1_451_347_200)).unwrap()
    }

    #[test]
    fn duplicates_are_dropped_first_one_kept() {
        let mut doc = DocumentBuilder::new(expiration(), 256);
        assert!(doc.push(|o| o.push_str("{\"a\":\"1\"}")).unwrap());
        assert!(doc.push(|o| o.push_str("{\"b\":\"2\"}")).unwrap());
        assert!(!doc.push(|o| o.push_str("{\"a\":\"1\"}")).unwrap());
        let doc = doc.finish();
        assert_eq!(
            doc.as_str(),
            r#"{"expiration":"2015-12-29T00:00:00Z","conditions":[{"a":"1"},{"b":"2"}]}"#
        );
        assert_eq!(doc.to_string(), doc.as_str());
    }

    #[test]
    fn the_session_token_is_redacted_in_display_and_debug_only() {
        let mut doc = DocumentBuilder::new(expiration(), 256);
        doc.push_secret_exact("X-Amz-Security-Token", "t0ken\"x")
            .unwrap();
        doc.push(|o| o.push_str("{\"key\":\"k\"}")).unwrap();
        let doc = doc.finish();
        assert!(
            doc.as_str()
                .contains(r#"{"X-Amz-Security-Token":"t0ken\"x"}"#)
        );
        let shown = format!("{doc} {doc:?}");
        assert!(!shown.contains("t0ken"), "{shown}");
        assert!(shown.contains(r#"{"X-Amz-Security-Token":"** redacted **"},{"key":"k"}"#));
        let encoded = doc.encode();
        assert!(!format!("{encoded} {encoded:?}").contains(encoded.as_str()));
    }

    #[test]
    fn oversized_policies_are_refused_as_they_grow() {
        let mut doc = DocumentBuilder::new(expiration(), 256);
        let big = "x".repeat(1000);
        let mut refused = false;
        for i in 0..100 {
            if doc
                .push(|o| o.push_str(&format!("{{\"f{i}\":\"{big}\"}}")))
                .is_err()
            {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }

    #[test]
    fn the_limit_is_on_the_encoded_form() {
        assert_eq!(MAX_POLICY_JSON_BYTES, 15360);
        let encoded_len = |n: usize| n.div_ceil(3) * 4;
        assert_eq!(encoded_len(MAX_POLICY_JSON_BYTES), MAX_ENCODED_POLICY_BYTES);
    }
}
