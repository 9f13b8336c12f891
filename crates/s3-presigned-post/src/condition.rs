//! POST policy conditions and their JSON text.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde_json::Value;

use super::names::FieldName;
use super::{MAX_POST_OBJECT_SIZE, PresignError};

/// One condition of a POST policy.
///
/// The JSON form is kept as written because the seed deduplicates and signs conditions by
/// their exact JSON text: `{"acl":"private"}` and `["eq","$acl","private"]` mean the same
/// to S3 but are different policies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The field must equal `value`.
    Exact {
        /// The field, without `$`.
        field: FieldName,
        /// The only value allowed.
        value: String,
        /// How it is written in the policy.
        form: ExactForm,
    },
    /// The field must start with `prefix` (an empty prefix allows any value).
    StartsWith {
        /// The field, without `$`.
        field: FieldName,
        /// What the value must start with.
        prefix: String,
    },
    /// The uploaded file's size in bytes must lie in `min..=max`.
    ContentLengthRange {
        /// Smallest size in bytes.
        min: u64,
        /// Largest size in bytes (at most 5 GiB).
        max: u64,
    },
}

/// The two ways S3 accepts an exact-match condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExactForm {
    /// `{"field":"value"}`: how the presigner pins its own fields.
    Object,
    /// `["eq","$field","value"]`.
    Eq,
}

impl Condition {
    /// `{"field":"value"}`.
    pub fn exact(field: &str, value: impl Into<String>) -> Result<Self, PresignError> {
        Ok(Self::Exact {
            field: FieldName::new(field)?,
            value: value.into(),
            form: ExactForm::Object,
        })
    }

    /// `["eq","$field","value"]`.
    pub fn eq(field: &str, value: impl Into<String>) -> Result<Self, PresignError> {
        Ok(Self::Exact {
            field: FieldName::new(field)?,
            value: value.into(),
            form: ExactForm::Eq,
        })
    }

    /// `["starts-with","$field","prefix"]`.
    pub fn starts_with(field: &str, prefix: impl Into<String>) -> Result<Self, PresignError> {
        Ok(Self::StartsWith {
            field: FieldName::new(field)?,
            prefix: prefix.into(),
        })
    }

    /// `["content-length-range",min,max]`; refuses min > max and max over 5 GiB, which
    /// the seed passes on to S3 unchecked.
    pub fn content_length_range(min: u64, max: u64) -> Result<Self, PresignError> {
        if min > max || max > MAX_POST_OBJECT_SIZE {
            return Err(PresignError::InvalidContentLengthRange { min, max });
        }
        Ok(Self::ContentLengthRange { min, max })
    }

    /// Reads a condition in any of the JSON forms S3 documents. Values must be strings
    /// and sizes whole numbers; operators are `eq`, `starts-with` and
    /// `content-length-range`, in lower case.
    pub fn from_json(value: &Value) -> Result<Self, PresignError> {
        let invalid = |why: &str| PresignError::InvalidCondition(format!("{value}: {why}"));
        match value {
            Value::Object(map) => {
                let mut entries = map.iter();
                match (entries.next(), entries.next()) {
                    (Some((field, Value::String(v))), None) => Self::exact(field, v.as_str()),
                    (Some(_), None) => Err(invalid("the value must be a string")),
                    _ => Err(invalid("an object condition names exactly one field")),
                }
            }
            Value::Array(items) => match items.as_slice() {
                [Value::String(op), Value::String(field), Value::String(v)]
                    if op == "eq" || op == "starts-with" =>
                {
                    let field = field
                        .strip_prefix('$')
                        .ok_or_else(|| invalid("the field must start with '$'"))?;
                    if op == "eq" {
                        Self::eq(field, v.as_str())
                    } else {
                        Self::starts_with(field, v.as_str())
                    }
                }
                [Value::String(op), min, max] if op == "content-length-range" => {
                    match (min.as_u64(), max.as_u64()) {
                        (Some(min), Some(max)) => Self::content_length_range(min, max),
                        _ => Err(invalid("the bounds must be whole numbers of bytes")),
                    }
                }
                _ => Err(invalid(
                    "expected [\"eq\"|\"starts-with\", \"$field\", \"value\"] \
                     or [\"content-length-range\", min, max]",
                )),
            },
            _ => Err(invalid("a condition is an object or an array")),
        }
    }

    /// The field the condition is about; `None` for `content-length-range`.
    pub fn field(&self) -> Option<&FieldName> {
        match self {
            Self::Exact { field, .. } | Self::StartsWith { field, .. } => Some(field),
            Self::ContentLengthRange { .. } => None,
        }
    }

    /// Whether a field with value `value` meets this condition.
    pub(crate) fn accepts(&self, value: &str) -> bool {
        match self {
            Self::Exact { value: wanted, .. } => value == wanted,
            Self::StartsWith { prefix, .. } => value.starts_with(prefix.as_str()),
            Self::ContentLengthRange { .. } => true,
        }
    }

    /// Whether some value starting with `prefix` meets this condition: what a key ending
    /// in `${filename}` can still become.
    pub(crate) fn accepts_some_value_starting_with(&self, prefix: &str) -> bool {
        match self {
            Self::Exact { value, .. } => value.starts_with(prefix),
            Self::StartsWith { prefix: wanted, .. } => {
                prefix.starts_with(wanted.as_str()) || wanted.starts_with(prefix)
            }
            Self::ContentLengthRange { .. } => true,
        }
    }

    /// Appends the compact JSON text of the condition, exactly as `JSON.stringify` writes it.
    pub(crate) fn write_json(&self, out: &mut String) {
        match self {
            Self::Exact {
                field,
                value,
                form: ExactForm::Object,
            } => write_exact_object(out, field.as_str(), value),
            Self::Exact {
                field,
                value,
                form: ExactForm::Eq,
            } => write_operator(out, "eq", field.as_str(), value),
            Self::StartsWith { field, prefix } => {
                write_operator(out, "starts-with", field.as_str(), prefix)
            }
            Self::ContentLengthRange { min, max } => {
                // Writing to a String cannot fail.
                let _ = write!(out, "[\"content-length-range\",{min},{max}]");
            }
        }
    }
}

/// `{"field":"value"}`.
pub(crate) fn write_exact_object(out: &mut String, field: &str, value: &str) {
    out.push('{');
    push_json_string(out, field);
    out.push(':');
    push_json_string(out, value);
    out.push('}');
}

/// `{"field":"value"}` for a field and value known to hold nothing JSON escapes.
pub(crate) fn write_exact_object_unescaped(out: &mut String, field: &str, value: &str) {
    debug_assert!(
        [field, value]
            .iter()
            .all(|s| !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'))
    );
    out.push_str("{\"");
    out.push_str(field);
    out.push_str("\":\"");
    out.push_str(value);
    out.push_str("\"}");
}

/// `["op","$field","value"]`.
pub(crate) fn write_operator(out: &mut String, op: &str, field: &str, value: &str) {
    out.push_str("[\"");
    out.push_str(op);
    out.push_str("\",\"$");
    // Field names are HTTP tokens: nothing in them needs escaping.
    out.push_str(field);
    out.push_str("\",");
    push_json_string(out, value);
    out.push(']');
}

/// Appends `s` as a JSON string the way ECMAScript's `JSON.stringify` does: only `"`,
/// `\` and control characters are escaped (with the short forms where JSON has them),
/// everything else is raw UTF-8. Rust strings hold no lone surrogates, the one case
/// where `JSON.stringify` escapes more.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    // Writing to a `String` cannot fail.
    let _ = write_json_escaped(out, s);
    out.push('"');
}

/// The inside of a JSON string as `JSON.stringify` writes it (what policies hold), to any
/// writer. Public because other hot writers of JSON text (a log line) want the same
/// vectorised fast path for strings that need no escaping.
///
/// ```
/// let mut out = String::new();
/// s3_presigned_post::condition::write_json_escaped(&mut out, "a\"b\n").unwrap();
/// assert_eq!(out, r#"a\"b\n"#);
/// ```
pub fn write_json_escaped<W: fmt::Write + ?Sized>(out: &mut W, s: &str) -> fmt::Result {
    let bytes = s.as_bytes();
    // Most values need no escaping; this test has no early exit, so it vectorises.
    let needs_escape = bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        return out.write_str(s);
    }
    let mut done = 0;
    // Scanning bytes is safe: every byte of a multi-byte UTF-8 sequence is >= 0x80, so
    // the ASCII bytes that need escaping only ever stand for themselves.
    for (at, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.write_str(&s[done..at])?;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.write_str("\\u00")?;
            out.write_char(char::from(HEX[usize::from(b >> 4)]))?;
            out.write_char(char::from(HEX[usize::from(b & 0xf)]))?;
        } else {
            out.write_str(escape)?;
        }
        done = at + 1;
    }
    out.write_str(&s[done..])
}

impl fmt::Display for Condition {
    /// The condition's JSON text, as it stands in the policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_json(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Condition {
    type Err = PresignError;

    /// Parses the JSON text of a condition (see [`Condition::from_json`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: Value = serde_json::from_str(s)
            .map_err(|e| PresignError::InvalidCondition(format!("not JSON: {e}")))?;
        Self::from_json(&value)
    }
}

impl<'de> serde::Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value: Value = match self {
            Self::Exact {
                field,
                value,
                form: ExactForm::Object,
            } => serde_json::json!({ field.as_str(): value }),
            Self::Exact {
                field,
                value,
                form: ExactForm::Eq,
            } => serde_json::json!(["eq", format!("${field}"), value]),
            Self::StartsWith { field, prefix } => {
                serde_json::json!(["starts-with", format!("${field}"), prefix])
            }
            Self::ContentLengthRange { min, max } => {
                serde_json::json!(["content-length-range", min, max])
            }
        };
        value.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, s);
        out
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        assert_eq!(json("plain"), r#""plain""#);
        assert_eq!(json("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(json("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(json("é/😀\u{2028}"), "\"é/😀\u{2028}\"");
    }

    #[test]
    fn every_form_round_trips_through_its_json_text() {
        for text in [
            r#"{"acl":"private"}"#,
            r#"["eq","$acl","private"]"#,
            r#"["starts-with","$key","user/"]"#,
            r#"["starts-with","$Content-Type",""]"#,
            r#"["content-length-range",0,5368709120]"#,
        ] {
            let condition: Condition = text.parse().unwrap();
            assert_eq!(condition.to_string(), text);
            let via_serde: Condition = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&via_serde).unwrap(), text);
        }
    }

    #[test]
    fn malformed_conditions_are_refused() {
        for text in [
            "not json",
            "42",
            r#"{}"#,
            r#"{"a":"1","b":"2"}"#,
            r#"{"acl":1}"#,
            r#"["eq","acl","private"]"#,
            r#"["EQ","$acl","private"]"#,
            r#"["eq","$acl"]"#,
            r#"["eq","$a b","x"]"#,
            r#"["content-length-range",-1,10]"#,
            r#"["content-length-range",1.5,10]"#,
            r#"["content-length-range",10,1]"#,
            r#"["content-length-range",0,5368709121]"#,
        ] {
            assert!(text.parse::<Condition>().is_err(), "{text}");
        }
    }

    #[test]
    fn conditions_check_values() {
        let starts = Condition::starts_with("key", "user/").unwrap();
        assert!(starts.accepts("user/a"));
        assert!(!starts.accepts("other/a"));
        assert!(starts.accepts_some_value_starting_with("user/1/"));
        assert!(starts.accepts_some_value_starting_with("us"));
        assert!(!starts.accepts_some_value_starting_with("other/"));
        let exact = Condition::eq("acl", "private").unwrap();
        assert!(exact.accepts("private"));
        assert!(!exact.accepts("public-read"));
    }
}
