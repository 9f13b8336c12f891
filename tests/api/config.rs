//! Configuration: the shipped files are valid, every bad setting is named, the
//! environment overrides the file, and `check-config` reports it all.

use std::path::Path;
use std::process::Command;

use upload_tickets::config::{Config, ConfigError, Settings, Source};

use crate::helpers::*;

fn check(toml: &str) -> Result<Config, ConfigError> {
    let settings = Settings::load(&Source::Text(toml.to_owned()))?;
    Config::from_settings_with_env(settings, &|name| {
        (name == SECRET_ENV).then(|| SECRET.to_owned())
    })
}

fn refused_naming(toml: &str, setting: &str) {
    let error = check(toml)
        .expect_err("the configuration is refused")
        .to_string();
    assert!(error.contains(setting), "{setting:?} not named in: {error}");
}

fn check_config(path: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The secrets `config/example.toml` names.
const EXAMPLE_SECRETS: [(&str, &str); 2] = [
    (
        "UPLOAD_TICKETS_HANDLE_SECRET",
        "a-handle-key-of-at-least-32-bytes-long",
    ),
    (
        "ACME_WEBHOOK_SECRET",
        "whsec_dXBsb2FkLXRpY2tldHMtdGVzdC13ZWJob29rLWtleSE=",
    ),
];

#[test]
fn the_shipped_configurations_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, text) = check_config(&root.join("config/example.toml"), &EXAMPLE_SECRETS);
    assert!(ok, "{text}");
    assert!(text.contains("3 tenant(s)"), "{text}");
    assert!(!text.contains("handle_secret_env"), "{text}");
    // Globex's keys have a {uuid}; none repeats, so nothing to warn about.
    assert!(!text.contains("warning"), "{text}");
    // Each secret it names is required.
    for missing in EXAMPLE_SECRETS {
        let others: Vec<_> = EXAMPLE_SECRETS
            .into_iter()
            .filter(|s| *s != missing)
            .collect();
        let (ok, text) = check_config(&root.join("config/example.toml"), &others);
        assert!(!ok && text.contains(missing.0), "{text}");
    }
    let (ok, text) = check_config(
        &root.join("config/default.toml"),
        &[(
            "UPLOAD_TICKETS_JWT_SECRET",
            "a-dev-secret-of-at-least-32-bytes-long",
        )],
    );
    assert!(ok, "{text}");
    // The dev default has no handle key: check-config says what that means.
    assert!(
        text.contains("server.handle_secret_env is not set"),
        "{text}"
    );
}

#[test]
fn environment_overrides_win_and_are_checked_too() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, text) = check_config(
        &root.join("config/example.toml"),
        &[
            EXAMPLE_SECRETS[0],
            EXAMPLE_SECRETS[1],
            ("UPLOAD_TICKETS__SERVER__LISTEN", "127.0.0.1:9999"),
        ],
    );
    assert!(ok && text.contains("127.0.0.1:9999"), "{text}");
    let (ok, text) = check_config(
        &root.join("config/example.toml"),
        &[
            EXAMPLE_SECRETS[0],
            EXAMPLE_SECRETS[1],
            ("UPLOAD_TICKETS__TENANTS__ACME__MAX_SIZE", "6000000000000"),
        ],
    );
    assert!(!ok && text.contains("tenants.acme.max_size"), "{text}");
}

#[test]
fn a_missing_secret_variable_or_file_is_named() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, text) = check_config(&root.join("config/default.toml"), &[]);
    assert!(
        !ok && text.contains("auth.hmac_secret_env") && text.contains("UPLOAD_TICKETS_JWT_SECRET"),
        "{text}"
    );
    let (ok, text) = check_config(&root.join("config/missing.toml"), &[]);
    assert!(!ok && text.contains("missing.toml"), "{text}");
}

#[test]
fn every_bad_setting_is_named() {
    let base = base_config();
    refused_naming(
        &base.replace("[server]\n", "[server]\nheader_read_timeout_seconds = 0\n"),
        "server.header_read_timeout_seconds",
    );
    refused_naming(
        &base.replace("[server]\n", "[server]\nmax_header_bytes = 1024\n"),
        "server.max_header_bytes",
    );
    for bytes in [0, 1024, 2 << 30] {
        refused_naming(
            &base.replace(
                "[auth]\n",
                &format!("[auth]\ntoken_cache_max_bytes = {bytes}\n"),
            ),
            "auth.token_cache_max_bytes",
        );
    }
    for workers in [0, 257] {
        refused_naming(
            &base.replace("[server]\n", &format!("[server]\nworkers = {workers}\n")),
            "server.workers",
        );
    }
    refused_naming(
        &base.replace("max_size = 1048576", "max_size = 5497558138881"),
        "tenants.acme.max_size",
    );
    refused_naming(
        &base.replace(
            "[server]\n",
            "[server]\nhandle_secret_env = \"NOT_SET_ANYWHERE\"\n",
        ),
        "server.handle_secret_env",
    );
    refused_naming(
        &base.replace(
            "max_size = 1048576",
            "max_size = 1048576\ncompletion_webhook_url = \"https://hooks.example.com/x\"",
        ),
        "tenants.acme.completion_webhook_url",
    );
    refused_naming(
        &base.replace(
            "max_size = 1048576",
            "max_size = 1048576\ncompletion_webhook_url = \"http://hooks.example.com/x\"\ncompletion_webhook_secret_env = \"TEST_JWT_SECRET\"",
        ),
        "tenants.acme.completion_webhook_url",
    );
    refused_naming(
        &base.replace(
            "max_size = 1048576",
            "max_size = 1048576\ncompletion_webhook_url = \"https://hooks.example.com/x\"\ncompletion_webhook_secret_env = \"NOT_SET_ANYWHERE\"",
        ),
        "tenants.acme.completion_webhook_secret_env",
    );
    // A webhook secret that is not a Standard Webhooks one (`whsec_` and base64).
    refused_naming(
        &base.replace(
            "max_size = 1048576",
            "max_size = 1048576\ncompletion_webhook_url = \"https://hooks.example.com/x\"\ncompletion_webhook_secret_env = \"TEST_JWT_SECRET\"",
        ),
        "tenants.acme.completion_webhook_secret_env",
    );
    // A quarantine inside the tenant's own keys.
    refused_naming(
        &base.replace(
            "max_size = 1048576",
            "max_size = 1048576\non_rejected = \"quarantine\"\nquarantine_prefix = \"acme/q/\"",
        ),
        "tenants.acme.quarantine_prefix",
    );
    refused_naming(
        &format!("{base}\n[events]\ngrace_seconds = 100000\n"),
        "events.grace_seconds",
    );
    refused_naming(
        &format!(
            "{base}\n[redis]\nurl = \"redis://127.0.0.1:1/0\"\n[limits]\nredis_url = \"redis://127.0.0.1:2/0\"\n"
        ),
        "redis",
    );
    refused_naming(
        &base.replace(
            "max_size = 1048576",
            "max_size = 1048576\nupload_method = \"patch\"",
        ),
        "upload_method",
    );
    refused_naming(
        &base.replace("min_size = 1\n", "min_size = 2000000\n"),
        "tenants.acme.min_size",
    );
    refused_naming(
        &base.replace("globex/{sub}/{uuid}/{filename}", "globex/{user}/{uuid}"),
        "tenants.globex.key_template",
    );
    refused_naming(
        &base.replace("globex/{sub}/{uuid}/{filename}", "{sub}/{uuid}"),
        "key_template",
    );
    refused_naming(&base.replace("globex/{sub}", "acme/{sub}"), "key_template");
    refused_naming(
        &base.replace("algorithms = [\"HS256\"]", "algorithms = [\"none\"]"),
        "auth.algorithms",
    );
    refused_naming(
        &base.replace("algorithms = [\"HS256\"]", "algorithms = [\"HS999\"]"),
        "auth.algorithms",
    );
    refused_naming(
        &base.replace(
            "algorithms = [\"HS256\"]",
            "algorithms = [\"HS256\", \"RS256\"]",
        ),
        "auth.algorithms",
    );
    refused_naming(
        &base.replace("algorithms = [\"HS256\"]", "algorithms = []"),
        "auth.algorithms",
    );
    refused_naming(
        &base.replace(
            &format!("hmac_secret_env = \"{SECRET_ENV}\""),
            "hmac_secret_env = \"NOT_SET_ANYWHERE\"",
        ),
        "auth.hmac_secret_env",
    );
    refused_naming(
        &base.replace(&format!("hmac_secret_env = \"{SECRET_ENV}\""), ""),
        "auth",
    );
    refused_naming(
        &base.replace(
            &format!("hmac_secret_env = \"{SECRET_ENV}\""),
            "public_key_pem_file = \"/nonexistent.pem\"",
        ),
        "auth",
    );
    refused_naming(
        &base.replace("region = \"us-east-1\"", "region = \"US-EAST-1\""),
        "s3.region",
    );
    refused_naming(
        &base.replace(
            "endpoint = \"http://127.0.0.1:9000\"",
            "endpoint = \"ftp://x\"",
        ),
        "s3.endpoint",
    );
    refused_naming(
        &base.replace("https://app.example.com\"]", "https://app.example.com/\"]"),
        "server.cors_allowed_origins",
    );
    refused_naming(
        &base.replace(
            "bucket = \"limited-uploads\"",
            "bucket = \"limited-uploads\"\nfront_end_origins = [\"https://app.example.com/upload\"]",
        ),
        "tenants.limited.front_end_origins",
    );
    refused_naming(
        &base.replace("bucket = \"limited-uploads\"", "bucket = \"x\""),
        "tenants.limited.bucket",
    );
    refused_naming(
        &base.replace("rate_limit_per_minute = 2", "rate_limit_per_minut = 2"),
        "rate_limit_per_minut",
    );
    refused_naming(
        &base.replace("[tenants.acme]", "[tenants.Acme]"),
        "tenants.Acme",
    );
    refused_naming(
        &base.replace("request_timeout_seconds = 5", "request_timeout_seconds = 0"),
        "server.request_timeout_seconds",
    );
    refused_naming(
        &base.replace("max_size = 1000\nrate", "max_size = \"big\"\nrate"),
        "max_size",
    );
}

#[test]
fn a_short_hmac_secret_is_refused() {
    let settings = Settings::load(&Source::Text(base_config())).unwrap();
    let error = Config::from_settings_with_env(settings, &|_| Some("short".to_owned()))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("auth.hmac_secret_env")
            && error.contains("32 bytes")
            && !error.contains("short\""),
        "{error}"
    );
}

#[test]
fn a_template_that_shares_keys_needs_the_tenant_to_say_so_and_repeating_keys_are_warned_of() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("config/example.toml")).unwrap();
    let dir = std::env::temp_dir().join(format!("upload-tickets-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");

    // Globex without keys_shared_by_users: refused at start, the setting named.
    let unsaid = example.replace("keys_shared_by_users = true", "");
    std::fs::write(&path, &unsaid).unwrap();
    let (ok, text) = check_config(&path, &EXAMPLE_SECRETS);
    assert!(!ok && text.contains("keys_shared_by_users"), "{text}");

    // Keys that can repeat (no {uuid}): accepted, with a warning naming the tenant.
    let repeating = example.replace("globex/{date}/{uuid}.{ext}", "globex/{date}/{filename}");
    std::fs::write(&path, &repeating).unwrap();
    let (ok, text) = check_config(&path, &EXAMPLE_SECRETS);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{text}");
    assert!(
        text.contains("warning: tenants.globex.key_template") && text.contains("no {uuid}"),
        "{text}"
    );
}

/// A corpus case: what it is, the text replaced and by what, an environment variable
/// set, and the problem `check-config` says.
type Broken = (
    &'static str,
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
    &'static str,
);

/// A small valid file the corpus breaks one way at a time (line numbers matter below).
const CORPUS_BASE: &str = r#"[server]
listen = "127.0.0.1:8080"

[s3]
region = "us-east-1"

[auth]
issuer = "https://id.example.com/"
audience = "upload-tickets"
algorithms = ["HS256"]
hmac_secret_env = "CORPUS_JWT_SECRET"

[tenants.acme]
bucket = "acme-uploads"
max_size = 1000
"#;

/// `check-config` on a corpus of broken files and environments prints each problem once,
/// as the operator wrote it: the file and line (or the variable), the key, what was
/// expected. Pinned whole.
#[test]
fn check_config_says_each_problem_once_with_its_file_and_line() {
    let dir = std::env::temp_dir().join(format!("config-corpus-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = (
        "CORPUS_JWT_SECRET",
        "0123456789abcdef0123456789abcdef01234567",
    );
    let cases: [Broken; 10] = [
        (
            "a value of the wrong type",
            "max_size = 1000",
            "max_size = \"big\"",
            None,
            "wrong-type.toml:15: tenants.acme.max_size: expected a whole number, 0 or more, found \"big\"",
        ),
        (
            "a misspelt key",
            "max_size = 1000",
            "max_sise = 1000",
            None,
            "misspelt.toml:15: tenants.acme.max_sise: unknown setting (did you mean max_size?)",
        ),
        (
            "an unknown section",
            "[tenants.acme]",
            "[tenant.acme]",
            None,
            "unknown-section.toml:13: tenant: unknown setting (did you mean tenants?)",
        ),
        (
            "a value that does not parse",
            "listen = \"127.0.0.1:8080\"",
            "listen = \"nope\"",
            None,
            "bad-value.toml:2: server.listen: expected an address and port, like \"0.0.0.0:8080\" or \"127.0.0.1:9090\"",
        ),
        (
            "a value out of its range",
            "region = \"us-east-1\"",
            "region = \"US\"",
            None,
            "out-of-range.toml:5: s3.region: invalid region \"US\": a region is lower-case letters, digits and inner hyphens",
        ),
        (
            "a required key left out",
            "bucket = \"acme-uploads\"\n",
            "",
            None,
            "required.toml:13: tenants.acme.bucket: missing: this setting is required",
        ),
        (
            "a bad override in the environment",
            "",
            "",
            Some(("UPLOAD_TICKETS__SERVER__LISTEN", "nope")),
            "UPLOAD_TICKETS__SERVER__LISTEN: server.listen: expected an address and port, like \"0.0.0.0:8080\" or \"127.0.0.1:9090\"",
        ),
        (
            "an override out of range",
            "",
            "",
            Some(("UPLOAD_TICKETS__SERVER__MAX_HEADER_BYTES", "5")),
            "UPLOAD_TICKETS__SERVER__MAX_HEADER_BYTES: server.max_header_bytes: must be 16384 to 16777216",
        ),
        (
            "a collector that is no URL",
            "[tenants.acme]",
            "[telemetry]\notlp_endpoint = \"collector:4318\"\n\n[tenants.acme]",
            None,
            "bad-collector.toml:14: telemetry.otlp_endpoint: \"collector:4318\" is not a collector URL like http://collector:4318 (headers such as credentials go in OTEL_EXPORTER_OTLP_HEADERS)",
        ),
        (
            "syntax errors, all at once",
            "[s3]\nregion = \"us-east-1\"",
            "[s3\nregion = = \"us-east-1\"",
            None,
            "2 problems\n  syntax.toml:4: unclosed table, expected `]`\n  syntax.toml:5: extra `=`, expected nothing",
        ),
    ];
    for (what, from, to, env, expected) in cases {
        let name = expected
            .split_once(".toml")
            .map_or("good", |(name, _)| name.rsplit(' ').next().unwrap_or(name));
        let file = format!("{name}.toml");
        std::fs::write(dir.join(&file), CORPUS_BASE.replacen(from, to, 1)).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
            .args(["check-config", "--config", &file])
            .current_dir(&dir)
            .env_clear()
            .env(secret.0, secret.1)
            .envs(env)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{what}: accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr,
            format!("error: configuration: {expected}\n"),
            "{what}"
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
        .args(["check-config", "--config", "missing.toml"])
        .current_dir(&dir)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: configuration: missing.toml: cannot read the file: No such file or directory (os error 2)\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
