use serde_json::json;

use super::*;

#[test]
fn tokens_have_exactly_three_non_empty_parts() {
    let parts = split("aGVhZA.cGF5.c2ln").unwrap();
    assert_eq!(parts.signing_input, "aGVhZA.cGF5");
    assert_eq!(
        (parts.header, parts.payload, parts.signature),
        ("aGVhZA", "cGF5", "c2ln")
    );
    for bad in ["", "a", "a.b", "a.b.", ".b.c", "a..c", "a.b.c.d", "a.b.c."] {
        assert!(split(bad).is_err(), "{bad:?}");
    }
    assert!(decode("cGF5").is_ok());
    assert!(decode("cGF5==").is_err(), "padding is not base64url of JWS");
    assert!(decode("c+F/").is_err(), "standard alphabet");
}

fn header_of(json: &str) -> Result<Header, AuthError> {
    let encoded = base64_simd::URL_SAFE_NO_PAD.encode_to_string(json);
    header(&split(&format!("{encoded}.e30.c2ln")).unwrap())
}

#[test]
fn headers_name_a_known_algorithm_once_and_no_critical_extension() {
    let h = header_of(r#"{"alg":"HS256","typ":"JWT","kid":"k1","jku":"http://x"}"#).unwrap();
    assert_eq!((h.alg, h.kid.as_deref()), (Algorithm::HS256, Some("k1")));
    for bad in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"typ":"JWT"}"#,
        r#"{"alg":"RS256","alg":"HS256"}"#,
        r#"{"alg":"HS256","crit":["exp"]}"#,
        r#"["HS256"]"#,
        r#"{"alg":"HS256"} x"#,
    ] {
        assert!(header_of(bad).is_err(), "{bad}");
    }
}

#[test]
fn hmac_keys_check_their_own_algorithm_in_constant_time() {
    let secret = b"a-secret-of-at-least-thirty-two-bytes!";
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let key = HmacKey::new(alg, secret).unwrap();
        assert_eq!(key.algorithm(), alg);
        let encoding = jsonwebtoken::EncodingKey::from_secret(secret);
        let signature = jsonwebtoken::crypto::sign(b"h.p", &encoding, alg).unwrap();
        let signature = decode(&signature).unwrap();
        assert!(key.verifies(b"h.p", &signature), "{alg:?}");
        assert!(!key.verifies(b"h.q", &signature));
        assert!(!key.verifies(b"h.p", &signature[1..]));
        assert!(!key.verifies(b"h.p", &[]));
        assert!(!format!("{key:?}").contains("secret"));
    }
    assert!(HmacKey::new(Algorithm::RS256, secret).is_none());
}

fn claims(value: Value) -> Result<Claims, AuthError> {
    read_claims(value.to_string().as_bytes(), Some("tenant"))
}

#[test]
fn registered_claims_are_checked_with_leeway() {
    let expected = Expected {
        issuer: Some("iss".into()),
        audience: "aud".into(),
        leeway: 30,
    };
    let now = 1_000_000;
    let base = json!({"exp": now + 60, "iss": "iss", "aud": "aud"});
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut value = base.clone();
        edit(&mut value);
        claims(value).unwrap().check(&expected, now)
    };
    assert!(with(&|_| {}).is_ok());
    assert!(
        with(&|c| c["exp"] = json!(now - 30)).is_ok(),
        "inside the leeway"
    );
    assert!(
        with(&|c| c["nbf"] = json!(now + 30)).is_ok(),
        "inside the leeway"
    );
    assert!(with(&|c| c["aud"] = json!(["x", "aud"])).is_ok());
    for (what, edit) in [
        (
            "expired",
            &(|c: &mut Value| c["exp"] = json!(now - 31)) as &dyn Fn(&mut Value),
        ),
        ("no exp", &|c| c["exp"] = Value::Null),
        ("exp as text", &|c| c["exp"] = json!((now + 60).to_string())),
        ("exp fractional", &|c| c["exp"] = json!(1e6 + 60.5)),
        ("exp negative", &|c| c["exp"] = json!(-1)),
        ("nbf ahead", &|c| c["nbf"] = json!(now + 31)),
        ("nbf as text", &|c| c["nbf"] = json!("0")),
        ("wrong issuer", &|c| c["iss"] = json!("other")),
        ("issuer list", &|c| c["iss"] = json!(["iss"])),
        ("no issuer", &|c| c["iss"] = Value::Null),
        ("wrong audience", &|c| c["aud"] = json!("other")),
        ("list without ours", &|c| c["aud"] = json!(["x", "y"])),
        ("empty list", &|c| c["aud"] = json!([])),
        ("no audience", &|c| c["aud"] = Value::Null),
    ] {
        let result = with(&|c| {
            edit(c);
            // Null stands for "remove".
            c.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        });
        assert!(result.is_err(), "{what}");
    }
}

#[test]
fn claims_are_read_once_and_duplicates_are_refused_however_spelled() {
    let read = claims(
        json!({"sub": "u", "tenant": "acme", "scope": "a b", "scp": ["c"], "other": {"x": [1, 2]}}),
    )
    .unwrap();
    assert_eq!(read.sub, Some(Value::from("u")));
    assert_eq!(read.tenant, Some(Value::from("acme")));
    assert_eq!(read.scope, Some(Value::from("a b")));
    assert_eq!(read.scp, Some(json!(["c"])));

    // An escaped name is the same name: a parser keeping the first would see "a".
    let error = read_claims(br#"{"tenant":"a","te\u006eant":"b"}"#, Some("tenant")).unwrap_err();
    assert!(
        matches!(&error, AuthError::Invalid(r) if r.contains("duplicate claim \"tenant\"")),
        "{error:?}"
    );
    let error = read_claims(br#"{"x":1,"y":2,"x":3}"#, Some("tenant")).unwrap_err();
    assert!(
        matches!(&error, AuthError::Invalid(r) if r.contains("duplicate")),
        "{error:?}"
    );

    // The tenant claim may be any name, even one the service also reads.
    let read = read_claims(br#"{"sub":"org-1"}"#, Some("sub")).unwrap();
    assert_eq!(read.tenant, Some(Value::from("org-1")));
    assert_eq!(read.sub, Some(Value::from("org-1")));

    for not_claims in [&b"[1]"[..], b"\"s\"", b"{", b"{} {}"] {
        assert!(read_claims(not_claims, Some("tenant")).is_err());
    }
}

/// The property tests hold this verifier to `jsonwebtoken::decode` with the same rules.
mod against_jsonwebtoken {
    use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"a-secret-of-at-least-thirty-two-bytes!";

    fn expected() -> Expected {
        Expected {
            issuer: Some("iss".into()),
            audience: "aud".into(),
            leeway: 30,
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// What `jsonwebtoken` says of `token` under the same rules: HS256 only, `exp`,
    /// `iss` and `aud` required, `nbf` checked, 30 s leeway.
    fn theirs(token: &str) -> bool {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["iss"]);
        validation.set_audience(&["aud"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let key = DecodingKey::from_secret(SECRET);
        jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
    }

    fn ours(token: &str) -> bool {
        let key = HmacKey::hs256(SECRET);
        verify_hmac(token, &key, &expected(), now()).is_ok()
    }

    /// Offsets from now, in seconds, kept away from the leeway's edges so that a second
    /// ticking between the two verifiers cannot change an answer.
    fn offset(present: f64) -> impl Strategy<Value = Option<i64>> {
        let offsets = vec![-3600, -45, -15, 0, 15, 45, 600, 3600];
        prop::option::weighted(present, prop::sample::select(offsets))
    }

    /// Mostly present, and mostly the valid choice (the first), so that accepted
    /// tokens are common.
    fn claim_value(choices: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
        let valid = choices[0].clone();
        prop::option::weighted(
            0.9,
            prop_oneof![1 => Just(valid), 1 => prop::sample::select(choices)],
        )
    }

    prop_compose! {
        fn claims()(
            exp in offset(0.9),
            nbf in offset(0.3),
            iss in claim_value(vec![json!("iss"), json!("other"), json!(["iss"]), json!(7)]),
            aud in claim_value(vec![
                json!("aud"), json!(["x", "aud"]), json!("other"), json!([]), json!(["x"]), json!(1),
            ]),
            extra in prop::option::of("[a-z]{1,8}"),
        ) -> Value {
            let now = now() as i64;
            let mut claims = serde_json::Map::new();
            if let Some(exp) = exp { claims.insert("exp".into(), json!(now + exp)); }
            if let Some(nbf) = nbf { claims.insert("nbf".into(), json!(now + nbf)); }
            if let Some(iss) = iss { claims.insert("iss".into(), iss); }
            if let Some(aud) = aud { claims.insert("aud".into(), aud); }
            if let Some(extra) = extra { claims.insert(format!("x-{extra}"), json!(extra)); }
            Value::Object(claims)
        }
    }

    /// How a token is spoiled before it is verified.
    #[derive(Debug, Clone)]
    enum Spoil {
        None,
        /// One character of the token replaced.
        Char(usize, char),
        /// Signed with another key.
        OtherKey,
        /// Signed with HS384, which the rules do not allow.
        OtherAlgorithm,
        /// The payload swapped for one signed nowhere.
        Payload,
    }

    fn spoil() -> impl Strategy<Value = Spoil> {
        prop_oneof![
            3 => Just(Spoil::None),
            2 => (any::<usize>(), prop::sample::select(vec!['A', 'x', '0', '-', '.', '='])).prop_map(|(at, c)| Spoil::Char(at, c)),
            1 => Just(Spoil::OtherKey),
            1 => Just(Spoil::OtherAlgorithm),
            1 => Just(Spoil::Payload),
        ]
    }

    fn token(claims: &Value, spoil: &Spoil) -> String {
        let (alg, secret): (Algorithm, &[u8]) = match spoil {
            Spoil::OtherKey => (Algorithm::HS256, b"another-secret-of-thirty-two-bytes!!"),
            Spoil::OtherAlgorithm => (Algorithm::HS384, SECRET),
            _ => (Algorithm::HS256, SECRET),
        };
        let token =
            jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
                .unwrap();
        match spoil {
            Spoil::Char(at, c) => {
                let mut chars: Vec<char> = token.chars().collect();
                let at = at % chars.len();
                chars[at] = *c;
                chars.into_iter().collect()
            }
            Spoil::Payload => {
                let mut parts: Vec<&str> = token.split('.').collect();
                let forged = base64_simd::URL_SAFE_NO_PAD.encode_to_string(
                    json!({"exp": now() + 600, "iss": "iss", "aud": "aud"}).to_string(),
                );
                parts[1] = &forged;
                parts.join(".")
            }
            _ => token,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the crate refuses is refused; what it accepts is accepted when the
        /// claims have the types RFC 7519 gives them. (The crate also takes `iss` as a
        /// list holding the issuer; §4.1.1 makes it one string, and so do we.)
        #[test]
        fn accepts_and_refuses_what_jsonwebtoken_does(claims in claims(), spoil in spoil()) {
            let token = token(&claims, &spoil);
            let (ours, theirs) = (ours(&token), theirs(&token));
            if !theirs {
                prop_assert!(!ours, "accepted what the crate refuses: {} {:?}", claims, spoil);
            }
            let iss_is_text = claims.get("iss").is_none_or(Value::is_string);
            if theirs && iss_is_text {
                prop_assert!(ours, "refused what the crate accepts: {} {:?}", claims, spoil);
            }
        }

        /// The two agree on a valid token (a guard: the property above must see some).
        #[test]
        fn a_valid_token_passes_both(exp in 60u64..3600) {
            let claims = json!({"exp": now() + exp, "iss": "iss", "aud": ["aud"]});
            let token = token(&claims, &Spoil::None);
            prop_assert!(ours(&token) && theirs(&token));
        }

        /// Duplicate claims are refused, also those the crate lets through (the last
        /// one wins for a claim it does not check itself, such as the tenant).
        #[test]
        fn refuses_duplicate_claims(name in prop::sample::select(vec!["exp", "iss", "aud", "sub", "tenant"])) {
            let valid = json!({"exp": now() + 600, "iss": "iss", "aud": "aud", "sub": "a", "tenant": "t"});
            let mut text = valid.to_string();
            // The duplicate comes first: a parser keeping the first sees another value.
            text.insert_str(1, &format!("\"{name}\":\"other\","));
            let header = base64_simd::URL_SAFE_NO_PAD.encode_to_string(r#"{"alg":"HS256","typ":"JWT"}"#);
            let payload = base64_simd::URL_SAFE_NO_PAD.encode_to_string(&text);
            let input = format!("{header}.{payload}");
            let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(SECRET), Algorithm::HS256).unwrap();
            let token = format!("{input}.{signature}");
            if name == "tenant" {
                prop_assert!(theirs(&token), "the crate keeps the last of duplicates");
            }
            prop_assert!(!ours(&token));
        }
    }
}
