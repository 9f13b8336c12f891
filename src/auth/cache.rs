//! A bounded cache of verified tokens, in front of signature verification.
//!
//! A browser sends the same token with every file of a session, and an RS256 or ES256
//! signature costs more than the rest of a ticket. So a token whose signature and claims
//! held is remembered, keyed by the SHA-256 of the whole compact token (the token itself
//! is never kept), with only what the service reads of it: the caller, `exp` and `nbf`.
//! Every use checks `exp` and `nbf` (with the leeway) against the clock again; an entry
//! verified by a JWKS key holds that key weakly, so once a refresh replaces or drops the
//! key the entry is dead and the token is verified afresh. What is refused is never
//! cached. Bounded in bytes (`quick_cache`, whose S3-FIFO policy keeps the hot tokens).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use jsonwebtoken::DecodingKey;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use sha2::{Digest, Sha256};

use super::{AuthError, Caller};

/// What a verified token left behind.
#[derive(Clone)]
pub(super) struct Verified {
    /// Who it names: shared with every request that presents the token.
    pub caller: Arc<Caller>,
    /// Its `exp`, Unix seconds.
    pub exp: u64,
    /// Its `nbf`, if any.
    pub nbf: Option<u64>,
    /// The JWKS key that verified it; `None` for keys that never change.
    pub key: Option<Weak<DecodingKey>>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Claims are the caller's business; the cache shows only lifetimes.
        f.debug_struct("Verified")
            .field("exp", &self.exp)
            .field("nbf", &self.nbf)
            .finish_non_exhaustive()
    }
}

/// An entry's weight: its bytes, roughly (key, strings, bookkeeping).
#[derive(Debug, Clone, Copy)]
struct Bytes;

impl Weighter<[u8; 32], Arc<Verified>> for Bytes {
    fn weight(&self, _key: &[u8; 32], value: &Arc<Verified>) -> u64 {
        let caller = &value.caller;
        let text = caller.tenant.len()
            + caller.subject.len()
            + caller.scopes.iter().map(|s| s.len() + 24).sum::<usize>();
        (32 + 160 + text) as u64
    }
}

/// Counts evictions.
#[derive(Debug, Clone, Default)]
struct Evictions(Arc<AtomicU64>);

impl Lifecycle<[u8; 32], Arc<Verified>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: [u8; 32], _value: Arc<Verified>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Hits, misses and evictions so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCounts {
    /// Tokens answered from the cache.
    pub hits: u64,
    /// Tokens verified (the cache was on).
    pub misses: u64,
    /// Entries pushed out to stay within the bound.
    pub evictions: u64,
}

/// The cache.
pub(super) struct TokenCache {
    entries: Cache<[u8; 32], Arc<Verified>, Bytes, DefaultHashBuilder, Evictions>,
    evictions: Evictions,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("entries", &self.entries.len())
            .field("bytes", &self.entries.weight())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache of at most `max_bytes` of entries.
    pub(super) fn new(max_bytes: u64) -> Self {
        let evictions = Evictions::default();
        let estimated = usize::try_from(max_bytes / 256)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            entries: Cache::with(
                estimated,
                max_bytes,
                Bytes,
                DefaultHashBuilder::default(),
                evictions.clone(),
            ),
            evictions,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The key of `token`: its SHA-256, so the token itself is not kept.
    pub(super) fn key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The caller of a cached token still valid at `now` (with `leeway`); `None` when it
    /// must be verified; an error when its lifetime refuses it (as verifying would).
    pub(super) fn get(
        &self,
        key: &[u8; 32],
        now: u64,
        leeway: u64,
    ) -> Result<Option<Arc<Caller>>, AuthError> {
        let Some(entry) = self.entries.get(key) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        if entry
            .key
            .as_ref()
            .is_some_and(|key| key.strong_count() == 0)
        {
            // The JWKS no longer holds the key that verified it.
            self.entries.remove(key);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        if entry.exp.saturating_add(leeway) < now {
            self.entries.remove(key);
            return Err(AuthError::Invalid("expired".to_owned()));
        }
        if entry
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(AuthError::Invalid("not yet valid (nbf)".to_owned()));
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Arc::clone(&entry.caller)))
    }

    /// Remembers a token that verified.
    pub(super) fn insert(&self, key: [u8; 32], verified: Verified) {
        self.entries.insert(key, Arc::new(verified));
    }

    /// Hits, misses and evictions so far.
    pub(super) fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.0.load(Ordering::Relaxed),
        }
    }

    /// Entries and their weight in bytes.
    pub(super) fn size(&self) -> (usize, u64) {
        (self.entries.len(), self.entries.weight())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::{AuthSettings, Verifier};
    use super::*;

    const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!";
    const T0: u64 = 1_800_000_000;

    fn verifier(cache: bool, max_bytes: u64) -> Verifier {
        let settings: AuthSettings = toml::from_str(&format!(
            r#"
            issuer = "iss"
            audience = "aud"
            algorithms = ["HS256"]
            hmac_secret_env = "S"
            required_scope = "up"
            leeway_seconds = 30
            token_cache = {cache}
            token_cache_max_bytes = {max_bytes}
            "#
        ))
        .unwrap();
        Verifier::from_settings(&settings, &|_| Some(SECRET.to_owned())).unwrap()
    }

    fn sign(claims: &Value, secret: &str) -> String {
        let key = EncodingKey::from_secret(secret.as_bytes());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    prop_compose! {
        fn claims()(
            exp in prop::option::weighted(0.9, -100i64..400),
            nbf in prop::option::weighted(0.3, -100i64..400),
            iss in prop::sample::select(vec!["iss", "iss", "other"]),
            scope in prop::sample::select(vec!["up", "up", "down"]),
            sub in "[a-z]{1,6}",
        ) -> Value {
            let mut claims = json!({"iss": iss, "aud": "aud", "sub": sub, "tenant": "t", "scope": scope});
            if let Some(exp) = exp { claims["exp"] = json!(T0 as i64 + exp); }
            if let Some(nbf) = nbf { claims["nbf"] = json!(T0 as i64 + nbf); }
            claims
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// With the cache on or off, the verifier answers the same for every token at
        /// every clock, in any order of clocks: a cached token is judged again each time.
        #[test]
        fn the_cache_never_changes_an_answer(
            claims in claims(),
            other_key in prop::bool::weighted(0.1),
            flip in prop::option::weighted(0.2, any::<prop::sample::Index>()),
            clocks in prop::collection::vec(-200i64..600, 1..6),
        ) {
            let mut token = sign(&claims, if other_key { "another-secret-of-thirty-two-bytes!!" } else { SECRET });
            if let Some(at_index) = flip {
                let mut bytes = token.into_bytes();
                let i = at_index.index(bytes.len());
                bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
                token = String::from_utf8(bytes).unwrap();
            }
            let (cached, plain) = (verifier(true, 1 << 20), verifier(false, 1 << 20));
            for offset in clocks {
                let now = at((T0 as i64 + offset) as u64);
                let (a, b) = block_on(async {
                    (cached.verify(&token, now).await, plain.verify(&token, now).await)
                });
                prop_assert_eq!(a, b, "at {}", offset);
            }
        }
    }

    #[test]
    fn a_token_cached_while_valid_is_refused_once_expired_and_before_its_nbf() {
        let verifier = verifier(true, 1 << 20);
        let claims = json!({"iss": "iss", "aud": "aud", "sub": "u", "tenant": "t", "scope": "up", "exp": T0 + 60, "nbf": T0});
        let token = sign(&claims, SECRET);
        block_on(async {
            assert!(verifier.verify(&token, at(T0)).await.is_ok());
            assert!(verifier.verify(&token, at(T0 + 1)).await.is_ok());
            assert_eq!(verifier.cache_counts().unwrap().hits, 1);
            // nbf is judged again: a clock set back refuses it.
            assert!(verifier.verify(&token, at(T0 - 31)).await.is_err());
            // Within the leeway still good, past it refused, and dropped.
            assert!(verifier.verify(&token, at(T0 + 90)).await.is_ok());
            assert_eq!(
                verifier.verify(&token, at(T0 + 91)).await,
                Err(AuthError::Invalid("expired".to_owned()))
            );
            assert_eq!(verifier.cache_size().0, 0);
        });
    }

    #[test]
    fn a_flood_of_distinct_valid_tokens_stays_within_the_bound() {
        let max = 64 * 1024;
        let verifier = verifier(true, max);
        block_on(async {
            for n in 0..5_000 {
                let claims = json!({"iss": "iss", "aud": "aud", "sub": format!("user-{n}"), "tenant": "t", "scope": "up", "exp": T0 + 600});
                assert!(
                    verifier
                        .verify(&sign(&claims, SECRET), at(T0))
                        .await
                        .is_ok()
                );
            }
        });
        let (entries, bytes) = verifier.cache_size();
        assert!(bytes <= max, "{bytes} bytes in {entries} entries");
        assert!(entries > 100, "the cache is used: {entries}");
        let counts = verifier.cache_counts().unwrap();
        assert_eq!(counts.misses, 5_000);
        assert!(counts.evictions > 0);
    }

    #[test]
    fn the_cache_shows_no_claims_and_keeps_no_token() {
        let verifier = verifier(true, 1 << 20);
        let claims = json!({"iss": "iss", "aud": "aud", "sub": "secret-subject", "tenant": "t", "scope": "up", "exp": T0 + 600});
        let token = sign(&claims, SECRET);
        block_on(async { verifier.verify(&token, at(T0)).await.unwrap() });
        let shown = format!("{verifier:?}");
        assert!(
            !shown.contains("secret-subject") && !shown.contains(&token[..20]),
            "{shown}"
        );
        let entry = Verified {
            caller: Arc::new(Caller {
                tenant: "t".into(),
                subject: "secret-subject".into(),
                scopes: vec![],
            }),
            exp: 1,
            nbf: None,
            key: None,
        };
        assert!(!format!("{entry:?}").contains("secret-subject"));
    }
}
