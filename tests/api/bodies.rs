//! Whatever a caller sends, the answer is never a 5xx: arbitrary bodies (and Companion's
//! query strings) on every route that turns them into a ticket, in process on the memory
//! store: `POST /uploads` for a POST and a PUT tenant, `/uploads/multipart`, Uppy 6's
//! `/uploads/uppy/sign`, Companion's `/s3/params` and `/s3/multipart`. A 5xx there is
//! the service blaming itself for the caller's input (metadata with a trailing space
//! once was one).

use std::sync::OnceLock;

use axum::http::Method;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::fake_store::{InProcess, in_process};
use crate::helpers::token;

/// One service and one runtime for all cases: building them per case would be slow.
fn service() -> &'static (tokio::runtime::Runtime, InProcess) {
    static SERVICE: OnceLock<(tokio::runtime::Runtime, InProcess)> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime.block_on(in_process());
        (runtime, app)
    })
}

/// Text as callers send it: plausible, with spaces at either end, control characters,
/// long, or anything at all.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9 ._/-]{0,24}",
        1 => "[ \t]{0,2}[a-z]{0,8}[ \t]{0,2}",
        1 => prop::sample::select(vec![
            "text/plain".to_owned(), "image/png".to_owned(), "video/mp4".to_owned(),
            "application/octet-stream".to_owned(), "text/plain; charset=utf-8".to_owned(),
            "".to_owned(), "..".to_owned(), "a/../../b".to_owned(), "${filename}".to_owned(),
            "x-amz-meta-album".to_owned(), "album".to_owned(), " album".to_owned(),
        ]),
        1 => any::<String>(),
        1 => "[\\x00-\\x20\\x7f]{1,4}",
        1 => "a{1,3000}",
    ]
}

/// Any JSON value, shallow.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(Value::String),
        2 => prop_oneof![
            Just(0u64), Just(1u64), Just(11u64), Just(5_242_881u64), Just(u64::MAX),
            any::<u64>(),
        ].prop_map(|n| json!(n)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|n| json!(n)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => prop::collection::btree_map(text(), text(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())),
        1 => prop::collection::vec(text(), 0..3).prop_map(|v| json!(v)),
    ]
}

/// A body made of the fields a route knows (and others), with any values.
fn body(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        6 => prop::sample::select(fields.to_vec()).prop_map(str::to_owned),
        1 => text(),
    ];
    prop::collection::btree_map(name, value(), 0..8).prop_map(|m| Value::Object(Map::from_iter(m)))
}

const UPLOAD_FIELDS: &[&str] = &[
    "filename",
    "content_type",
    "size",
    "metadata",
    "expires_in",
    "checksum",
];
const SIGN_FIELDS: &[&str] = &[
    "method",
    "key",
    "uploadId",
    "partNumber",
    "expiresIn",
    "contentType",
    "file",
];
const COMPANION_FIELDS: &[&str] = &["filename", "type", "metadata"];

/// A checksum declaration, or a file as the recipe sends it, now and then in place.
fn shaped(mut body: Value, file: Option<Value>, checksum: Option<Value>) -> Value {
    if let Value::Object(map) = &mut body {
        if let Some(file) = file {
            map.insert("file".to_owned(), file);
        }
        if let Some(checksum) = checksum {
            map.insert("checksum".to_owned(), checksum);
        }
    }
    body
}

/// Metadata as callers send it: mostly keys the tenants allow, any values.
fn metadata() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => prop::sample::select(vec!["album", "Album", "purpose"]).prop_map(str::to_owned),
        1 => text(),
    ];
    let value = prop_oneof![2 => "[ \t]?[a-z]{1,8}[ \t]?", 1 => text()];
    prop::collection::btree_map(key, value, 0..3)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
}

/// A body the rules mostly accept (so that it reaches signing), with any metadata,
/// sometimes an odd value in place of one field.
fn plausible_upload() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9 ._-]{1,20}",
        prop::sample::select(vec!["text/plain", "text/plain", "image/png", "video/mp4"]),
        prop_oneof![1 => Just(None), 3 => (1u64..2000).prop_map(Some)],
        metadata(),
        prop::option::weighted(0.15, (prop::sample::select(UPLOAD_FIELDS), value())),
    )
        .prop_map(|(filename, kind, size, metadata, odd)| {
            let mut body =
                json!({"filename": filename, "content_type": kind, "metadata": metadata});
            if let Some(size) = size {
                body["size"] = json!(size);
            }
            if let Some((name, value)) = odd {
                body[name] = value;
            }
            body
        })
}

fn file() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(
        (text(), text(), prop::option::of(any::<u64>()), prop::option::of(value()))
            .prop_map(|(name, kind, size, checksum)| {
                json!({"name": name, "type": kind, "size": size, "checksum": checksum})
            }),
    )
}

fn checksum() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(
        (
            prop::sample::select(vec!["SHA256", "sha1", "CRC32", "CRC64NVME", "MD5", ""]),
            prop::option::of(text()),
        )
            .prop_map(|(algorithm, value)| json!({"algorithm": algorithm, "value": value})),
    )
}

/// Calls `path` as `tenant`'s user and asserts the answer is not a 5xx.
fn no_5xx(method: Method, path: &str, tenant: &str, body: Value) -> Result<(), TestCaseError> {
    let (runtime, app) = service();
    // A new user each time: the limits of one would soon answer every case with a 429.
    let caller = token(tenant, &format!("user-{}", uuid::Uuid::new_v4()));
    let (status, answer) = runtime.block_on(app.call(method, path, &caller, body.clone()));
    prop_assert!(
        status < 500,
        "{path} as {tenant}: {status} {answer} for {body}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn plausible_upload_bodies_never_get_a_5xx(
        body in plausible_upload(),
        tenant in prop::sample::select(vec!["acme", "putter", "archive", "big"]),
        route in prop::sample::select(vec!["/uploads", "/uploads/multipart"]),
    ) {
        no_5xx(Method::POST, route, tenant, body)?;
    }

    #[test]
    fn uppy_6_puts_of_plausible_files_never_get_a_5xx(
        body in plausible_upload(),
        content_type in prop::option::of(text()),
        tenant in prop::sample::select(vec!["acme", "putter", "archive", "big"]),
    ) {
        let file = json!({"name": body["filename"], "type": body["content_type"], "size": body["size"]});
        let mut sign = json!({"method": "PUT", "key": "uppy-id", "file": file});
        if let Some(content_type) = content_type {
            sign["contentType"] = json!(content_type);
        }
        no_5xx(Method::POST, "/uploads/uppy/sign", tenant, sign)?;
    }

    #[test]
    fn upload_bodies_never_get_a_5xx(
        body in body(UPLOAD_FIELDS),
        checksum in checksum(),
        tenant in prop::sample::select(vec!["acme", "putter", "archive", "big"]),
    ) {
        no_5xx(Method::POST, "/uploads", tenant, shaped(body, None, checksum))?;
    }

    #[test]
    fn multipart_starts_never_get_a_5xx(body in body(UPLOAD_FIELDS), checksum in checksum()) {
        no_5xx(Method::POST, "/uploads/multipart", "big", shaped(body, None, checksum))?;
    }

    #[test]
    fn uppy_6_sign_bodies_never_get_a_5xx(
        body in body(SIGN_FIELDS),
        file in file(),
        tenant in prop::sample::select(vec!["acme", "putter", "big"]),
    ) {
        no_5xx(Method::POST, "/uploads/uppy/sign", tenant, shaped(body, file, None))?;
    }

    #[test]
    fn companion_bodies_and_queries_never_get_a_5xx(
        body in body(COMPANION_FIELDS),
        query in prop::collection::vec((text(), text()), 0..6),
        tenant in prop::sample::select(vec!["acme", "putter", "big"]),
    ) {
        no_5xx(Method::POST, "/s3/multipart", tenant, body)?;
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        no_5xx(Method::GET, &format!("/s3/params?{query}"), tenant, Value::Null)?;
    }
}

/// The bodies of the review, kept as plain cases: metadata with a space at either end.
#[test]
fn metadata_with_a_space_at_either_end_is_a_422_naming_it() {
    let (runtime, app) = service();
    for (tenant, route) in [
        ("putter", "/uploads"),
        ("acme", "/uploads"),
        ("big", "/uploads/multipart"),
    ] {
        for value in [" lead", "trail "] {
            let kind = if tenant == "acme" {
                "image/png"
            } else {
                "text/plain"
            };
            let body = json!({"filename": "a.txt", "content_type": kind, "size": 5,
                              "metadata": {"album": value}});
            let (status, answer) =
                runtime.block_on(app.post(route, &token(tenant, "user-1"), body));
            assert_eq!(
                (status, answer["code"].as_str()),
                (422, Some("metadata_not_allowed")),
                "{answer}"
            );
            assert!(
                answer["detail"].as_str().unwrap().contains("album"),
                "{answer}"
            );
        }
    }
}
