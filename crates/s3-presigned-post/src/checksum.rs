//! Declared checksums: what the client says the file's digest is, for the store to verify.
//!
//! S3 checks a client-declared checksum on every way in: the form fields
//! `x-amz-checksum-algorithm` and `x-amz-checksum-<algorithm>` of a POST upload, the
//! signed `x-amz-checksum-<algorithm>` header of a PUT, and per part (and for the CRCs
//! the whole object at completion) of a multipart upload. A ticket that pins the value
//! makes the store refuse any other bytes, so what lands is what the user chose.
//!
//! The core checks only the form (a known algorithm, canonical base64 of the right
//! length); it never sees the file.

use std::fmt;

use arrayvec::ArrayString;

use super::PresignError;

/// The algorithms S3 verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (ISO HDLC, as zlib computes it), 4 bytes.
    Crc32,
    /// CRC-32C (Castagnoli), 4 bytes.
    Crc32c,
    /// CRC-64/NVME, 8 bytes: S3's default for new objects.
    Crc64Nvme,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm, in S3's documentation order.
    pub const ALL: [Self; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The algorithm S3 names `name` (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`;
    /// case-insensitive, as S3 compares them).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name().eq_ignore_ascii_case(name))
    }

    /// S3's name: the value of `x-amz-checksum-algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The form field and header that carry the value (lower case; S3 compares field
    /// and header names case-insensitively).
    pub fn field(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// Whether a multipart upload can carry a checksum of the whole object (S3's
    /// `FULL_OBJECT` type, the CRCs only). The others are `COMPOSITE`: the store
    /// verifies each part, and the object's checksum is a checksum of the parts'.
    pub fn has_full_object_multipart(self) -> bool {
        matches!(self, Self::Crc32 | Self::Crc32c | Self::Crc64Nvme)
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for ChecksumAlgorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for ChecksumAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "{name:?} is not a checksum algorithm ({})",
                names()
            ))
        })
    }
}

/// `CRC32, CRC32C, CRC64NVME, SHA1, SHA256`: for messages.
pub fn names() -> String {
    ChecksumAlgorithm::ALL
        .map(ChecksumAlgorithm::name)
        .join(", ")
}

/// Longest value: the base64 of a SHA-256.
const MAX_VALUE_LEN: usize = 44;

/// A declared checksum: an algorithm and the base64 of the digest, checked for form.
///
/// The value is kept inline (at most 44 ASCII characters): a ticket that declares one
/// pays no allocation for it, nor a UTF-8 check each time it is read.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum {
    algorithm: ChecksumAlgorithm,
    value: ArrayString<MAX_VALUE_LEN>,
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checksum")
            .field("algorithm", &self.algorithm)
            .field("value", &self.value())
            .finish()
    }
}

impl Checksum {
    /// `value` as a checksum of `algorithm`: standard base64 with padding, in its one
    /// canonical spelling (S3 compares the text), of exactly the digest's length.
    pub fn new(algorithm: ChecksumAlgorithm, value: &str) -> Result<Self, PresignError> {
        let invalid = |reason| PresignError::InvalidChecksum { algorithm, reason };
        // Checked without decoding: the length and padding a digest of this size has,
        // the alphabet, and zero unused bits in the last character (what makes the
        // spelling canonical). Cheap enough to leave a ticket's cost alone.
        let digest = algorithm.digest_len();
        let padding = (3 - digest % 3) % 3;
        if value.len() != digest.div_ceil(3) * 4 {
            return Err(invalid(match digest {
                4 => "a CRC-32 is 4 bytes (8 base64 characters)",
                8 => "a CRC-64 is 8 bytes (12 base64 characters)",
                20 => "a SHA-1 is 20 bytes (28 base64 characters)",
                _ => "a SHA-256 is 32 bytes (44 base64 characters)",
            }));
        }
        let (data, pad) = value.as_bytes().split_at(value.len() - padding);
        // No early exit, so that the test vectorises.
        let alphabet = data.iter().fold(true, |all, &b| {
            all & (b.is_ascii_alphanumeric() | (b == b'+') | (b == b'/'))
        });
        if !alphabet || pad.iter().any(|&b| b != b'=') {
            return Err(invalid("not base64 (standard alphabet, with padding)"));
        }
        let sextet = |b: u8| match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let unused_bits = [0u8, 0b11, 0b1111][padding];
        let last = data.last().map_or(0, |&b| sextet(b));
        if last & unused_bits != 0 {
            return Err(invalid(
                "not in canonical base64 (unused bits must be zero)",
            ));
        }
        Self::inline(algorithm, value)
    }

    /// The checksum of `digest`, the raw bytes a hash or CRC produced (big-endian for
    /// the CRCs, as S3 writes them).
    pub fn from_digest(algorithm: ChecksumAlgorithm, digest: &[u8]) -> Result<Self, PresignError> {
        if digest.len() != algorithm.digest_len() {
            return Err(PresignError::InvalidChecksum {
                algorithm,
                reason: "the digest has the wrong length",
            });
        }
        let mut encoded = [0u8; MAX_VALUE_LEN];
        let encoded =
            base64_simd::STANDARD.encode(digest, base64_simd::Out::from_slice(&mut encoded));
        Self::inline(algorithm, std::str::from_utf8(encoded).unwrap_or_default())
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// The base64 value, as the field or header carries it.
    pub fn value(&self) -> &str {
        self.value.as_str()
    }

    /// `value`, already checked to be base64 of `algorithm`'s digest (so it fits).
    fn inline(algorithm: ChecksumAlgorithm, value: &str) -> Result<Self, PresignError> {
        let value = ArrayString::from(value).map_err(|_| PresignError::InvalidChecksum {
            algorithm,
            reason: "longer than any digest's base64",
        })?;
        Ok(Self { algorithm, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_and_nothing_else_does() {
        for algorithm in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::parse(algorithm.name()), Some(algorithm));
            let lower = algorithm.name().to_ascii_lowercase();
            assert_eq!(ChecksumAlgorithm::parse(&lower), Some(algorithm));
            assert_eq!(algorithm.field(), format!("x-amz-checksum-{lower}"));
        }
        for bad in ["", "MD5", "SHA-256", "crc64", "SHA256 ", "CRC32CC"] {
            assert_eq!(ChecksumAlgorithm::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn values_must_be_canonical_base64_of_the_digest_length() {
        // SHA-256 of the empty string, as S3 writes it.
        let empty = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        assert_eq!(
            Checksum::new(ChecksumAlgorithm::Sha256, empty)
                .unwrap()
                .value(),
            empty
        );
        assert!(Checksum::new(ChecksumAlgorithm::Crc32, "AAAAAA==").is_ok());
        assert!(Checksum::new(ChecksumAlgorithm::Crc64Nvme, "AAAAAAAAAAA=").is_ok());
        let bad = [
            (ChecksumAlgorithm::Sha256, ""),
            (ChecksumAlgorithm::Sha256, "AAAAAA=="),
            (ChecksumAlgorithm::Crc32, "AAAAAA"),
            (ChecksumAlgorithm::Crc32, "AAAAAB=="),
            (ChecksumAlgorithm::Crc32, "AAAA AA="),
            (ChecksumAlgorithm::Crc32, "AAAAAA==\n"),
            (ChecksumAlgorithm::Crc32, "_-AAAA=="),
            (ChecksumAlgorithm::Sha1, &"A".repeat(100)),
        ];
        for (algorithm, value) in bad {
            assert!(
                matches!(
                    Checksum::new(algorithm, value),
                    Err(PresignError::InvalidChecksum { .. })
                ),
                "{algorithm} {value:?}"
            );
        }
    }

    #[test]
    fn digests_encode_to_the_value_s3_writes() {
        let crc = Checksum::from_digest(ChecksumAlgorithm::Crc32, &[0x16, 0xd9, 0xa9, 0x02]);
        assert_eq!(crc.unwrap().value(), "FtmpAg==");
        assert!(Checksum::from_digest(ChecksumAlgorithm::Sha1, &[0; 4]).is_err());
    }
}
