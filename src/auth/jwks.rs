//! JWKS: the identity provider's public keys, fetched, cached and refreshed.
//!
//! Keys are refreshed in the background, and at once when a token names an unknown `kid`
//! (a key rotation) but at most once per minimum interval, so that tokens with made-up
//! `kid`s cannot turn the service into a flood against the identity provider. When the
//! provider is down the last good keys keep serving.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use tokio::sync::Mutex;

use super::AuthError;

/// Largest JWKS document accepted, in bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Longest a request waits for an unknown-kid refresh (the lock and the fetch). A slow
/// identity provider then costs a request this much at most, well inside the request
/// timeout, and the request gets its 401 rather than a timeout.
const REQUEST_PATH_REFRESH_LIMIT: Duration = Duration::from_secs(2);

/// Why a JWKS could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The request failed or timed out.
    #[error("fetching the JWKS failed")]
    Fetch(#[source] reqwest::Error),
    /// The provider answered with an error status.
    #[error("the JWKS endpoint answered {0}")]
    Status(reqwest::StatusCode),
    /// The document is too large.
    #[error("the JWKS is over {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The document is not a JWK set, or has no usable key.
    #[error("the JWKS is not usable: {0}")]
    Invalid(String),
}

struct KeySet {
    keys: Vec<(Option<String>, Arc<DecodingKey>)>,
    loaded: bool,
}

/// The cached key set of one JWKS URL.
pub struct JwksCache {
    url: String,
    client: reqwest::Client,
    keys: ArcSwap<KeySet>,
    /// When the last refresh started; also serialises refreshes.
    last_refresh: Mutex<Option<Instant>>,
    min_interval: Duration,
    refresh_every: Duration,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .field("keys", &self.keys.load().keys.len())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache for `url` (https, or http on a loopback host); nothing is fetched yet.
    pub fn new(url: &str, min_interval: Duration, refresh_every: Duration) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
        if !secure_enough(&parsed) {
            return Err(format!(
                "{url:?}: use https (http only for a loopback host)"
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::custom(
                |attempt| match redirect_refusal(attempt.previous(), attempt.url()) {
                    None => attempt.follow(),
                    Some(why) => attempt.error(why),
                },
            ))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            client,
            keys: ArcSwap::from_pointee(KeySet {
                keys: Vec::new(),
                loaded: false,
            }),
            last_refresh: Mutex::new(None),
            min_interval,
            refresh_every,
        })
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether a key set has been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.keys.load().loaded
    }

    /// How often the background task refreshes.
    pub fn refresh_every(&self) -> Duration {
        self.refresh_every
    }

    /// Fetches the key set now and replaces the cached one; on error the cached keys stay.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let mut last = self.last_refresh.lock().await;
        *last = Some(Instant::now());
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> Result<usize, JwksError> {
        let result = self.fetch_and_store_inner().await;
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("upload_tickets_jwks_refreshes_total", "result" => label).increment(1);
        result
    }

    async fn fetch_and_store_inner(&self) -> Result<usize, JwksError> {
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(JwksError::Fetch)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(JwksError::Fetch)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| JwksError::Invalid(e.to_string()))?;
        let keys: Vec<_> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                DecodingKey::from_jwk(jwk)
                    .ok()
                    .map(|key| (jwk.common.key_id.clone(), Arc::new(key)))
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::Invalid("no usable key".to_owned()));
        }
        let count = keys.len();
        self.keys.store(Arc::new(KeySet { keys, loaded: true }));
        Ok(count)
    }

    fn lookup(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        let set = self.keys.load();
        match kid {
            Some(kid) => set
                .keys
                .iter()
                .find(|(id, _)| id.as_deref() == Some(kid))
                .map(|(_, key)| Arc::clone(key)),
            // A token without `kid` is only unambiguous against a single key.
            None if set.keys.len() == 1 => set.keys.first().map(|(_, key)| Arc::clone(key)),
            None => None,
        }
    }

    /// The key for `kid`; on a miss, refreshes once if the last refresh is older than the
    /// minimum interval, then looks again.
    pub(crate) async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        let refresh = async {
            let mut last = self.last_refresh.lock().await;
            // Another request may have refreshed while this one waited for the lock.
            if self.lookup(kid).is_some() {
                return;
            }
            let due = last.is_none_or(|at| at.elapsed() >= self.min_interval);
            if due {
                *last = Some(Instant::now());
                if let Err(error) = self.fetch_and_store().await {
                    tracing::warn!(%error, url = %self.url, "JWKS refresh for an unknown kid failed; keeping the cached keys");
                }
            }
        };
        if tokio::time::timeout(REQUEST_PATH_REFRESH_LIMIT, refresh)
            .await
            .is_err()
        {
            tracing::warn!(url = %self.url, "JWKS refresh for an unknown kid is slow; not waiting for it");
        }
        self.lookup(kid).ok_or(AuthError::UnknownKey)
    }

    /// Refreshes forever: every `refresh_every`, or every few seconds until the first
    /// load succeeds. Errors are logged; the cached keys keep serving.
    pub async fn run_refresh_loop(self: Arc<Self>) {
        loop {
            match self.refresh().await {
                Ok(keys) => tracing::debug!(keys, url = %self.url, "JWKS refreshed"),
                Err(error) => {
                    tracing::warn!(%error, url = %self.url, "JWKS refresh failed; keeping the cached keys")
                }
            }
            let wait = if self.is_loaded() {
                self.refresh_every
            } else {
                Duration::from_secs(2).min(self.refresh_every)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A URL keys may come from: https, or http to a loopback host.
fn secure_enough(url: &url::Url) -> bool {
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => true,
        "http" => loopback,
        _ => false,
    }
}

/// Why a redirect of the JWKS request is not followed, if it is not: more than three,
/// to a URL keys may not come from, or from https down to http (keys fetched in clear
/// text after an https start could be anyone's).
fn redirect_refusal(previous: &[url::Url], next: &url::Url) -> Option<&'static str> {
    if previous.len() > 3 {
        return Some("the JWKS URL redirects more than three times");
    }
    if !secure_enough(next) {
        return Some("the JWKS URL redirects to a URL that is neither https nor loopback");
    }
    if next.scheme() != "https" && previous.iter().any(|u| u.scheme() == "https") {
        return Some("the JWKS URL redirects from https to http");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<url::Url> {
        list.iter().map(|u| url::Url::parse(u).unwrap()).collect()
    }

    #[test]
    fn redirects_never_leave_https_for_http_nor_go_anywhere_keys_may_not_come_from() {
        let https = urls(&["https://id.example.com/jwks"]);
        let next = |u: &str| url::Url::parse(u).unwrap();
        assert_eq!(
            redirect_refusal(&https, &next("https://cdn.example.com/jwks")),
            None
        );
        assert!(redirect_refusal(&https, &next("http://cdn.example.com/jwks")).is_some());
        // Not even to loopback: the start was https.
        assert!(redirect_refusal(&https, &next("http://127.0.0.1/jwks")).is_some());
        assert!(redirect_refusal(&https, &next("ftp://cdn.example.com/jwks")).is_some());
        let loopback = urls(&["http://127.0.0.1:9/jwks"]);
        assert_eq!(
            redirect_refusal(&loopback, &next("http://localhost:9/keys")),
            None
        );
        assert!(redirect_refusal(&loopback, &next("http://id.example.com/jwks")).is_some());
        // Up from http to https is fine; a chain that went through https is not undone.
        assert_eq!(
            redirect_refusal(&loopback, &next("https://id.example.com/jwks")),
            None
        );
        let through = urls(&["http://127.0.0.1:9/a", "https://id.example.com/b"]);
        assert!(redirect_refusal(&through, &next("http://127.0.0.1:9/c")).is_some());
        let many = urls(&[
            "https://a.example/1",
            "https://a.example/2",
            "https://a.example/3",
            "https://a.example/4",
        ]);
        assert!(redirect_refusal(&many, &next("https://a.example/5")).is_some());
        assert_eq!(
            redirect_refusal(&many[..3], &next("https://a.example/5")),
            None
        );
    }
}
