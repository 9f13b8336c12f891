//! Parsed names: bucket, object key and form field name.
//!
//! Each is checked once, at the edge, so the rest of the core can rely on it.

use std::fmt;
use std::sync::Arc;

use super::PresignError;

/// The placeholder S3 replaces with the uploaded file's name.
pub const FILENAME_PLACEHOLDER: &str = "${filename}";

/// Longest object key S3 accepts, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A bucket name that S3 (in any region, legacy names included) could hold.
///
/// Accepted: 3 to 255 characters of ASCII letters, digits, `.`, `-` and `_`: that is
/// every name S3 ever allowed, since buckets made in us-east-1 before 2018 may have
/// upper case, underscores and up to 255 characters. Such names are not DNS compatible
/// and are then addressed path-style, as the seed does. Refused, stricter than the seed:
/// anything else (the seed would percent-encode it into a URL no store serves), and
/// S3 Express directory buckets (`--x-s3`), which do not take POST uploads.
///
/// Serialized as its string; deserializing checks it again, so a name read back (from a
/// signed handle, say) is as good as one made here.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(Arc<str>);

impl BucketName {
    /// Checks `name` against the rules above.
    pub fn new(name: impl Into<String>) -> Result<Self, PresignError> {
        let name = name.into();
        let reason = if name.len() < 3 {
            Some("shorter than 3 characters")
        } else if name.len() > 255 {
            Some("longer than 255 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            Some("only ASCII letters, digits, '.', '-' and '_' are allowed")
        } else if name.ends_with("--x-s3") {
            Some("directory buckets (--x-s3) do not support POST uploads")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(PresignError::InvalidBucket { name, reason }),
            // Shared: every ticket's request names its bucket, and copies nothing.
            None => Ok(Self(name.into())),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name can be the first label(s) of a host name, by the rule of the
    /// AWS endpoint rule set (`aws.isVirtualHostableS3Bucket`): one label of 3 to 63
    /// lower-case letters, digits and inner hyphens that is not an IPv4 address; with
    /// `allow_dots`, every dot-separated label must be such a label.
    pub(crate) fn is_virtual_hostable(&self, allow_dots: bool) -> bool {
        if allow_dots {
            self.0.split('.').all(is_virtual_hostable_label)
        } else {
            is_virtual_hostable_label(&self.0)
        }
    }
}

fn is_virtual_hostable_label(label: &str) -> bool {
    // An IPv4 address cannot be a single label, so the rule set's IP check only matters
    // for dotted names, which `split` has already broken up.
    (3..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

impl fmt::Debug for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object key, possibly ending with `${filename}`.
///
/// Accepted: 1 to 1024 UTF-8 bytes without control characters (S3 lists keys in XML 1.0,
/// which cannot carry most of them). `${filename}` may only end the key: S3 replaces it
/// with the uploaded file's name, and the policy then pins the part before it with a
/// `starts-with` condition. Stricter than the seed, which pins a key with a
/// `${filename}` elsewhere by an exact condition that no upload can meet.
///
/// Serialized as its string; deserializing checks it again.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Checks `key` against the rules above.
    pub fn new(key: impl Into<String>) -> Result<Self, PresignError> {
        let key = key.into();
        let reason = if key.is_empty() {
            Some("empty")
        } else if key.len() > MAX_KEY_BYTES {
            Some("longer than 1024 bytes")
        } else if key.chars().any(char::is_control) {
            Some("control characters are not allowed")
        } else if key
            .find(FILENAME_PLACEHOLDER)
            .is_some_and(|at| at + FILENAME_PLACEHOLDER.len() != key.len())
        {
            Some("${filename} may only stand at the end")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(PresignError::InvalidKey { reason }),
            None => Ok(Self(key)),
        }
    }

    /// The key as given (with `${filename}` if it has one).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `${filename}`, when the key ends with it.
    pub fn filename_prefix(&self) -> Option<&str> {
        self.0.strip_suffix(FILENAME_PLACEHOLDER)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The string forms of [`BucketName`] and [`ObjectKey`]: checked on the way in, free on
/// the way out.
macro_rules! string_forms {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = PresignError;

            fn try_from(value: String) -> Result<Self, PresignError> {
                Self::new(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_ref() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_ref() == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_ref() == other
            }
        }
    };
}

string_forms!(BucketName);
string_forms!(ObjectKey);

impl From<BucketName> for String {
    fn from(value: BucketName) -> String {
        value.0.as_ref().to_owned()
    }
}

impl From<ObjectKey> for String {
    fn from(value: ObjectKey) -> String {
        value.0
    }
}

/// The name of a POST form field, as used in fields and in conditions (without `$`).
///
/// Accepted: 1 to 256 HTTP token characters (RFC 9110 `tchar`), which covers every field
/// S3 defines, `x-amz-meta-*` included. Refused: all-digit names, which S3 does not
/// define and which JavaScript objects would silently reorder.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FieldName(String);

impl FieldName {
    /// Checks `name` against the rules above.
    pub fn new(name: impl Into<String>) -> Result<Self, PresignError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("empty")
        } else if name.len() > 256 {
            Some("longer than 256 characters")
        } else if !name.bytes().all(is_tchar) {
            Some("only HTTP token characters are allowed")
        } else if name.bytes().all(|b| b.is_ascii_digit()) {
            Some("all-digit names are not form fields")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(PresignError::InvalidFieldName { name, reason }),
            None => Ok(Self(name)),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether S3 would take both names for the same field (names are case-insensitive).
    pub fn is(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl fmt::Debug for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_legacy_s3_rules() {
        for ok in [
            "abc",
            "my.bucket",
            "Legacy_Bucket",
            "a--b",
            "xn--abc",
            &"a".repeat(255),
        ] {
            assert!(BucketName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "a b",
            "a/b",
            "é-bucket",
            "arn:aws:s3:::x",
            "dir--x-s3",
            &"a".repeat(256),
        ] {
            assert!(BucketName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn virtual_hostable_names_are_lower_case_dns_labels() {
        let hostable = |name: &str, dots| BucketName::new(name).unwrap().is_virtual_hostable(dots);
        assert!(hostable("abc", false));
        assert!(hostable("a--b", false));
        assert!(!hostable("Abc", false));
        assert!(!hostable("a_b", false));
        assert!(!hostable("-ab", false));
        assert!(!hostable("ab-", false));
        assert!(!hostable(&"a".repeat(64), false));
        assert!(!hostable("abc.def", false));
        assert!(hostable("abc.def", true));
        assert!(!hostable("abc.de", true));
        assert!(!hostable("abc..def", true));
        assert!(!hostable("192.168.1.1", true));
    }

    #[test]
    fn keys_are_bounded_and_placeholder_only_at_the_end() {
        assert!(ObjectKey::new("a/b.jpg").is_ok());
        assert!(ObjectKey::new("ünï/ 😀").is_ok());
        assert_eq!(
            ObjectKey::new("u/${filename}").unwrap().filename_prefix(),
            Some("u/")
        );
        assert_eq!(ObjectKey::new("u/x").unwrap().filename_prefix(), None);
        assert!(ObjectKey::new("").is_err());
        assert!(ObjectKey::new("a\u{0}b").is_err());
        assert!(ObjectKey::new("a\nb").is_err());
        assert!(ObjectKey::new("${filename}/x").is_err());
        assert!(ObjectKey::new("k".repeat(1024)).is_ok());
        assert!(ObjectKey::new("k".repeat(1025)).is_err());
        // 1024 bytes, not characters.
        assert!(ObjectKey::new("é".repeat(513)).is_err());
    }

    #[test]
    fn field_names_are_tokens_and_compare_case_insensitively() {
        for ok in [
            "acl",
            "Content-Type",
            "x-amz-meta-album",
            "success_action_status",
        ] {
            assert!(FieldName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a:b", "123", "é", &"a".repeat(257)] {
            assert!(FieldName::new(bad).is_err(), "{bad}");
        }
        assert!(FieldName::new("Content-Type").unwrap().is("content-type"));
    }

    #[test]
    fn names_travel_as_strings_and_are_checked_again_when_read() {
        let key = ObjectKey::new("u/42/a.png").unwrap();
        assert_eq!(serde_json::to_string(&key).unwrap(), r#""u/42/a.png""#);
        let back: ObjectKey = serde_json::from_str(r#""u/42/a.png""#).unwrap();
        assert_eq!(back, key);
        assert!(serde_json::from_str::<ObjectKey>(r#""a${filename}b""#).is_err());
        assert!(serde_json::from_str::<ObjectKey>(r#""""#).is_err());

        let bucket: BucketName = serde_json::from_str(r#""acme-uploads""#).unwrap();
        assert_eq!(String::from(bucket.clone()), "acme-uploads");
        assert!(bucket == *"acme-uploads");
        assert!(serde_json::from_str::<BucketName>(r#""a b""#).is_err());
        assert!(serde_json::from_str::<BucketName>(r#""x--x-s3""#).is_err());
    }
}
