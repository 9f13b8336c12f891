use std::time::UNIX_EPOCH;

use super::*;

const UUID: &str = "0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f";

fn settings() -> TenantSettings {
    toml::from_str(
        r#"
        bucket = "acme-uploads"
        key_template = "{tenant}/{sub}/{uuid}/{filename}"
        min_size = 1
        max_size = 26214400
        content_types = ["image/*", "application/pdf"]
        metadata_keys = ["album", "Purpose"]
        content_disposition = "attachment"
        acl = "private"
        success_action_status = 201
        tagging = { project = "a&b" }
        "#,
    )
    .unwrap()
}

fn rules() -> TenantRules {
    TenantRules::from_settings("acme", &settings()).unwrap()
}

fn request() -> UploadRequest {
    UploadRequest {
        filename: "holiday photo.jpg".to_owned(),
        content_type: Some("image/jpeg".to_owned()),
        ..UploadRequest::default()
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_608_000) // 2026-11-25T08:00:00Z
}

#[test]
fn a_plan_uses_the_template_and_pins_every_rule() {
    let plan = plan(&rules(), "user-42", &request(), now(), UUID).unwrap();
    assert_eq!(
        plan.object.key,
        format!("acme/user-42/{UUID}/holiday_photo.jpg")
    );
    assert_eq!(
        (plan.object.min_size, plan.object.max_size),
        (1, 26_214_400)
    );
    let fields: Vec<(&str, &str)> = plan.request.fields().collect();
    assert_eq!(
        fields,
        vec![
            ("Content-Type", "image/jpeg"),
            (
                "Content-Disposition",
                "attachment; filename=\"holiday_photo.jpg\"; filename*=UTF-8''holiday_photo.jpg"
            ),
            ("acl", "private"),
            (
                "tagging",
                "<Tagging><TagSet><Tag><Key>project</Key><Value>a&amp;b</Value></Tag></TagSet></Tagging>"
            ),
            ("success_action_status", "201"),
        ]
    );
    assert_eq!(plan.request.validity().get(), Duration::from_secs(300));
}

#[test]
fn a_declared_size_is_pinned_exactly_and_bounded() {
    let rules = rules();
    let sized = |size| UploadRequest {
        size: Some(size),
        ..request()
    };
    let p = plan(&rules, "u", &sized(2048), now(), UUID).unwrap();
    assert_eq!((p.object.min_size, p.object.max_size), (2048, 2048));
    assert!(matches!(
        plan(&rules, "u", &sized(0), now(), UUID),
        Err(PolicyError::FileTooSmall { .. })
    ));
    assert!(matches!(
        plan(&rules, "u", &sized(26_214_401), now(), UUID),
        Err(PolicyError::FileTooLarge { .. })
    ));
    assert!(matches!(
        plan(&rules, "u", &sized(u64::MAX), now(), UUID),
        Err(PolicyError::FileTooLarge { .. })
    ));
}

#[test]
fn content_types_are_matched_against_the_patterns() {
    let rules = rules();
    let typed = |t: Option<&str>| UploadRequest {
        content_type: t.map(str::to_owned),
        ..request()
    };
    assert!(plan(&rules, "u", &typed(Some("application/pdf")), now(), UUID).is_ok());
    assert!(plan(&rules, "u", &typed(Some("IMAGE/PNG")), now(), UUID).is_ok());
    assert!(matches!(
        plan(&rules, "u", &typed(Some("text/html")), now(), UUID),
        Err(PolicyError::ContentTypeNotAllowed { .. })
    ));
    assert!(matches!(
        plan(&rules, "u", &typed(None), now(), UUID),
        Err(PolicyError::ContentTypeRequired(_))
    ));
    assert!(matches!(
        plan(&rules, "u", &typed(Some("not a type")), now(), UUID),
        Err(PolicyError::ContentTypeInvalid(_))
    ));
    assert!(matches!(
        plan(&rules, "u", &typed(Some("image/*")), now(), UUID),
        Err(PolicyError::ContentTypeInvalid(_))
    ));
}

#[test]
fn metadata_is_allow_listed_case_insensitively_and_bounded() {
    let rules = rules();
    let meta = |pairs: &[(&str, &str)]| UploadRequest {
        metadata: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..request()
    };
    let p = plan(
        &rules,
        "u",
        &meta(&[("ALBUM", "2026"), ("purpose", "x")]),
        now(),
        UUID,
    )
    .unwrap();
    let names: Vec<&str> = p.request.fields().map(|(n, _)| n).collect();
    assert!(names.contains(&"x-amz-meta-album"));
    assert!(names.contains(&"x-amz-meta-purpose"));
    for bad in [
        meta(&[("owner", "x")]),
        meta(&[("album", &"x".repeat(257))]),
        meta(&[("album", "a\nb")]),
        meta(&[("album", "1"), ("Album", "2")]),
    ] {
        assert!(
            matches!(
                plan(&rules, "u", &bad, now(), UUID),
                Err(PolicyError::MetadataNotAllowed(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn expiry_defaults_and_is_capped() {
    let rules = rules();
    let exp = |s| UploadRequest {
        expires_in: Some(s),
        ..request()
    };
    assert_eq!(
        plan(&rules, "u", &exp(120), now(), UUID)
            .unwrap()
            .request
            .validity()
            .get(),
        Duration::from_secs(120)
    );
    assert_eq!(
        plan(&rules, "u", &exp(u64::MAX), now(), UUID)
            .unwrap()
            .request
            .validity()
            .get(),
        Duration::from_secs(3600)
    );
    assert_eq!(
        plan(&rules, "u", &exp(0), now(), UUID).unwrap_err(),
        PolicyError::InvalidExpiry
    );
}

#[test]
fn no_subject_or_filename_leaves_the_tenant_prefix() {
    let rules = rules();
    for (sub, filename) in [
        ("../other", "x.jpg"),
        ("a/../../b", "../../../other-tenant/x.jpg"),
        ("${filename}", "${filename}"),
        ("$key", "%2F..%2Fx"),
        ("\u{202E}evil", "\u{0}\n/\\.jpg"),
        (&"s".repeat(128), &"f".repeat(5000)),
    ] {
        let req = UploadRequest {
            filename: filename.to_owned(),
            ..request()
        };
        if let Ok(p) = plan(&rules, sub, &req, now(), UUID) {
            assert!(
                p.object.key.as_str().starts_with("acme/"),
                "{}",
                p.object.key
            );
            let segments: Vec<&str> = p.object.key.as_str().split('/').collect();
            assert_eq!(segments.len(), 4, "{}", p.object.key);
            assert!(
                !segments.iter().any(|s| *s == ".." || s.is_empty()),
                "{}",
                p.object.key
            );
        }
    }
    assert_eq!(
        plan(&rules, "", &request(), now(), UUID).unwrap_err(),
        PolicyError::UnusableSubject
    );
    let empty = UploadRequest {
        filename: "../..".to_owned(),
        ..request()
    };
    assert_eq!(
        plan(&rules, "u", &empty, now(), UUID).unwrap_err(),
        PolicyError::InvalidFilename
    );
}

#[test]
fn date_and_ext_placeholders_render() {
    let mut s = settings();
    s.key_template = "{tenant}/{date}/{uuid}.{ext}".to_owned();
    s.keys_shared_by_users = true;
    let rules = TenantRules::from_settings("acme", &s).unwrap();
    let p = plan(&rules, "u", &request(), now(), UUID).unwrap();
    assert_eq!(p.object.key, format!("acme/2026/11/25/{UUID}.jpg"));
}

#[test]
fn content_disposition_carries_the_original_name_safely() {
    let req = UploadRequest {
        filename: "résumé \"final\".pdf".to_owned(),
        content_type: Some("application/pdf".to_owned()),
        ..request()
    };
    let p = plan(&rules(), "u", &req, now(), UUID).unwrap();
    let cd = p
        .request
        .fields()
        .find(|(n, _)| *n == "Content-Disposition")
        .unwrap()
        .1;
    assert_eq!(
        cd,
        "attachment; filename=\"r_sum__final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9_final_.pdf"
    );
}

#[test]
fn bad_settings_name_the_setting() {
    let check = |edit: &dyn Fn(&mut TenantSettings), field: &str| {
        let mut s = settings();
        edit(&mut s);
        let error = TenantRules::from_settings("acme", &s).unwrap_err();
        assert_eq!(error.setting, field, "{}", error.reason);
    };
    check(&|s| s.max_size = MAX_OBJECT_SIZE + 1, "max_size");
    check(
        &|s| s.multipart_part_size = MIN_PART_SIZE - 1,
        "multipart_part_size",
    );
    check(
        &|s| s.multipart_part_size = MAX_PART_SIZE + 1,
        "multipart_part_size",
    );
    check(&|s| s.multipart_expires_in = 0, "multipart_expires_in");
    check(
        &|s| s.multipart_expires_in = 604_801,
        "multipart_expires_in",
    );
    check(&|s| s.min_size = s.max_size + 1, "min_size");
    check(
        &|s| s.key_template = "{tenant}/{nope}".to_owned(),
        "key_template",
    );
    check(&|s| s.bucket = "no".to_owned(), "bucket");
    check(
        &|s| s.content_types = vec!["image".to_owned()],
        "content_types",
    );
    check(&|s| s.max_expires_in = 604_801, "max_expires_in");
    check(&|s| s.default_expires_in = 7200, "default_expires_in");
    check(&|s| s.acl = Some("everyone".to_owned()), "acl");
    check(
        &|s| s.success_action_status = Some(302),
        "success_action_status",
    );
    check(
        &|s| s.sse_kms_key_id = Some("k".to_owned()),
        "sse_kms_key_id",
    );
    check(
        &|s| s.content_disposition = Some("download".to_owned()),
        "content_disposition",
    );
    check(
        &|s| s.metadata_keys = vec!["a b".to_owned()],
        "metadata_keys",
    );
    assert!(TenantRules::from_settings("Acme", &settings()).is_err());
}

fn big_rules() -> TenantRules {
    let mut s = settings();
    s.max_size = MAX_OBJECT_SIZE;
    s.metadata_keys = vec!["album".to_owned()];
    TenantRules::from_settings("acme", &s).unwrap()
}

fn sized(size: u64) -> UploadRequest {
    UploadRequest {
        size: Some(size),
        ..request()
    }
}

#[test]
fn multipart_plans_fit_s3s_part_limits() {
    let rules = big_rules();
    let plan_of = |size| multipart_plan(&rules, "u", &sized(size), now(), UUID);
    const MIB: u64 = 1024 * 1024;
    // Small files: the tenant's part size (16 MiB by default).
    let p = plan_of(40 * MIB).unwrap();
    assert_eq!((p.part_size, p.part_count), (16 * MIB, 3));
    assert_eq!(plan_of(1).unwrap().part_count, 1);
    assert_eq!(plan_of(16 * MIB).unwrap().part_count, 1);
    assert_eq!(plan_of(16 * MIB + 1).unwrap().part_count, 2);
    // Large files: parts grow (whole MiB) so that no upload needs over 10 000 parts.
    for size in [200 * 1024 * MIB, MAX_OBJECT_SIZE - 1, MAX_OBJECT_SIZE] {
        let p = plan_of(size).unwrap();
        assert!(p.part_count <= MAX_PARTS, "{size}");
        assert!(
            p.part_size <= MAX_PART_SIZE && p.part_size % MIB == 0,
            "{size}"
        );
        assert!(u64::from(p.part_count) * p.part_size >= size);
        assert!(u64::from(p.part_count - 1) * p.part_size < size);
    }
    assert!(matches!(
        plan_of(MAX_OBJECT_SIZE + 1),
        Err(PolicyError::FileTooLarge { .. })
    ));
    assert!(matches!(plan_of(0), Err(PolicyError::FileTooSmall { .. })));
    assert!(matches!(
        multipart_plan(&rules, "u", &request(), now(), UUID),
        Err(PolicyError::SizeRequired(_))
    ));
    // The multipart deadline caps the part URLs' validity.
    let mut s = settings();
    s.multipart_expires_in = 60;
    let short = TenantRules::from_settings("acme", &s).unwrap();
    let p = multipart_plan(&short, "u", &sized(10), now(), UUID).unwrap();
    assert_eq!(p.object.expires_in.get(), Duration::from_secs(60));
}

#[test]
fn single_requests_stop_at_5_gib_and_point_to_multipart() {
    let big = big_rules();
    assert_eq!(
        plan(&big, "u", &sized(MAX_POST_OBJECT_SIZE + 1), now(), UUID).unwrap_err(),
        PolicyError::NeedsMultipart {
            size: MAX_POST_OBJECT_SIZE + 1
        }
    );
    // Without a size, the POST range stops at 5 GiB even for a 5 TiB tenant.
    let p = plan(&big, "u", &request(), now(), UUID).unwrap();
    assert_eq!(p.object.max_size, MAX_POST_OBJECT_SIZE);
    // Over the tenant's own maximum it is simply too large.
    assert!(matches!(
        plan(&rules(), "u", &sized(MAX_POST_OBJECT_SIZE + 1), now(), UUID),
        Err(PolicyError::FileTooLarge { .. })
    ));
}

#[test]
fn put_plans_sign_the_exact_length_and_every_fixed_setting_as_headers() {
    let request = UploadRequest {
        metadata: BTreeMap::from([("Album".to_owned(), "2026".to_owned())]),
        ..sized(2048)
    };
    let plan = put_plan(&rules(), "u", &request, now(), UUID).unwrap();
    let headers = plan.object.headers(&rules());
    assert_eq!(
        headers,
        vec![
            ("content-type".to_owned(), "image/jpeg".to_owned()),
            (
                "content-disposition".to_owned(),
                "attachment; filename=\"holiday_photo.jpg\"; filename*=UTF-8''holiday_photo.jpg"
                    .to_owned()
            ),
            ("x-amz-meta-album".to_owned(), "2026".to_owned()),
            ("x-amz-acl".to_owned(), "private".to_owned()),
            ("x-amz-tagging".to_owned(), "project=a%26b".to_owned()),
        ]
    );
    assert_eq!(plan.object.key, format!("acme/u/{UUID}/holiday_photo.jpg"));
    assert!(matches!(
        put_plan(&rules(), "u", &request_without_size(), now(), UUID),
        Err(PolicyError::SizeRequired(_))
    ));
}

#[test]
fn put_plans_refuse_metadata_a_header_cannot_carry_and_post_plans_take_it() {
    // Found by the fuzz target: a PUT plan that would not sign (a 500).
    let request = UploadRequest {
        metadata: BTreeMap::from([("album".to_owned(), "\u{7e5}-Été".to_owned())]),
        ..sized(2048)
    };
    assert!(matches!(
        put_plan(&rules(), "u", &request, now(), UUID),
        Err(PolicyError::MetadataNotAllowed(reason)) if reason.contains("printable ASCII")
    ));
    assert!(plan(&rules(), "u", &request, now(), UUID).is_ok());
}

fn request_without_size() -> UploadRequest {
    request()
}

#[test]
fn owner_prefixes_name_one_subject_when_the_template_allows() {
    let rules = rules();
    assert_eq!(rules.owner_prefix("alice").unwrap(), "acme/alice/");
    // Escaping keeps subjects apart: "alice/x" never shares alice's prefix.
    assert_eq!(rules.owner_prefix("alice/x").unwrap(), "acme/alice=2Fx/");
    assert!(matches!(
        rules.owner_prefix(""),
        Err(PolicyError::UnusableSubject)
    ));
    let with = |template: &str| {
        let mut s = settings();
        s.key_template = template.to_owned();
        // Some of these share a prefix between users: said so, to see which.
        s.keys_shared_by_users = true;
        TenantRules::from_settings("acme", &s)
            .unwrap()
            .owner_prefix("alice")
            .unwrap()
    };
    assert_eq!(with("u/{tenant}/x{sub}/{uuid}"), "u/acme/xalice/");
    // {sub} not a whole segment, or after a per-upload part: only the tenant binds.
    assert_eq!(with("{tenant}/{sub}-{uuid}"), "acme/");
    assert_eq!(with("{tenant}/{date}/{sub}/{uuid}"), "acme/");
    assert_eq!(with("up-{tenant}{uuid}"), "up-acme");
    // Every key a subject gets starts with its owner prefix.
    for template in [
        "{tenant}/{sub}/{uuid}/{filename}",
        "{tenant}/{sub}-{uuid}",
        "u/{tenant}/x{sub}/{uuid}",
    ] {
        let mut s = settings();
        s.key_template = template.to_owned();
        s.keys_shared_by_users = true;
        let rules = TenantRules::from_settings("acme", &s).unwrap();
        let key = plan(&rules, "alice", &request(), now(), UUID)
            .unwrap()
            .object
            .key;
        assert!(
            key.as_str()
                .starts_with(&rules.owner_prefix("alice").unwrap()),
            "{template}"
        );
    }
}

#[test]
fn templates_that_give_users_one_key_prefix_are_refused_unless_the_tenant_shares_keys() {
    for shared in [
        "{tenant}/{filename}",
        "{tenant}/{uuid}/{filename}",
        "{tenant}/{uuid}/{sub}/{filename}",
        "{tenant}/{sub}-{uuid}/{filename}",
        "uploads/{date}/{uuid}.{ext}",
    ] {
        let mut s = settings();
        s.key_template = shared.to_owned();
        let error = TenantRules::from_settings("acme", &s).unwrap_err();
        assert_eq!(error.setting, "key_template", "{shared}");
        assert!(
            error.reason.contains("keys_shared_by_users"),
            "{}",
            error.reason
        );
        s.keys_shared_by_users = true;
        assert!(TenantRules::from_settings("acme", &s).is_ok(), "{shared}");
    }
    for own in [
        "{tenant}/{sub}/{uuid}/{filename}",
        "{sub}/{filename}",
        "x/{tenant}/{sub}/{date}/{uuid}",
    ] {
        let mut s = settings();
        s.key_template = own.to_owned();
        assert!(TenantRules::from_settings("acme", &s).is_ok(), "{own}");
    }
}
