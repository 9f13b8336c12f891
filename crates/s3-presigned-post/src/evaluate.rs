//! The store's side of a POST upload: does a form, as a browser sends it, meet its signed
//! policy? Written from the S3 documentation ("Browser-Based Uploads Using POST", "POST
//! Policy"), pure like the rest of the core: the form, the file's name and size, a way
//! to find a secret key and the clock in; accepted, or the first broken rule in words.
//!
//! Its use is to explain a refusal (stores answer with terse XML) and to let a store
//! that does not check policies check them; a differential test holds its verdicts to
//! those of real strict stores on one corpus of good and broken forms.
//!
//! The rules, in the order they are checked:
//! 1. the signing fields are there: `policy`, `x-amz-algorithm` (`AWS4-HMAC-SHA256`),
//!    `x-amz-credential` (`<key id>/<date>/<region>/s3/aws4_request`), `x-amz-date`,
//!    `x-amz-signature`, and `key`;
//! 2. the signature is the HMAC-SHA256 of the base64 policy text with the key derived for
//!    that date and region;
//! 3. the policy is base64 of a JSON object with an `expiration` not yet passed and a
//!    `conditions` array;
//! 4. every condition holds: `{"field": "value"}` and `["eq", "$field", "value"]` exactly,
//!    `["starts-with", "$field", "prefix"]` (each value of a comma-separated
//!    `Content-Type`), `["content-length-range", min, max]` on the file's size; `bucket`
//!    is the bucket posted to, `key` has `${filename}` replaced by the file's name;
//! 5. every form field is named by a condition, except `policy`, `x-amz-signature`,
//!    `file` and fields starting with `x-ignore-`.
//!
//! Field names compare case-insensitively, values exactly.

use std::time::SystemTime;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ALGORITHM, Region, SigningKey};

/// What a store receives with a POST upload, besides the file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct PostedForm<'a> {
    /// The bucket the form was posted to (from the URL).
    pub bucket: &'a str,
    /// The form fields before the file, in order.
    pub fields: &'a [(String, String)],
    /// The file part's filename, for `${filename}`.
    pub filename: &'a str,
    /// The file's size in bytes.
    pub size: u64,
}

/// Why a store refuses a form: the first rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A field every signed form carries is missing.
    #[error("the form has no {0} field")]
    MissingField(&'static str),
    /// The form names another algorithm, or a credential of the wrong shape.
    #[error("{0}")]
    BadSigningFields(String),
    /// No secret is known for the access key id.
    #[error("the access key id {0:?} is not known")]
    UnknownAccessKey(String),
    /// The signature is not the policy's.
    #[error("the signature does not match the policy and the key")]
    SignatureMismatch,
    /// The policy is not base64 of a JSON policy document.
    #[error("the policy is malformed: {0}")]
    MalformedPolicy(String),
    /// The policy's expiration has passed.
    #[error("the policy expired at {0}")]
    Expired(String),
    /// A condition does not hold, in words.
    #[error("condition {condition} does not hold: {reason}")]
    ConditionFailed {
        /// The condition as the policy states it.
        condition: String,
        /// What the form has instead.
        reason: String,
    },
    /// The file's size is outside the policy's `content-length-range` (stores answer
    /// `EntityTooSmall` / `EntityTooLarge` rather than a failed condition).
    #[error("the file is {size} bytes, outside the policy's content-length-range {min}..={max}")]
    SizeOutOfRange {
        /// The file's size in bytes.
        size: u64,
        /// The smallest size the policy allows.
        min: u64,
        /// The largest size the policy allows.
        max: u64,
    },
    /// A form field no condition names.
    #[error("the form field {0:?} is not named by any condition of the policy")]
    UnlistedField(String),
}

/// Checks `form` against its policy as of `now`; `secret_for` answers the secret access
/// key of an access key id (`None`: unknown).
pub fn evaluate(
    form: &PostedForm<'_>,
    secret_for: impl Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<(), Refusal> {
    let field = |name: &'static str| {
        form.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .ok_or(Refusal::MissingField(name))
    };
    let policy = field("policy")?;
    let algorithm = field("x-amz-algorithm")?;
    let credential = field("x-amz-credential")?;
    field("x-amz-date")?;
    let signature = field("x-amz-signature")?;
    field("key")?;

    if algorithm != ALGORITHM {
        return Err(Refusal::BadSigningFields(format!(
            "x-amz-algorithm is {algorithm:?}, not {ALGORITHM}"
        )));
    }
    let (key_id, date, region) = credential_scope(credential)?;
    let secret = secret_for(key_id).ok_or_else(|| Refusal::UnknownAccessKey(key_id.to_owned()))?;
    let expected = SigningKey::derive(&secret, date, &region).sign(policy.as_bytes());
    if !expected.eq_ignore_ascii_case(signature) {
        return Err(Refusal::SignatureMismatch);
    }

    let document = decode_policy(policy)?;
    let expiration = document["expiration"]
        .as_str()
        .ok_or_else(|| Refusal::MalformedPolicy("no expiration".to_owned()))?;
    let expires = OffsetDateTime::parse(expiration, &Rfc3339)
        .map_err(|e| Refusal::MalformedPolicy(format!("expiration {expiration:?}: {e}")))?;
    if OffsetDateTime::from(now) >= expires {
        return Err(Refusal::Expired(expiration.to_owned()));
    }
    let conditions = document["conditions"]
        .as_array()
        .ok_or_else(|| Refusal::MalformedPolicy("no conditions array".to_owned()))?;

    let mut named: Vec<String> = Vec::with_capacity(conditions.len());
    for condition in conditions {
        if let Some(name) = check_condition(condition, form)? {
            named.push(name);
        }
    }
    let exempt = |name: &str| {
        ["policy", "x-amz-signature", "file"]
            .iter()
            .any(|e| name.eq_ignore_ascii_case(e))
            || name.to_ascii_lowercase().starts_with("x-ignore-")
    };
    if let Some((name, _)) = form
        .fields
        .iter()
        .find(|(name, _)| !exempt(name) && !named.iter().any(|n| n.eq_ignore_ascii_case(name)))
    {
        return Err(Refusal::UnlistedField(name.clone()));
    }
    Ok(())
}

/// `<key id>/<yyyymmdd>/<region>/s3/aws4_request`: the key id, the date and the region.
fn credential_scope(credential: &str) -> Result<(&str, SystemTime, Region), Refusal> {
    let bad = || {
        Refusal::BadSigningFields(format!(
            "x-amz-credential {credential:?} is not key/date/region/s3/aws4_request"
        ))
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, "s3", "aws4_request"] = parts.as_slice() else {
        return Err(bad());
    };
    let digits = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    let day = digits
        .then(|| {
            let number = |range: std::ops::Range<usize>| date[range].parse::<u16>().ok();
            let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
            let day = u8::try_from(number(6..8)?).ok()?;
            time::Date::from_calendar_date(i32::from(number(0..4)?), month, day).ok()
        })
        .flatten()
        .ok_or_else(bad)?;
    let region = Region::new(*region).map_err(|_| bad())?;
    let midnight = day.midnight().assume_utc();
    Ok((key_id, midnight.into(), region))
}

fn decode_policy(policy: &str) -> Result<Value, Refusal> {
    let json = base64_simd::STANDARD
        .decode_to_vec(policy)
        .map_err(|_| Refusal::MalformedPolicy("not base64".to_owned()))?;
    let document: Value = serde_json::from_slice(&json)
        .map_err(|e| Refusal::MalformedPolicy(format!("not JSON: {e}")))?;
    if !document.is_object() {
        return Err(Refusal::MalformedPolicy("not a JSON object".to_owned()));
    }
    Ok(document)
}

/// Checks one condition; answers the field it names, if any.
fn check_condition(condition: &Value, form: &PostedForm<'_>) -> Result<Option<String>, Refusal> {
    let failed = |reason: String| Refusal::ConditionFailed {
        condition: condition.to_string(),
        reason,
    };
    let malformed =
        || Refusal::MalformedPolicy(format!("condition {condition} is not one S3 knows"));
    let (op, name, expected) = match condition {
        Value::Object(map) if map.len() == 1 => {
            let (name, value) = map.iter().next().ok_or_else(malformed)?;
            ("eq", name.as_str(), value.as_str().ok_or_else(malformed)?)
        }
        Value::Array(items) => match items.as_slice() {
            [Value::String(op), min, max] if op.eq_ignore_ascii_case("content-length-range") => {
                let (min, max) = (
                    min.as_u64().ok_or_else(malformed)?,
                    max.as_u64().ok_or_else(malformed)?,
                );
                if !(min..=max).contains(&form.size) {
                    return Err(Refusal::SizeOutOfRange {
                        size: form.size,
                        min,
                        max,
                    });
                }
                return Ok(None);
            }
            [
                Value::String(op),
                Value::String(field),
                Value::String(value),
            ] => {
                let name = field.strip_prefix('$').ok_or_else(malformed)?;
                let op = if op.eq_ignore_ascii_case("eq") {
                    "eq"
                } else if op.eq_ignore_ascii_case("starts-with") {
                    "starts-with"
                } else {
                    return Err(malformed());
                };
                (op, name, value.as_str())
            }
            _ => return Err(malformed()),
        },
        _ => return Err(malformed()),
    };
    let given = form_value(form, name);
    let holds = match (op, given.as_deref()) {
        (_, None) => false,
        ("eq", Some(value)) => value == expected,
        (_, Some(value)) if name.eq_ignore_ascii_case("content-type") => value
            .split(',')
            .all(|one| one.trim_start().starts_with(expected)),
        (_, Some(value)) => value.starts_with(expected),
    };
    if !holds {
        return Err(failed(match given {
            None => format!("the form has no {name:?}"),
            Some(value) => format!("{name:?} is {value:?}"),
        }));
    }
    Ok(Some(name.to_owned()))
}

/// The value a condition on `name` sees: the bucket posted to, the key with
/// `${filename}` replaced, or the form field.
fn form_value(form: &PostedForm<'_>, name: &str) -> Option<String> {
    if name.eq_ignore_ascii_case("bucket") {
        return Some(form.bucket.to_owned());
    }
    let value = form
        .fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())?;
    if name.eq_ignore_ascii_case("key") {
        return Some(value.replace(super::names::FILENAME_PLACEHOLDER, form.filename));
    }
    Some(value.to_owned())
}

#[cfg(test)]
mod tests;
