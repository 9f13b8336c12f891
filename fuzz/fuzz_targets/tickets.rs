//! The request path without HTTP: the JSON body parser, the tenant rules and the
//! presign core, on arbitrary input. Input: the token's subject, a newline, the body.
//!
//! Invariants: nothing panics; a refusal is a typed error; a ticket's key lies inside
//! the tenant's prefix, with exactly the template's segments and no `.` or `..`; every
//! returned field is pinned by an exact condition of the signed policy.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use upload_tickets::policy::{self, TenantRules, TenantSettings, UploadRequest};
use upload_tickets::presign::{Addressing, Credentials, Presigner, Region};

static RULES: LazyLock<TenantRules> = LazyLock::new(|| {
    let settings: TenantSettings = serde_json::from_value(json!({
        "bucket": "acme-uploads",
        "key_template": "{tenant}/{sub}/{uuid}/{filename}",
        "min_size": 1,
        "max_size": 26_214_400,
        "content_types": ["image/*", "application/pdf"],
        "metadata_keys": ["album", "purpose"],
        "content_disposition": "attachment",
        "acl": "private",
        "success_action_status": 201,
        "tagging": {"source": "fuzz"},
    }))
    .expect("fuzz tenant settings");
    TenantRules::from_settings("acme", &settings).expect("fuzz tenant rules")
});

static PRESIGNER: LazyLock<Presigner> = LazyLock::new(|| {
    Presigner::new(Region::new("us-east-1").expect("region"), Addressing::aws()).expect("presigner")
});

static CREDENTIALS: LazyLock<Credentials> = LazyLock::new(|| {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some("FwoGZXIvYXdzEXAMPLE".into()),
    )
    .expect("credentials")
});

const UUID: &str = "0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f";

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(subject) = std::str::from_utf8(&data[..newline]) else {
        return;
    };
    let Ok(request) = serde_json::from_slice::<UploadRequest>(&data[newline + 1..]) else {
        return;
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_795_608_000);
    let Ok(plan) = policy::plan(&RULES, subject, &request, now, UUID) else {
        return;
    };

    let segments: Vec<&str> = plan.key.split('/').collect();
    assert!(
        plan.key.starts_with(RULES.key_prefix()),
        "key {:?} left the prefix",
        plan.key
    );
    assert_eq!(segments.len(), 4, "key {:?}", plan.key);
    assert_eq!(segments[0], "acme");
    assert_eq!(segments[2], UUID);
    assert!(
        segments
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != ".."),
        "key {:?}",
        plan.key
    );

    let post = match PRESIGNER.presign(&CREDENTIALS, &plan.request, now) {
        Ok(post) => post,
        // A refusal of the core is typed; only a panic would be a bug here.
        Err(_) => return,
    };
    let policy: Value = serde_json::from_str(post.policy().as_str()).expect("the policy is JSON");
    let conditions = policy["conditions"].as_array().expect("conditions");
    for (name, value) in post.fields() {
        if name == "Policy" || name == "X-Amz-Signature" {
            continue;
        }
        assert!(
            conditions.contains(&json!({ name: value })),
            "field {name} is not pinned"
        );
    }
});
