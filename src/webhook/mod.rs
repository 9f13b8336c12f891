//! A tenant's webhook, signed per the Standard Webhooks specification: every attempt
//! carries `webhook-id` (stable per event: receivers dedupe on it), `webhook-timestamp`
//! (unix seconds of the attempt: receivers refuse stale ones, so a captured delivery
//! cannot be replayed later) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "<id>.<timestamp>.<body>">`, one signature per secret while a secret is rotated.
//! Any Standard Webhooks verifier library checks them; none of our code is needed.
//!
//! This module signs and makes one attempt; the outbox (`crate::events`) retries.
//! [`received`] keeps what a receiver got (`dev`'s own, for the demo page).

pub mod received;

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::setting::InvalidSetting;

/// The prefix of a Standard Webhooks secret; base64 of the key bytes follows.
pub const SECRET_PREFIX: &str = "whsec_";

/// The fewest key bytes a secret may have (the specification's lower bound).
pub const MIN_SECRET_BYTES: usize = 24;

/// The most key bytes a secret may have (the specification's upper bound).
pub const MAX_SECRET_BYTES: usize = 64;

/// How long one attempt may take, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// One signing key, decoded from its `whsec_` form.
struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// `whsec_<base64>` with 24 to 64 key bytes.
    fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("a secret starts with {SECRET_PREFIX} (Standard Webhooks)"))?;
        let bytes = base64_simd::STANDARD
            .decode_to_vec(encoded)
            .map_err(|_| format!("the part after {SECRET_PREFIX} is not base64"))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(format!(
                "a secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, this one {}",
                bytes.len()
            ));
        }
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// `None` only if HMAC refused the key, which it does for no length.
    fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> Option<String> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).ok()?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        Some(format!(
            "v1,{}",
            base64_simd::STANDARD.encode_to_string(tag)
        ))
    }
}

/// A tenant's webhook endpoint and its secrets (the current one first).
pub struct Webhook {
    url: String,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How one attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// The receiver answered something else.
    Refused(u16),
    /// No answer: refused connection, timeout, TLS failure.
    NoAnswer,
}

impl Webhook {
    /// Checks `url` (https, or http on a loopback host) and `secrets`: one
    /// `whsec_<base64>` secret, or two separated by a space while rotating (the new one
    /// first; both sign until the old one is removed). A refusal names the setting.
    pub fn new(url: &str, secrets: &str) -> Result<Self, InvalidSetting> {
        let refuse = |reason: String| InvalidSetting::new("completion_webhook_url", reason);
        let parsed = url::Url::parse(url).map_err(|_| refuse(format!("{url:?} is not a URL")))?;
        let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if !(parsed.scheme() == "https" || parsed.scheme() == "http" && loopback) {
            return Err(refuse(format!(
                "{url:?}: use https (http only for a loopback host)"
            )));
        }
        let refuse_secret = |reason: String| {
            // The reason never quotes the secret.
            InvalidSetting::new("completion_webhook_secret_env", reason)
        };
        let secrets = secrets
            .split_whitespace()
            .map(Secret::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(refuse_secret)?;
        if !(1..=2).contains(&secrets.len()) {
            return Err(refuse_secret(
                "the variable holds one secret, or two separated by a space while rotating"
                    .to_owned(),
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            secrets,
        })
    }

    /// The endpoint (no secret in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `webhook-signature` value of `body` sent as event `id` at `timestamp`:
    /// `v1,<base64>` per secret, separated by spaces.
    pub fn signature(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let signatures: Vec<String> = self
            .secrets
            .iter()
            .filter_map(|secret| secret.sign(id, timestamp, body))
            .collect();
        signatures.join(" ")
    }

    /// One attempt to deliver `body` (JSON) as event `id`, signed at `timestamp`, in
    /// the trace `traceparent` names, if any.
    pub async fn attempt(
        &self,
        client: &reqwest::Client,
        id: &str,
        timestamp: u64,
        body: &str,
        traceparent: Option<&str>,
    ) -> Attempt {
        let mut request = client.post(&self.url);
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let sent = request
            .timeout(ATTEMPT_TIMEOUT)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                self.signature(id, timestamp, body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Attempt::Delivered(response.status().as_u16())
            }
            Ok(response) => Attempt::Refused(response.status().as_u16()),
            Err(error) => {
                tracing::debug!(url = %self.url, %error, "webhook attempt had no answer");
                Attempt::NoAnswer
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's example: its secret, id, timestamp and
    /// payload, and the signature every reference library computes for them.
    #[test]
    fn signs_as_the_specification_example() {
        let hook = Webhook::new(
            "https://hooks.example.com/x",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            hook.signature(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                body.as_bytes()
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(!format!("{hook:?}").contains("whsec"));
    }

    #[test]
    fn two_secrets_sign_twice_while_rotating() {
        let one = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let two = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let hook = Webhook::new("https://hooks.example.com/x", &format!("{two} {one}")).unwrap();
        let signature = hook.signature("msg_1", 1, b"{}");
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        let old = Webhook::new("https://hooks.example.com/x", one).unwrap();
        assert_eq!(parts[1], old.signature("msg_1", 1, b"{}"));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn urls_and_secrets_are_checked() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert!(Webhook::new("http://hooks.example.com/x", secret).is_err());
        assert!(Webhook::new("http://127.0.0.1:9/x", secret).is_ok());
        assert!(Webhook::new("not a url", secret).is_err());
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not*base64",
            "whsec_AAAA",
            "",
            &format!("{secret} {secret} {secret}"),
        ] {
            let error = Webhook::new("https://hooks.example.com/x", bad).unwrap_err();
            assert!(!error.to_string().contains("MfKQ9r8"), "{error}");
        }
    }
}
