//! What the front doors answer with: JSON no cache may keep, written at once into a
//! buffer sized for a ticket, and the ticket bodies `POST /uploads` and Companion's
//! `/params` share.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;
use crate::upload::ticket::Ticket;
use s3_presigned_post::condition::write_json_escaped;

/// What a ticket's JSON takes, with room to spare (a POST ticket is about 1.3 KiB).
const TICKET_BYTES: usize = 2048;

/// `body` as JSON with `status`, which no cache may keep. Written into a buffer sized
/// for a ticket at once: axum's `Json` starts at 128 bytes and grows (and copies) it
/// several times on the way, a measurable share of a request.
pub(super) fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<Response, ApiError> {
    let mut bytes = Vec::with_capacity(TICKET_BYTES);
    serde_json::to_writer(&mut bytes, body).map_err(ApiError::internal)?;
    Ok(json_text(status, bytes))
}

/// JSON text already written, with `status`, which no cache may keep.
fn json_text(status: StatusCode, bytes: impl Into<axum::body::Body>) -> Response {
    let json = HeaderValue::from_static("application/json");
    let mut response = (status, [(header::CONTENT_TYPE, json)], bytes.into()).into_response();
    // A ticket is a credential for one upload, and the other answers name keys.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON object written straight into one buffer, for the answer every ticket gets:
/// `serde_json` escapes a string byte by byte, and a POST ticket's policy alone is a
/// kilobyte; the presign core's writer checks a string in one vectorised pass first.
struct JsonObject {
    out: String,
    first: bool,
}

impl JsonObject {
    fn new() -> Self {
        let mut out = String::with_capacity(TICKET_BYTES);
        out.push('{');
        Self { out, first: true }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.string_value(name);
        self.out.push(':');
    }

    fn string_value(&mut self, value: &str) {
        self.out.push('"');
        // Writing to a `String` cannot fail.
        let _ = write_json_escaped(&mut self.out, value);
        self.out.push('"');
    }

    fn string(mut self, name: &str, value: &str) -> Self {
        self.key(name);
        self.string_value(value);
        self
    }

    /// `time` as [`rfc3339`] writes it, formatted on the stack.
    fn time(self, name: &str, time: SystemTime) -> Result<Self, ApiError> {
        // The longest RFC 3339 text `time` writes: `9999-12-31T23:59:59.999999999Z`.
        let mut buffer = [0u8; 40];
        let mut cursor = &mut buffer[..];
        let written = time::OffsetDateTime::from(time)
            .format_into(&mut cursor, &time::format_description::well_known::Rfc3339)
            .map_err(ApiError::internal)?;
        let text = std::str::from_utf8(&buffer[..written]).map_err(ApiError::internal)?;
        Ok(self.string(name, text))
    }

    fn number(mut self, name: &str, value: u64) -> Self {
        self.key(name);
        let _ = write!(self.out, "{value}");
        self
    }

    /// `name` as an object of string values, in the order given.
    fn strings<'a>(mut self, name: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        self.key(name);
        let mut inner = JsonObject {
            out: std::mem::take(&mut self.out),
            first: true,
        };
        inner.out.push('{');
        for (key, value) in pairs {
            inner.key(key);
            inner.string_value(value);
        }
        self.out = inner.finish();
        self
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// RFC 3339 in UTC, as the API writes times.
pub(super) fn rfc3339(time: SystemTime) -> Result<String, ApiError> {
    crate::clock::rfc3339(time).map_err(ApiError::internal)
}

/// `ticket` as the API answers it, with `status`, for the tenant's `bucket`: `method`,
/// `url`, `fields` (POST) or `headers` (PUT, by name), `key`, `bucket`, `expires_at`,
/// `min_size`, `max_size`.
pub(super) fn ticket(
    status: StatusCode,
    ticket: &Ticket,
    bucket: &str,
) -> Result<Response, ApiError> {
    let text = match ticket {
        Ticket::Post(ticket) => JsonObject::new()
            .string("method", "POST")
            .string("url", ticket.post.url())
            .strings("fields", ticket.post.fields())
            .string("key", ticket.key.as_str())
            .string("bucket", bucket)
            .time("expires_at", ticket.post.expires_at())?
            .number("min_size", ticket.min_size)
            .number("max_size", ticket.max_size),
        Ticket::Put(ticket) => {
            let signed = &ticket.signed;
            // By name, as the API has always listed them.
            let headers: BTreeMap<&str, &str> = signed
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            JsonObject::new()
                .string("method", signed.method)
                .string("url", &signed.url)
                .strings("headers", headers.into_iter())
                .string("key", ticket.key.as_str())
                .string("bucket", bucket)
                .time("expires_at", signed.expires_at)?
                .number("min_size", ticket.min_size)
                .number("max_size", ticket.max_size)
        }
    };
    Ok(json_text(status, text.finish()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use s3_presigned_post::{
        Addressing, BucketName, Credentials, ObjectKey, PostRequest, PresignedPost, Presigner,
        Region, UrlRequest,
    };

    use super::*;
    use crate::upload::ticket::{PostTicket, PutTicket};

    /// The answers as `serde` wrote them before they were written by hand: the reference.
    #[derive(Serialize)]
    struct PostBody<'a> {
        method: &'static str,
        #[serde(flatten)]
        post: &'a PresignedPost,
        key: &'a str,
        bucket: &'a str,
        expires_at: String,
        min_size: u64,
        max_size: u64,
    }

    #[derive(Serialize)]
    struct PutBody<'a> {
        method: &'static str,
        url: &'a str,
        headers: BTreeMap<&'a str, &'a str>,
        key: &'a str,
        bucket: &'a str,
        expires_at: String,
        min_size: u64,
        max_size: u64,
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Values a JSON writer can get wrong: quotes, backslashes, controls, non-ASCII.
    const NASTY: &str = "a\"b\\c\nd\te\u{1}f\u{7f} é 🦀 </script>";

    #[tokio::test]
    async fn tickets_are_written_as_serde_wrote_them() {
        let presigner =
            Presigner::new(Region::new("eu-west-3").unwrap(), Addressing::aws()).unwrap();
        let credentials =
            Credentials::new("AKIDEXAMPLE", "secret", Some("session".to_owned())).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let bucket = BucketName::new("tickets-bucket").unwrap();
        let key = ObjectKey::new("t/u/0a1b/holiday \"photo\" é.jpg").unwrap();

        let post = PostRequest::new(bucket.clone(), key.clone())
            .field("Content-Type", "image/jpeg")
            .unwrap()
            .field("x-amz-meta-note", NASTY)
            .unwrap();
        let post = PostTicket {
            post: presigner.presign(&credentials, &post, now).unwrap(),
            key: key.clone(),
            min_size: 1,
            max_size: 26_214_400,
        };
        let expected = serde_json::to_string(&PostBody {
            method: "POST",
            post: &post.post,
            key: post.key.as_str(),
            bucket: NASTY,
            expires_at: rfc3339(post.post.expires_at()).unwrap(),
            min_size: post.min_size,
            max_size: post.max_size,
        })
        .unwrap();
        let written = ticket(StatusCode::CREATED, &Ticket::Post(post), NASTY).unwrap();
        assert_eq!(written.status(), StatusCode::CREATED);
        assert_eq!(written.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(text(written).await, expected);

        let put = UrlRequest::put_object(bucket, key.clone())
            .unwrap()
            .header("content-length", "2048")
            .unwrap()
            .header("x-amz-meta-note", "printable \\ \"ascii\"")
            .unwrap()
            .header("content-type", "image/jpeg")
            .unwrap();
        let put = PutTicket {
            signed: presigner.presign_url(&credentials, &put, now).unwrap(),
            key,
            min_size: 2048,
            max_size: 2048,
        };
        let signed = &put.signed;
        let expected = serde_json::to_string(&PutBody {
            method: signed.method,
            url: &signed.url,
            headers: signed
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            key: put.key.as_str(),
            bucket: "tickets-bucket",
            expires_at: rfc3339(signed.expires_at).unwrap(),
            min_size: put.min_size,
            max_size: put.max_size,
        })
        .unwrap();
        let written = ticket(StatusCode::OK, &Ticket::Put(put), "tickets-bucket").unwrap();
        assert_eq!(text(written).await, expected);
    }
}
