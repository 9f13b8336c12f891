//! SigV4 for POST: dates, credential scope, signing keys and their cache.
//!
//! A POST policy is signed like any SigV4 string-to-sign, but the string to sign is simply
//! the base64 policy. Key derivation and the HMAC are `aws-sigv4`'s own public functions;
//! this module adds the spec's artefacts as types and a cache, so that issuing a ticket
//! costs one HMAC instead of five.

use std::fmt;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{Credentials, PresignError, Region};

/// The algorithm named in `X-Amz-Algorithm`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The service every POST ticket is scoped to.
pub const SERVICE: &str = "s3";

/// A UTC time truncated to whole seconds, in the years 1970 to 9999 that the
/// four-digit formats of SigV4 and POST policies can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcSecond(OffsetDateTime);

impl UtcSecond {
    /// Truncates `time` to the second, as the seed does (it drops milliseconds).
    pub fn from_system_time(time: SystemTime) -> Result<Self, PresignError> {
        let secs = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| PresignError::InvalidTime)?
            .as_secs();
        let secs = i64::try_from(secs).map_err(|_| PresignError::InvalidTime)?;
        let moment =
            OffsetDateTime::from_unix_timestamp(secs).map_err(|_| PresignError::InvalidTime)?;
        if moment.year() > 9999 {
            return Err(PresignError::InvalidTime);
        }
        Ok(Self(moment))
    }

    /// The same second as a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        SystemTime::from(self.0)
    }

    /// `YYYYMMDDTHHMMSSZ`, the form of `X-Amz-Date`.
    pub fn amz_date(self) -> String {
        (*self.amz_date_text()).to_owned()
    }

    /// [`UtcSecond::amz_date`] on the stack, for the signers (one allocation less per
    /// ticket).
    pub(crate) fn amz_date_text(self) -> AmzDate {
        let t = self.0;
        let mut text = *b"00000000T000000Z";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for i in (at..at + width).rev() {
                text[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        // The constructor keeps the year in 1970..=9999.
        put(0, 4, t.year().unsigned_abs());
        put(4, 2, u32::from(u8::from(t.month())));
        put(6, 2, u32::from(t.day()));
        put(9, 2, u32::from(t.hour()));
        put(11, 2, u32::from(t.minute()));
        put(13, 2, u32::from(t.second()));
        AmzDate(text)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, the form of a policy's `expiration` (ISO 8601 without
    /// fractional seconds, as the seed writes it).
    pub fn iso8601(self) -> String {
        let mut out = String::with_capacity(20);
        self.write_iso8601(&mut out);
        out
    }

    pub(crate) fn write_iso8601(self, out: &mut String) {
        self.write(out, "-", ":");
    }

    /// Hand-written rather than `write!`: on the hot path, and formatting machinery
    /// cost more than the rest of the date handling together.
    fn write(self, out: &mut String, date_separator: &str, time_separator: &str) {
        let t = self.0;
        // The constructor keeps the year in 1970..=9999.
        push_digits(out, t.year().unsigned_abs(), 4);
        out.push_str(date_separator);
        push_digits(out, u32::from(u8::from(t.month())), 2);
        out.push_str(date_separator);
        push_digits(out, u32::from(t.day()), 2);
        out.push('T');
        push_digits(out, u32::from(t.hour()), 2);
        out.push_str(time_separator);
        push_digits(out, u32::from(t.minute()), 2);
        out.push_str(time_separator);
        push_digits(out, u32::from(t.second()), 2);
        out.push('Z');
    }
}

/// `YYYYMMDDTHHMMSSZ` (ASCII digits, `T` and `Z` only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AmzDate([u8; 16]);

impl std::ops::Deref for AmzDate {
    type Target = str;

    fn deref(&self) -> &str {
        // Only ASCII was written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Appends the last `width` decimal digits of `value`, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        let digit = (value / divisor % 10) as u8;
        out.push(char::from(b'0' + digit));
        divisor /= 10;
    }
}

/// `<date>/<region>/s3/aws4_request`: what a signature is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialScope<'a> {
    date_stamp: &'a str,
    region: &'a Region,
}

impl<'a> CredentialScope<'a> {
    /// The scope of the day `date_stamp` (`YYYYMMDD`) in `region`.
    pub fn new(date_stamp: &'a str, region: &'a Region) -> Self {
        Self { date_stamp, region }
    }
}

impl fmt::Display for CredentialScope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{SERVICE}/aws4_request",
            self.date_stamp, self.region
        )
    }
}

/// A derived SigV4 signing key: valid for one secret, one UTC day, one region, S3.
///
/// It is as good as the secret for that day, so it is wiped on drop and never printed.
#[derive(Clone)]
pub struct SigningKey(Zeroizing<[u8; 32]>);

impl SigningKey {
    /// Derives the key for the UTC day of `time` (HMAC chain of date, region, service).
    pub fn derive(secret_access_key: &str, time: SystemTime, region: &Region) -> Self {
        let derived = aws_sigv4::sign::v4::generate_signing_key(
            secret_access_key,
            time,
            region.as_str(),
            SERVICE,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(derived.as_ref());
        Self(key)
    }

    /// Lower-case hex HMAC-SHA256 of `string_to_sign`: for POST, the base64 policy.
    pub fn sign(&self, string_to_sign: &[u8]) -> String {
        aws_sigv4::sign::v4::calculate_signature(self.0.as_slice(), string_to_sign)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(** redacted **)")
    }
}

/// How many derived keys a cache keeps. A presigner sees one region and usually one or
/// two live credentials (the old and the new around a rotation), so a few cover a day's
/// boundary and a rotation at once.
const CACHED_KEYS: usize = 8;

/// Derived signing keys by (access key id, secret, UTC day, region).
///
/// Keys are derived on the first ticket of a day and reused after, so the hot path costs
/// one HMAC over the policy. The secret is part of the identity (compared, never hashed
/// into a weaker fingerprint) so a rotated secret behind the same id is never signed
/// with a stale key.
#[derive(Default)]
pub struct SigningKeyCache {
    entries: RwLock<Vec<CachedKey>>,
}

struct CachedKey {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    date_stamp: String,
    region: Region,
    key: SigningKey,
}

impl CachedKey {
    fn matches(&self, credentials: &Credentials, date_stamp: &str, region: &Region) -> bool {
        self.date_stamp == date_stamp
            && self.access_key_id == credentials.access_key_id()
            && &self.region == region
            && self.secret_access_key.as_str() == credentials.secret_access_key()
    }
}

impl SigningKeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Signs `string_to_sign` with the key of `credentials` for the UTC day `date_stamp`
    /// (`YYYYMMDD`, the day of `time`) in `region`, deriving and caching it if needed.
    pub fn sign(
        &self,
        credentials: &Credentials,
        time: SystemTime,
        date_stamp: &str,
        region: &Region,
        string_to_sign: &[u8],
    ) -> String {
        {
            // A poisoned lock only means another thread panicked mid-update of a cache;
            // every entry is still a correct key, so keep using it.
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = entries
                .iter()
                .find(|e| e.matches(credentials, date_stamp, region))
            {
                return hit.key.sign(string_to_sign);
            }
        }
        let key = SigningKey::derive(credentials.secret_access_key(), time, region);
        let signature = key.sign(string_to_sign);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if !entries
            .iter()
            .any(|e| e.matches(credentials, date_stamp, region))
        {
            if entries.len() == CACHED_KEYS {
                entries.remove(0);
            }
            entries.push(CachedKey {
                access_key_id: credentials.access_key_id().to_owned(),
                secret_access_key: Zeroizing::new(credentials.secret_access_key().to_owned()),
                date_stamp: date_stamp.to_owned(),
                region: region.clone(),
                key,
            });
        }
        signature
    }

    /// How many keys are cached (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn times_format_like_sigv4_and_the_seed() {
        // 2015-12-29T00:00:00Z plus 1.5 s: the fraction is dropped.
        let t =
            UtcSecond::from_system_time(at(1_451_347_200) + Duration::from_millis(1500)).unwrap();
        assert_eq!(t.amz_date(), "20151229T000001Z");
        assert_eq!(t.iso8601(), "2015-12-29T00:00:01Z");
        assert_eq!(t.to_system_time(), at(1_451_347_201));
    }

    #[test]
    fn times_outside_four_digit_years_are_refused() {
        assert!(UtcSecond::from_system_time(UNIX_EPOCH - Duration::from_secs(1)).is_err());
        assert!(UtcSecond::from_system_time(at(253_402_300_799)).is_ok()); // 9999-12-31T23:59:59Z
        assert!(UtcSecond::from_system_time(at(253_402_300_800)).is_err());
    }

    #[test]
    fn credential_scope_is_date_region_service_terminator() {
        let region = Region::new("eu-west-3").unwrap();
        assert_eq!(
            CredentialScope::new("20261125", &region).to_string(),
            "20261125/eu-west-3/s3/aws4_request"
        );
    }

    #[test]
    fn signing_keys_never_print() {
        let region = Region::new("us-east-1").unwrap();
        let key = SigningKey::derive("secret", at(0), &region);
        assert_eq!(format!("{key:?}"), "SigningKey(** redacted **)");
    }

    #[test]
    fn the_cache_reuses_keys_and_keys_them_by_secret_day_and_region() {
        let cache = SigningKeyCache::new();
        let east = Region::new("us-east-1").unwrap();
        let west = Region::new("us-west-2").unwrap();
        let a = Credentials::new("AKID", "secret-a", None).unwrap();
        let rotated = Credentials::new("AKID", "secret-b", None).unwrap();
        let day1 = at(1_451_347_200);
        let day2 = at(1_451_347_200 + 86_400);

        let direct = SigningKey::derive("secret-a", day1, &east).sign(b"policy");
        assert_eq!(cache.sign(&a, day1, "20151229", &east, b"policy"), direct);
        assert_eq!(cache.sign(&a, day1, "20151229", &east, b"policy"), direct);
        assert_eq!(cache.len(), 1);

        let other_secret = cache.sign(&rotated, day1, "20151229", &east, b"policy");
        assert_eq!(
            other_secret,
            SigningKey::derive("secret-b", day1, &east).sign(b"policy")
        );
        assert_ne!(other_secret, direct);
        cache.sign(&a, day2, "20151230", &east, b"policy");
        cache.sign(&a, day1, "20151229", &west, b"policy");
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = SigningKeyCache::new();
        let region = Region::new("us-east-1").unwrap();
        for i in 0..(CACHED_KEYS * 3) {
            let credentials = Credentials::new(format!("AKID{i}"), "secret", None).unwrap();
            cache.sign(&credentials, at(0), "19700101", &region, b"x");
        }
        assert_eq!(cache.len(), CACHED_KEYS);
    }
}
