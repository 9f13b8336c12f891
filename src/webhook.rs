//! Completion webhooks: the completion report POSTed to a tenant's endpoint, signed so
//! the receiver can tell it came from us and is fresh.
//!
//! Headers: `Upload-Tickets-Timestamp: <unix seconds>` and
//! `Upload-Tickets-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! The timestamp is inside the MAC so a captured delivery cannot be replayed later
//! (receivers refuse old timestamps).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use serde::Serialize;

use crate::auth::Caller;
use crate::setting::InvalidSetting;

/// The shortest acceptable webhook secret.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 32;

/// A tenant's webhook endpoint and secret.
pub struct Webhook {
    url: String,
    secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How a delivery went, as reported to the caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Whether the endpoint answered 2xx.
    pub delivered: bool,
    /// Its HTTP status, if it answered at all.
    pub status: Option<u16>,
}

impl Webhook {
    /// Checks `url` (https, or http on a loopback host) and the secret's length; a
    /// refusal names the tenant setting at fault.
    pub fn new(url: &str, secret: &[u8]) -> Result<Self, InvalidSetting> {
        let refuse = |reason: String| InvalidSetting::new("completion_webhook_url", reason);
        let parsed = url::Url::parse(url).map_err(|_| refuse(format!("{url:?} is not a URL")))?;
        let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if !(parsed.scheme() == "https" || parsed.scheme() == "http" && loopback) {
            return Err(refuse(format!(
                "{url:?}: use https (http only for a loopback host)"
            )));
        }
        if secret.len() < MIN_WEBHOOK_SECRET_BYTES {
            return Err(InvalidSetting::new(
                "completion_webhook_secret_env",
                format!("the secret is shorter than {MIN_WEBHOOK_SECRET_BYTES} bytes"),
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            secret: Zeroizing::new(secret.to_vec()),
        })
    }

    /// `v1=<hex>` for `body` sent at `timestamp` (`None` only if HMAC refused the key,
    /// which it does for no length).
    pub fn signature(&self, timestamp: u64, body: &[u8]) -> Option<String> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret).ok()?;
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Some(format!("v1={}", hex::encode(mac.finalize().into_bytes())))
    }

    /// Tells the endpoint that `caller` checked an upload and what the check found
    /// (`report`, flattened into `{"event": "upload.checked", "tenant", "subject", …}`),
    /// and counts the delivery. `client` is `None` when none could be made at start-up.
    pub async fn report(
        &self,
        client: Option<&reqwest::Client>,
        caller: &Caller,
        report: &impl Serialize,
    ) -> Delivery {
        #[derive(Serialize)]
        struct Event<'a, R> {
            event: &'static str,
            tenant: &'a str,
            subject: &'a str,
            #[serde(flatten)]
            report: &'a R,
        }
        let event = Event {
            event: "upload.checked",
            tenant: &caller.tenant,
            subject: &caller.subject,
            report,
        };
        let delivery = match (client, serde_json::to_vec(&event)) {
            (Some(client), Ok(body)) => self.deliver(client, body).await,
            _ => Delivery {
                delivered: false,
                status: None,
            },
        };
        let label = if delivery.delivered {
            "delivered"
        } else {
            "failed"
        };
        metrics::counter!("upload_tickets_webhook_deliveries_total", "tenant" => caller.tenant.clone(), "result" => label)
            .increment(1);
        delivery
    }

    /// POSTs `body` (JSON), bounded by a 5 s timeout; never fails the caller's request.
    pub async fn deliver(&self, client: &reqwest::Client, body: Vec<u8>) -> Delivery {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let Some(signature) = self.signature(timestamp, &body) else {
            return Delivery {
                delivered: false,
                status: None,
            };
        };
        let sent = client
            .post(&self.url)
            .timeout(Duration::from_secs(5))
            .header("content-type", "application/json")
            .header("upload-tickets-timestamp", timestamp.to_string())
            .header("upload-tickets-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                if !status.is_success() {
                    tracing::warn!(url = %self.url, %status, "completion webhook refused");
                }
                Delivery {
                    delivered: status.is_success(),
                    status: Some(status.as_u16()),
                }
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "completion webhook failed");
                Delivery {
                    delivered: false,
                    status: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_timestamp_and_body() {
        let hook = Webhook::new("https://hooks.example.com/x", &[1; 32]).unwrap();
        let a = hook.signature(1_700_000_000, b"{}").unwrap();
        assert!(a.starts_with("v1=") && a.len() == 3 + 64);
        assert_ne!(Some(&a), hook.signature(1_700_000_001, b"{}").as_ref());
        assert_ne!(Some(&a), hook.signature(1_700_000_000, b"{ }").as_ref());
        assert!(!format!("{hook:?}").contains("secret"));
    }

    #[test]
    fn urls_and_secrets_are_checked() {
        assert!(Webhook::new("http://hooks.example.com/x", &[1; 32]).is_err());
        assert!(Webhook::new("http://127.0.0.1:9/x", &[1; 32]).is_ok());
        assert!(Webhook::new("https://hooks.example.com/x", &[1; 31]).is_err());
        assert!(Webhook::new("not a url", &[1; 32]).is_err());
    }
}
