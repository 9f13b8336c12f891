//! `upload-tickets dev`: the embedded default, with its own S3-compatible store where
//! the build has one (feature `dev-store`), a random HMAC key, and tokens to try it with.

use std::sync::Arc;
use std::time::SystemTime;

use super::receiver::Receiver;
use super::{CliError, DevArgs};
use crate::config::{Config, DEFAULT_CONFIG, Settings, Source};
use crate::credentials::{CredentialSource, DefaultChain, StaticSource};
use crate::startup::{Application, shutdown_signal};
use crate::telemetry;

/// Development credentials: MinIO's defaults, so a stock local MinIO accepts the tickets.
const DEV_ACCESS_KEY: &str = "minioadmin";
const DEV_SECRET_KEY: &str = "minioadmin";

/// The variable name the dev tenants' webhook secret goes by (never read from the
/// environment: `dev` makes one each run).
const DEV_WEBHOOK_SECRET_VAR: &str = "UPLOAD_TICKETS_DEV_WEBHOOK_SECRET";

/// The tenant of the dev token, with POST tickets, and the one with PUT tickets.
const DEV_TENANT: &str = "dev";
const DEV_PUT_TENANT: &str = "dev-put";

/// The token `dev`'s demo page carries: none when it listens beyond loopback, where
/// anyone reaching the page would get it (paste one into the page instead).
fn demo_token(listen: std::net::SocketAddr, token: &str) -> Option<crate::auth::IssuedToken> {
    listen
        .ip()
        .is_loopback()
        .then(|| crate::auth::IssuedToken(token.to_owned()))
}

/// Where `dev` listens unless `--listen` says otherwise.
const DEV_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

pub(super) async fn dev(args: DevArgs) -> Result<String, CliError> {
    let mut settings = Settings::load(&Source::Text(DEFAULT_CONFIG.to_owned()))?;
    let _telemetry = telemetry::init(settings.server.log_format, &settings.telemetry)?;
    // The environment may say 0.0.0.0 (a container image does, for `serve`): dev's
    // token must not reach the network by that, so only its own flag moves it.
    let listen = args.listen.unwrap_or(DEV_LISTEN);
    if settings.server.listen != listen && args.listen.is_none() {
        tracing::warn!(
            ignored = %settings.server.listen,
            "dev listens on 127.0.0.1:8080 whatever the environment says; use --listen to move it"
        );
    }
    settings.server.listen = listen;
    let local_only = listen.ip().is_loopback();
    let secret_var = settings.auth.hmac_secret_env.clone().unwrap_or_default();
    // A fresh key each run: tokens from an earlier run stop working, as they should.
    let secret = std::env::var(&secret_var)
        .ok()
        .filter(|s| s.len() >= crate::auth::MIN_HMAC_SECRET_BYTES)
        .unwrap_or_else(random_secret);
    let auth = settings.auth.clone();
    // Held until the service stops: dropping it stops the store.
    let (_store, store_line) = dev_store(&args, &mut settings).await?;
    // The dev tenants' events go to a receiver of dev's own; the demo page shows them.
    let hook_secret = random_webhook_secret();
    let receiver = Receiver::start(&hook_secret).await?;
    for tenant in [DEV_TENANT, DEV_PUT_TENANT] {
        if let Some(tenant) = settings.tenants.get_mut(tenant) {
            tenant.completion_webhook_url = Some(receiver.url.clone());
            tenant.completion_webhook_secret_env = Some(DEV_WEBHOOK_SECRET_VAR.to_owned());
        }
    }
    let mut config = Config::from_settings_with_env(settings, &|name| {
        if name == DEV_WEBHOOK_SECRET_VAR {
            return Some(hook_secret.clone());
        }
        (name == secret_var).then(|| secret.clone())
    })?;
    config.demo_events = Some(std::sync::Arc::clone(&receiver.log));
    let endpoint = config.s3.endpoint.clone().unwrap_or_default();

    // The embedded store knows the dev key only; otherwise AWS credentials in the
    // environment win, for a store of one's own.
    let source: Arc<dyn CredentialSource> =
        if store_line.signs_with_dev_key || std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            let credentials =
                s3_presigned_post::Credentials::new(DEV_ACCESS_KEY, DEV_SECRET_KEY, None)?;
            Arc::new(StaticSource(credentials))
        } else {
            Arc::new(DefaultChain::new().await)
        };
    let token = dev_token(&auth, DEV_TENANT, &secret)?;
    let put_token = dev_token(&auth, DEV_PUT_TENANT, &secret)?;
    config.demo_token = demo_token(listen, &token);
    if !local_only {
        tracing::warn!(%listen, "dev listens beyond loopback: the demo page carries no token");
    }
    let app = Application::build(config, source).await?;
    let address = app.local_addr()?;
    tracing::info!(%address, "upload-tickets dev is listening");
    println!(
        "upload-tickets dev: http://{address}   demo page: http://{address}/demo\n\
         {}\n\
         events: the dev tenants' webhook is a receiver of dev's own ({}); the demo page shows what it gets\n\n\
         Bearer token (tenant {DEV_TENANT:?}: POST tickets; valid 12 h):\n{token}\n\n\
         Bearer token (tenant {DEV_PUT_TENANT:?}: PUT tickets; valid 12 h):\n{put_token}\n\n\
         Try:\n  curl -s -X POST http://{address}/uploads \\\n    -H 'Authorization: Bearer {token}' \\\n    \
         -H 'Content-Type: application/json' \\\n    -d '{{\"filename\": \"hello.txt\", \"content_type\": \"text/plain\"}}'\n",
        store_line.text.replace("{endpoint}", &endpoint),
        receiver.url,
    );
    app.run_until(shutdown_signal()).await?;
    Ok("stopped".to_owned())
}

/// What the banner says of the store, and whether tickets must be signed for it.
struct StoreLine {
    text: String,
    signs_with_dev_key: bool,
}

impl StoreLine {
    fn none(why: &str) -> Self {
        Self {
            text: format!("store: none started ({why}); tickets are for {{endpoint}}"),
            signs_with_dev_key: false,
        }
    }
}

/// Starts the embedded store as `args` say, pointing `settings` at it.
#[cfg(feature = "dev-store")]
async fn dev_store(
    args: &DevArgs,
    settings: &mut Settings,
) -> Result<(Option<crate::devstore::DevStore>, StoreLine), CliError> {
    use crate::devstore::{self, Started};
    if args.no_store {
        return Ok((None, StoreLine::none("--no-store")));
    }
    let configured = settings.s3.endpoint.as_deref().and_then(loopback_address);
    let Some(listen) = args.store.or(configured) else {
        return Ok((None, StoreLine::none("the endpoint is not on this machine")));
    };
    let mut buckets: Vec<String> = settings
        .tenants
        .values()
        .map(|t| t.bucket.clone())
        .collect();
    buckets.dedup();
    let options = devstore::Options {
        listen,
        data: args.data.clone(),
        access_key: DEV_ACCESS_KEY.to_owned(),
        secret_key: DEV_SECRET_KEY.to_owned(),
        buckets: buckets.clone(),
        origins: settings.server.cors_allowed_origins.clone(),
        lax: devstore::Lax::default(),
    };
    let (store, text) = match devstore::start(options).await? {
        Started::Embedded(store) => {
            let kept = if store.removes_data() {
                "removed on exit; --data DIR keeps it"
            } else {
                "kept"
            };
            let text = format!(
                "store: embedded (s3s-fs, POST policies checked) at http://{}, bucket(s) {buckets:?}, key {DEV_ACCESS_KEY} / {DEV_SECRET_KEY}\n       \
                 data in {} ({kept})",
                store.address(),
                store.data().display(),
            );
            settings.s3.endpoint = Some(format!("http://{}", store.address()));
            (Some(store), text)
        }
        Started::Existing(address) => {
            settings.s3.endpoint = Some(format!("http://{address}"));
            let text = format!(
                "store: {address} is taken by another S3-compatible store: tickets go to it \
                 (it needs bucket(s) {buckets:?} and the key {DEV_ACCESS_KEY} / {DEV_SECRET_KEY})"
            );
            (None, text)
        }
    };
    Ok((
        store,
        StoreLine {
            text,
            signs_with_dev_key: true,
        },
    ))
}

/// Without the `dev-store` feature there is no store to start.
#[cfg(not(feature = "dev-store"))]
async fn dev_store(
    args: &DevArgs,
    _settings: &mut Settings,
) -> Result<(Option<()>, StoreLine), CliError> {
    let why = if args.no_store {
        "--no-store"
    } else {
        "this build has no embedded store: feature dev-store"
    };
    Ok((None, StoreLine::none(why)))
}

/// `127.0.0.1:<port>` for an `http://` endpoint on this machine.
#[cfg(feature = "dev-store")]
fn loopback_address(endpoint: &str) -> Option<std::net::SocketAddr> {
    let url = url::Url::parse(endpoint).ok()?;
    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost"));
    (url.scheme() == "http" && local)
        .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], url.port().unwrap_or(80))))
}

/// A Standard Webhooks secret of 32 random bytes.
fn random_webhook_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{}{}",
        crate::webhook::SECRET_PREFIX,
        base64_simd::STANDARD.encode_to_string(bytes)
    )
}

fn random_secret() -> String {
    use rand::RngExt as _;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dev_token(
    auth: &crate::auth::AuthSettings,
    tenant: &str,
    secret: &str,
) -> Result<String, CliError> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .as_secs();
    let claims = serde_json::json!({
        "iss": auth.issuer, "aud": auth.audience, "sub": "dev-user", auth.tenant_claim.as_str(): tenant,
        "scope": auth.required_scope.clone().unwrap_or_else(|| "uploads:write".to_owned()),
        "iat": now, "exp": now + 12 * 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| CliError::Usage(format!("could not make the dev token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_embeds_its_token_only_when_it_listens_on_loopback() {
        let at = |a: &str| a.parse::<std::net::SocketAddr>().unwrap();
        assert!(demo_token(at("127.0.0.1:8080"), "t").is_some());
        assert!(demo_token(at("[::1]:8080"), "t").is_some());
        assert!(demo_token(at("0.0.0.0:8080"), "t").is_none());
        assert!(demo_token(at("[::]:8080"), "t").is_none());
        assert!(demo_token(at("192.0.2.1:8080"), "t").is_none());
        assert_eq!(DEV_LISTEN, at("127.0.0.1:8080"));
    }
}
