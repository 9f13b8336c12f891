//! The content check on arbitrary bytes: what an upload's first bytes are against its
//! declared type. Input: the declared type, a newline, the bytes.
//!
//! Invariants: nothing panics; markup a browser runs (what `infer` calls HTML) passes
//! only declared `text/html` for a tenant that names it; bytes that pass as a type a
//! signature tells (`image/png`, `application/pdf`) are that type by the signatures.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use upload_tickets::policy::{TenantRules, TenantSettings, content};

/// A tenant of images and PDFs (wildcards), and one that names HTML.
static RULES: LazyLock<[TenantRules; 2]> = LazyLock::new(|| {
    let rules = |types: serde_json::Value| {
        let settings: TenantSettings = serde_json::from_value(json!({
            "bucket": "acme-uploads",
            "max_size": 1000,
            "content_types": types,
        }))
        .expect("fuzz tenant settings");
        TenantRules::from_settings("acme", &settings).expect("fuzz tenant rules")
    };
    [
        rules(json!(["image/*", "application/pdf"])),
        rules(json!(["text/html", "image/svg+xml"])),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(declared) = std::str::from_utf8(&data[..newline]) else {
        return;
    };
    let head = &data[newline + 1..];
    for rules in RULES.iter() {
        for declared in [Some(declared), None] {
            let verdict = content::mismatch(rules, declared, head);
            if verdict.is_none() && infer::text::is_html(head) {
                let essence = declared.and_then(|d| d.parse::<mime::Mime>().ok());
                let essence = essence.as_ref().map(mime::Mime::essence_str);
                assert_eq!(essence, Some("text/html"), "HTML passed as {declared:?}");
                assert!(rules.names_type("text/html"), "HTML passed a tenant that does not name it");
            }
            if verdict.is_none()
                && let Some(d) = declared.and_then(|d| d.parse::<mime::Mime>().ok())
                && infer::is_mime_supported(d.essence_str())
                && !matches!(d.essence_str(), "application/octet-stream")
            {
                assert!(infer::is_mime(head, d.essence_str()), "{d} passed without its signature");
            }
        }
    }
});
