//! `upload-tickets doctor` against the real stores the suite starts: what it says each
//! store enforces is what the end-to-end suites see the same store do (`e2e.rs`:
//! forged, expired, oversized, other-key, other-type and unnamed-field forms are refused
//! on every store; `integrity.rs`: PUTs of another length too; unsigned `x-amz-*`
//! headers on a presigned PUT are refused by every one of them, the dev store since
//! `doctor` found it took them), and a store made lax on purpose is caught check by
//! check.

use std::sync::Arc;

use s3_presigned_post::Credentials;
use upload_tickets::config::{Config, Settings, Source};
use upload_tickets::credentials::{CredentialsCache, StaticSource};
use upload_tickets::devstore::Lax;
use upload_tickets::doctor::{Report, Verdict, examine};
use upload_tickets::store::s3::S3Store;

use crate::e2e::{fields_of, post};
use crate::helpers::{SECRET, SECRET_ENV, base_config, spawn_app_with, token};
use crate::store::{BUCKET, Kind, Store, on_every_store};

/// Two tenants on the store's bucket: one with POST tickets, one with PUT tickets.
fn config_for(store: &Store) -> String {
    let tenants = base_config()
        .split("[tenants.acme]")
        .next()
        .unwrap_or_default()
        .replace("http://127.0.0.1:9000", &store.endpoint);
    format!(
        "{tenants}
[tenants.posts]
bucket = \"{BUCKET}\"
max_size = 1048576

[tenants.puts]
bucket = \"{BUCKET}\"
max_size = 1048576
upload_method = \"put\"
"
    )
}

async fn doctor(store: &Store, tenant: Option<&str>) -> Report {
    doctor_with(store, "", tenant).await
}

/// `doctor` with `extra` tenants configured beside the two.
async fn doctor_with(store: &Store, extra: &str, tenant: Option<&str>) -> Report {
    let toml = format!("{}\n{extra}", config_for(store));
    let settings = Settings::load(&Source::Text(toml)).expect("settings load");
    let config = Config::from_settings_with_env(settings, &|name| {
        (name == SECRET_ENV).then(|| SECRET.to_owned())
    })
    .expect("settings are valid");
    let credentials = Arc::new(CredentialsCache::new(Arc::new(StaticSource(
        Credentials::new(store.access_key, store.secret_key, None).expect("test keys"),
    ))));
    let s3 = S3Store::new(&config.s3, Arc::clone(&credentials));
    examine(&config, &credentials, &s3, tenant)
        .await
        .expect("doctor runs")
}

/// The verdict of `check` for `tenant`.
fn verdict(report: &Report, tenant: &str, check: &str) -> Verdict {
    let tenant = report
        .tenants
        .iter()
        .find(|t| t.tenant == tenant)
        .expect("tenant reported");
    tenant
        .findings
        .iter()
        .find(|f| f.check == check)
        .unwrap_or_else(|| panic!("no check {check} in {report:#?}"))
        .verdict
}

const POST_CHECKS: [&str; 7] = [
    "post.accepted",
    "post.signature",
    "post.expiry",
    "post.content-length-range",
    "post.eq",
    "post.starts-with",
    "post.unnamed-field",
];

on_every_store!(what_the_store_enforces_is_what_the_suites_see);

async fn what_the_store_enforces_is_what_the_suites_see(kind: Kind) {
    let store = Store::start(kind).await;
    // The bucket's CORS rule for the configured front end, where the store keeps one.
    let cors = matches!(kind, Kind::Garage | Kind::SeaweedFs);
    if cors {
        store.allow_origin("https://app.example.com").await;
    }
    let report = doctor(&store, None).await;
    let text = report.to_text();
    for tenant in ["posts", "puts"] {
        for check in [
            "credentials",
            "bucket",
            "clock",
            "put.accepted",
            "put.content-length",
            "put.unsigned-header",
            "put.unsigned-copy-source",
            "cleanup",
        ]
        .into_iter()
        .chain(POST_CHECKS)
        {
            assert_eq!(
                verdict(&report, tenant, check),
                Verdict::Pass,
                "{check} on {kind:?}:\n{text}"
            );
        }
    }
    // Nothing of the probes is left in the bucket.
    let left = store
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(upload_tickets::doctor::PROBE_PREFIX)
        .send()
        .await
        .expect("listed");
    assert_eq!(left.key_count(), Some(0), "{text}");
    // If-None-Match: * as the integrity suite sees it (the dev store answers 412).
    let honoured = kind == Kind::Dev || crate::integrity::observed(kind).put_if_none_match;
    let expected = if honoured {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    for tenant in ["posts", "puts"] {
        assert_eq!(
            verdict(&report, tenant, "put.if-none-match"),
            expected,
            "{kind:?}:\n{text}"
        );
    }
    // Wrong checksums of every algorithm, by POST and by PUT: refused everywhere.
    for check in ["post.checksum", "put.checksum"] {
        assert_eq!(
            verdict(&report, "posts", check),
            Verdict::Pass,
            "{kind:?}:\n{text}"
        );
    }
    // Multipart, as the multipart suites run it: started, a part, listed, completed; an
    // abort drops the upload. The dev store (s3s-fs 0.14 inside) lists parts without
    // ETags, which the service copes with and doctor warns of.
    for tenant in ["posts", "puts"] {
        for check in [
            "multipart.start",
            "multipart.part",
            "multipart.complete",
            "multipart.abort",
        ] {
            assert_eq!(
                verdict(&report, tenant, check),
                Verdict::Pass,
                "{check} on {kind:?}:\n{text}"
            );
        }
        let listed = if kind == Kind::Dev {
            Verdict::Warn
        } else {
            Verdict::Pass
        };
        assert_eq!(verdict(&report, tenant, "multipart.list"), listed, "{text}");
        // Wrong part checksums are refused wherever an upload with the algorithm starts;
        // s3s-fs starts none with SHA-1 or SHA-256 (the integrity suite's
        // store_unsupported), a warning as no tenant here requires them.
        let composite = kind == Kind::Dev || crate::integrity::observed(kind).composite_multipart;
        let expected = if composite {
            Verdict::Pass
        } else {
            Verdict::Warn
        };
        assert_eq!(
            verdict(&report, tenant, "multipart.checksum"),
            expected,
            "{kind:?}:\n{text}"
        );
        // No bucket here has a lifecycle rule: a warning, never a failure.
        assert_eq!(
            verdict(&report, tenant, "multipart.lifecycle"),
            Verdict::Warn,
            "{kind:?}:\n{text}"
        );
    }
    // s3s-fs keeps no CORS rule; the dev store answers only its own origins.
    let expected = if cors { Verdict::Pass } else { Verdict::Fail };
    for check in ["cors.preflight", "cors.etag"] {
        assert_eq!(
            verdict(&report, "posts", check),
            expected,
            "{check} on {kind:?}:\n{text}"
        );
    }
    // Both tenants keep prevent_overwrite on and have a front end: a store that ignores
    // If-None-Match, or answers no CORS for it, fails the run.
    assert_eq!(report.failed(), !honoured || !cors, "{text}");
}

/// A lifecycle rule that aborts incomplete uploads is found where it covers the tenant's
/// keys, and not where it covers other keys only; the CORS rule is asked for each of a
/// tenant's own front-end origins (Garage keeps both kinds of rule).
#[tokio::test]
async fn bucket_rules_are_read_for_the_tenants_keys_and_front_ends() {
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
        LifecycleRule, LifecycleRuleFilter,
    };
    let store = Store::start(Kind::Garage).await;
    let rule = |prefix: &str| {
        LifecycleRule::builder()
            .id(format!("abort-{}", prefix.len()))
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(2)
                    .build(),
            )
            .build()
            .expect("a rule")
    };
    let set = |prefix: &'static str| {
        let client = store.client.clone();
        let rule = rule(prefix);
        async move {
            client
                .put_bucket_lifecycle_configuration()
                .bucket(BUCKET)
                .lifecycle_configuration(
                    BucketLifecycleConfiguration::builder()
                        .rules(rule)
                        .build()
                        .expect("a configuration"),
                )
                .send()
                .await
                .expect("Garage keeps lifecycle rules");
        }
    };
    let finding = |report: &Report| {
        report.tenants[0]
            .findings
            .iter()
            .find(|f| f.check == "multipart.lifecycle")
            .cloned()
            .expect("a lifecycle finding")
    };
    // Another prefix than the tenant's keys (posts/...): still a warning, naming it.
    set("archive/").await;
    let other = finding(&doctor(&store, Some("posts")).await);
    assert_eq!(other.verdict, Verdict::Warn, "{other:?}");
    assert!(other.observed.contains("\"archive/\""), "{other:?}");
    set("").await;
    let whole = finding(&doctor(&store, Some("posts")).await);
    assert_eq!(whole.verdict, Verdict::Pass, "{whole:?}");
    assert!(whole.observed.contains("after 2 day(s)"), "{whole:?}");

    // A tenant's own front ends, instead of the server's origins: each is asked for, and
    // the one the bucket's CORS rule leaves out is named.
    store.allow_origin("https://app.example.com").await;
    let extra = format!(
        "[tenants.fronts]\nbucket = \"{BUCKET}\"\nmax_size = 1048576\nfront_end_origins = [\"https://app.example.com\", \"https://admin.example.com\"]\n"
    );
    let report = doctor_with(&store, &extra, Some("fronts")).await;
    let text = report.to_text();
    for check in ["cors.preflight", "cors.etag"] {
        let found = report.tenants[0]
            .findings
            .iter()
            .find(|f| f.check == check)
            .expect("a CORS finding");
        assert_eq!(found.verdict, Verdict::Fail, "{text}");
        assert!(
            found.observed.contains("https://admin.example.com"),
            "{text}"
        );
        assert!(
            !found.observed.contains("https://app.example.com"),
            "{text}"
        );
    }
    assert!(
        text.contains(
            "AllowedOrigins [\"https://app.example.com\", \"https://admin.example.com\"]"
        ),
        "{text}"
    );
    let extra = extra.replace(", \"https://admin.example.com\"", "");
    let report = doctor_with(&store, &extra, Some("fronts")).await;
    assert!(
        report.tenants[0]
            .findings
            .iter()
            .filter(|f| f.check.starts_with("cors."))
            .all(|f| f.verdict == Verdict::Pass),
        "{}",
        report.to_text()
    );
}

#[tokio::test]
async fn a_lax_store_is_caught_check_by_check() {
    let off = |switch: fn(&mut Lax)| {
        let mut lax = Lax::default();
        switch(&mut lax);
        lax
    };
    let switched_off: [(&str, Lax); 5] = [
        ("post.expiry", off(|l| l.expiry = true)),
        ("post.content-length-range", off(|l| l.size = true)),
        ("post.eq", off(|l| l.conditions = true)),
        ("post.unnamed-field", off(|l| l.unnamed_fields = true)),
        ("put.unsigned-header", off(|l| l.unsigned_headers = true)),
    ];
    for (check, lax) in switched_off {
        let store = Store::start_lax(lax).await;
        let report = doctor(&store, Some("posts")).await;
        let text = report.to_text();
        for other in POST_CHECKS
            .into_iter()
            .chain(["put.unsigned-header", "put.unsigned-copy-source"])
        {
            let caught = other == check || (check == "post.eq" && other == "post.starts-with");
            let expected = if caught { Verdict::Fail } else { Verdict::Pass };
            assert_eq!(
                verdict(&report, "posts", other),
                expected,
                "{other} with {lax:?}:\n{text}"
            );
        }
        assert!(text.contains("FAIL"), "{text}");
        assert!(report.failed());
    }
}

/// `upload-tickets doctor ARGS` with a clean environment plus `env`: its exit status,
/// stdout and stderr. Awaited, not blocked on: the dev store answers on this runtime.
async fn run(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
        .arg("doctor")
        .args(args)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(SECRET_ENV, SECRET)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("the binary runs");
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (output.status, text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn the_command_prints_a_table_or_json_and_fails_on_a_gap() {
    let store = Store::start(Kind::S3sFs).await;
    let config = std::env::temp_dir().join(format!("doctor-{}.toml", uuid::Uuid::new_v4()));
    // No front-end origin: the CORS checks are skipped (s3s-fs keeps no CORS rule).
    let no_front_end =
        |toml: String| toml.replace("cors_allowed_origins = [\"https://app.example.com\"]\n", "");
    std::fs::write(&config, no_front_end(config_for(&store))).unwrap();
    let path = config.to_str().unwrap().to_owned();
    let keys = [
        ("AWS_ACCESS_KEY_ID", store.access_key),
        ("AWS_SECRET_ACCESS_KEY", store.secret_key),
    ];
    let (status, stdout, stderr) = run(&["--config", &path, "--json"], &keys).await;
    let report: serde_json::Value = serde_json::from_str(&stdout).expect(&stderr);
    assert!(status.success(), "{stdout}");
    assert_eq!(report["tenants"].as_array().map(Vec::len), Some(2));
    let (status, stdout, _) = run(&["--config", &path, "--tenant", "puts"], &keys).await;
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("tenant puts") && !stdout.contains("tenant posts"),
        "{stdout}"
    );
    let (status, _, stderr) = run(&["--config", &path, "--tenant", "nobody"], &keys).await;
    assert!(!status.success());
    assert!(stderr.contains("no tenant \"nobody\""), "{stderr}");
    drop(store);

    // A store that does not enforce a check the tenant needs: the table says FAIL and
    // the fix, and the command fails.
    let lax = Store::start_lax(Lax {
        size: true,
        ..Lax::default()
    })
    .await;
    std::fs::write(&config, no_front_end(config_for(&lax))).unwrap();
    let keys = [
        ("AWS_ACCESS_KEY_ID", lax.access_key),
        ("AWS_SECRET_ACCESS_KEY", lax.secret_key),
    ];
    let (status, stdout, _) = run(&["--config", &path, "--tenant", "posts"], &keys).await;
    assert!(!status.success(), "{stdout}");
    assert!(
        stdout.contains("FAIL  a POST larger than content-length-range"),
        "{stdout}"
    );
    assert!(stdout.contains("size limits are not enforced"), "{stdout}");
    let _ = std::fs::remove_file(&config);
}

/// `serve` looks at each tenant's bucket and the store's clock at start and logs what it
/// found; a tenant whose bucket is missing is logged, and the service serves anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_the_cheap_checks_at_start_and_starts_anyway() {
    // The dev store answers on this runtime's other thread while the test waits.
    let store = Store::start(Kind::Dev).await;
    let config = format!(
        "{}
[tenants.lost]
bucket = \"no-such-bucket\"
max_size = 1048576
",
        config_for(&store)
    );
    let binary = crate::helpers::Binary::start(&config, &[]);
    let url = format!("http://{}/livez", binary.address);
    assert_eq!(reqwest::get(&url).await.expect("answers").status(), 200);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let lines = binary.stop_and_collect();
    let logged = |tenant: &str, check: &str, message: &str| {
        lines.iter().any(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            line["tenant"] == tenant
                && line["check"] == check
                && line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
        })
    };
    for tenant in ["posts", "puts"] {
        assert!(logged(tenant, "bucket", "store check passed"), "{lines:#?}");
        assert!(logged(tenant, "clock", "store check passed"), "{lines:#?}");
    }
    assert!(logged("lost", "bucket", "store check failed"), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains(crate::helpers::SECRET_KEY)));
}

/// With `server.require_store_checks`, a tenant whose bucket is missing stops the start,
/// named; without it (above) the service starts anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_on_a_failed_check_when_told_to() {
    let store = Store::start(Kind::Dev).await;
    let config = config_for(&store)
        .replace("[server]\n", "[server]\nrequire_store_checks = true\n")
        + "\n[tenants.lost]\nbucket = \"no-such-bucket\"\nmax_size = 1048576\n";
    let path = std::env::temp_dir().join(format!("doctor-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, config).unwrap();
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_upload-tickets"))
            .args(["serve", "--config"])
            .arg(&path)
            .env_clear()
            .env("AWS_ACCESS_KEY_ID", store.access_key)
            .env("AWS_SECRET_ACCESS_KEY", store.secret_key)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(SECRET_ENV, SECRET)
            .env("UPLOAD_TICKETS__SERVER__LISTEN", "127.0.0.1:0")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("it stops by itself")
    .expect("the binary runs");
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("store checks failed (server.require_store_checks is on): lost bucket"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("posts bucket:"),
        "only the failed ones are named: {stderr}"
    );
}

/// A header added to a request: name, value.
type Header = (&'static str, &'static str);

/// A POST ticket form, broken one way.
type Break = fn(&mut Vec<(String, String)>, &mut Vec<u8>);

/// LocalStack checks a policy's expiry, sizes and conditions, but neither the signature
/// nor fields the policy does not name (../shared/s3-test-server.md), nor a PUT's signed
/// length and headers: doctor says so, and real tickets of the service, broken each way,
/// are taken exactly where doctor says.
#[tokio::test]
async fn localstack_is_reported_for_the_checks_it_skips() {
    let store = Store::start(Kind::LocalStack).await;
    let report = doctor(&store, Some("posts")).await;
    let text = report.to_text();
    let credentials = Credentials::new(store.access_key, store.secret_key, None).unwrap();
    let app = spawn_app_with(&config_for(&store), Arc::new(StaticSource(credentials))).await;
    let set = |fields: &mut Vec<(String, String)>, name: &str, value: String| {
        if let Some(field) = fields.iter_mut().find(|(n, _)| n == name) {
            field.1 = value;
        }
    };
    let cases: [(&str, Break); 5] = [
        ("post.signature", |f, _| {
            let forged = "0".repeat(64);
            if let Some(field) = f.iter_mut().find(|(n, _)| n == "X-Amz-Signature") {
                field.1 = forged;
            }
        }),
        ("post.unnamed-field", |f, _| {
            f.insert(0, ("x-amz-meta-owner".to_owned(), "evil".to_owned()));
        }),
        ("post.content-length-range", |_, file| file.push(b'x')),
        ("post.eq", |f, _| {
            if let Some(field) = f.iter_mut().find(|(n, _)| n == "key") {
                field.1.push_str("-other");
            }
        }),
        ("post.expiry", |_, _| {}),
    ];
    for (check, break_it) in cases {
        let expires_in = if check == "post.expiry" { 1 } else { 600 };
        let body = serde_json::json!({"filename": "a.txt", "content_type": "text/plain", "size": 100, "expires_in": expires_in});
        let response = app.upload(&token("posts", "user-1"), &body).await;
        assert_eq!(response.status(), 201);
        let ticket: serde_json::Value = response.json().await.unwrap();
        let mut fields = fields_of(&ticket);
        set(&mut fields, "Content-Type", "text/plain".to_owned());
        let mut file = vec![b'x'; 100];
        break_it(&mut fields, &mut file);
        if check == "post.expiry" {
            tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        }
        let url = ticket["url"].as_str().unwrap();
        let answer = post(url, &fields, file, "text/plain").await;
        let taken = answer.status().is_success();
        let expected = if taken { Verdict::Fail } else { Verdict::Pass };
        assert_eq!(
            verdict(&report, "posts", check),
            expected,
            "{check}: LocalStack answered {}:\n{text}",
            answer.status()
        );
    }
    // PUT tickets of the service, sent one byte longer or with an unsigned header.
    let puts = doctor(&store, Some("puts")).await;
    let cases: [(&str, &[u8], Option<Header>); 3] = [
        ("put.accepted", b"", None),
        ("put.content-length", b"!", None),
        (
            "put.unsigned-header",
            b"",
            Some(("x-amz-meta-owner", "evil")),
        ),
    ];
    for (check, more, header) in cases {
        let body =
            serde_json::json!({"filename": "a.txt", "content_type": "text/plain", "size": 100});
        let response = app.upload(&token("puts", "user-1"), &body).await;
        assert_eq!(response.status(), 201);
        let ticket: serde_json::Value = response.json().await.unwrap();
        let mut request = reqwest::Client::new().put(ticket["url"].as_str().unwrap());
        for (name, value) in ticket["headers"].as_object().into_iter().flatten() {
            if name != "content-length" {
                request = request.header(name, value.as_str().unwrap());
            }
        }
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let bytes = [&[b'x'; 100][..], more].concat();
        let answer = request
            .body(bytes)
            .send()
            .await
            .expect("LocalStack answers");
        let taken = answer.status().is_success();
        let expected = if taken == (check == "put.accepted") {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        assert_eq!(
            verdict(&puts, "puts", check),
            expected,
            "{check}: LocalStack answered {}:\n{}",
            answer.status(),
            puts.to_text()
        );
    }
    // What LocalStack is known to skip, and to check.
    for (check, expected) in [
        ("post.accepted", Verdict::Pass),
        ("post.signature", Verdict::Fail),
        ("post.unnamed-field", Verdict::Fail),
        ("post.expiry", Verdict::Pass),
        ("post.content-length-range", Verdict::Pass),
        ("post.eq", Verdict::Pass),
        ("post.starts-with", Verdict::Pass),
    ] {
        assert_eq!(
            verdict(&report, "posts", check),
            expected,
            "{check}:\n{text}"
        );
    }
    assert!(
        text.contains("FAIL  a POST with a forged signature is refused"),
        "{text}"
    );
    assert!(text.contains("anyone can upload anything"), "{text}");
    assert!(report.failed());
}

/// The stores of the README's matrix, as its columns name them.
const MATRIX: [(Kind, &str); 5] = [
    (Kind::S3sFs, "s3s-fs 0.17.0"),
    (Kind::Garage, "Garage 2.5.0"),
    (Kind::SeaweedFs, "SeaweedFS 4.48"),
    (Kind::LocalStack, "LocalStack 4.13.1"),
    (Kind::Dev, "dev store"),
];
const MATRIX_BEGIN: &str = "<!-- store-matrix:begin -->\n";
const MATRIX_END: &str = "<!-- store-matrix:end -->";
/// The front end of the matrix: a page on this machine, as the dev store allows.
const MATRIX_ORIGIN: &str = "http://localhost:5173";

/// The README's store matrix is `doctor --json` on every store, rendered: the test fails
/// when they differ, and `UPDATE_STORE_MATRIX=1` (scripts/store-matrix.sh) writes it.
#[tokio::test]
async fn the_readmes_store_matrix_is_what_doctor_says() {
    let mut reports = Vec::new();
    for (kind, name) in MATRIX {
        let store = Store::start(kind).await;
        keep_rules(&store).await;
        let config = std::env::temp_dir().join(format!("doctor-{}.toml", uuid::Uuid::new_v4()));
        let toml = config_for(&store).replace(
            "cors_allowed_origins = [\"https://app.example.com\"]",
            &format!("cors_allowed_origins = [\"{MATRIX_ORIGIN}\"]"),
        );
        std::fs::write(&config, toml).unwrap();
        let keys = [
            ("AWS_ACCESS_KEY_ID", store.access_key),
            ("AWS_SECRET_ACCESS_KEY", store.secret_key),
        ];
        let path = config.to_str().unwrap().to_owned();
        let (_, stdout, stderr) =
            run(&["--config", &path, "--tenant", "posts", "--json"], &keys).await;
        let _ = std::fs::remove_file(&config);
        let report: serde_json::Value = serde_json::from_str(&stdout).expect(&stderr);
        reports.push((name, report));
    }
    let matrix = render_matrix(&reports);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (before, rest) = readme
        .split_once(MATRIX_BEGIN)
        .expect("the README has the matrix's begin mark");
    let (_, after) = rest.split_once(MATRIX_END).expect("and its end mark");
    let wanted = format!("{before}{MATRIX_BEGIN}{matrix}{MATRIX_END}{after}");
    if std::env::var_os("UPDATE_STORE_MATRIX").is_some() {
        std::fs::write(&path, wanted).unwrap();
    } else {
        assert!(
            readme == wanted,
            "the README's store matrix is not what doctor says: run scripts/store-matrix.sh\n{matrix}"
        );
    }
}

/// The bucket rules an operator sets, on stores that keep them: CORS for the front end,
/// a lifecycle rule aborting abandoned uploads. A store that refuses one shows it.
async fn keep_rules(store: &Store) {
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, CorsConfiguration, CorsRule,
        ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    };
    let cors = CorsRule::builder()
        .allowed_origins(MATRIX_ORIGIN)
        .allowed_methods("POST")
        .allowed_methods("PUT")
        .allowed_headers("*")
        .expose_headers("ETag")
        .build()
        .unwrap();
    let _ = store
        .client
        .put_bucket_cors()
        .bucket(BUCKET)
        .cors_configuration(
            CorsConfiguration::builder()
                .cors_rules(cors)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let abort = LifecycleRule::builder()
        .id("abort-abandoned-uploads")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(1)
                .build(),
        )
        .build()
        .unwrap();
    let _ = store
        .client
        .put_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(abort)
                .build()
                .unwrap(),
        )
        .send()
        .await;
}

/// What the store does, one row per check (not the machine's: credentials, bucket,
/// clock, clean-up), one column per store; then what to do where it falls short.
fn render_matrix(reports: &[(&str, serde_json::Value)]) -> String {
    let findings = |report: &serde_json::Value| -> Vec<serde_json::Value> {
        report["tenants"][0]["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| {
                !matches!(
                    f["check"].as_str(),
                    Some("credentials" | "bucket" | "clock" | "cleanup")
                )
            })
            .collect()
    };
    let mut out = String::from("| the store... |");
    for (name, _) in reports {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(reports.len()));
    out.push('\n');
    let mut notes = String::new();
    for (row, first) in findings(&reports[0].1).iter().enumerate() {
        let title = first["title"].as_str().unwrap_or_default();
        out.push_str(&format!(
            "| {title} (`{}`) |",
            first["check"].as_str().unwrap_or_default()
        ));
        for (name, report) in reports {
            let finding = &findings(report)[row];
            assert_eq!(
                finding["check"], first["check"],
                "every report has the same checks"
            );
            let observed = finding["observed"].as_str().unwrap_or_default();
            let short = observed
                .strip_prefix("refused: ")
                .or_else(|| observed.strip_prefix("accepted: "))
                .unwrap_or(observed);
            let verdict = match finding["verdict"].as_str() {
                Some("pass") => "yes",
                Some("fail") => "**no**",
                Some("warn") => "partly",
                _ => "not probed",
            };
            if short.len() <= 32 && !short.contains("http") {
                out.push_str(&format!(" {verdict} ({short}) |"));
            } else {
                out.push_str(&format!(" {verdict} |"));
            }
            if let (Some("fail" | "warn"), Some(fix)) =
                (finding["verdict"].as_str(), finding["fix"].as_str())
            {
                notes.push_str(&format!("- {name}, {title}: {fix}\n"));
            }
        }
        out.push('\n');
    }
    format!("{out}\nWhere a store falls short, what to do:\n\n{notes}")
}
