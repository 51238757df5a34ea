//! Token attacks: each is 401 `unauthorized` with `WWW-Authenticate`, and
//! nothing is written; the keys that should verify do. The query API runs
//! the same middleware (`orderflow_service::auth`).

#![allow(clippy::print_stdout)] // the coverage is the output

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orderflow_service::auth::{Claims, Role, token::now_secs};
use serde_json::{Value, json};

use crate::helpers::{AUDIENCE, ISSUER, SECRET, TestApp, auth_args, keys_dir, spawn, spawn_with};

fn claims(role: Role) -> Claims {
    Claims::new(
        "ada-staff",
        role,
        ISSUER,
        AUDIENCE,
        Duration::from_secs(600),
    )
}

fn hs256(secret: &[u8], claims: &impl serde::Serialize) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).expect("key"),
    )
    .expect("token")
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(keys_dir().join(name)).expect("test key")
}

fn signed(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Claims) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("token")
}

fn rs256(claims: &Claims) -> String {
    let key = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).expect("rsa key");
    signed(Algorithm::RS256, Some("rsa-1"), &key, claims)
}

fn es256(claims: &Claims) -> String {
    let key = EncodingKey::from_ec_pem(&pem("ec-private.pem")).expect("ec key");
    signed(Algorithm::ES256, Some("ec-1"), &key, claims)
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The attacks, by name.
fn attacks() -> Vec<(&'static str, String)> {
    let now = now_secs();
    let valid = serde_json::to_value(claims(Role::Staff)).expect("claims");
    let with = |key: &str, value: Value| {
        let mut c = valid.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = valid.clone();
        c.as_object_mut().expect("object").remove(key);
        c
    };
    let secret = SECRET.as_bytes();
    let signature = hs256(secret, &valid);
    let good_signature = signature.rsplit('.').next().expect("sig").to_owned();
    vec![
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&valid)
            ),
        ),
        (
            "alg none with a valid HS256 signature",
            format!(
                "{}.{}.{good_signature}",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&valid)
            ),
        ),
        // The classic confusion: the RSA public key used as an HMAC secret.
        (
            "HS256 signed with the RS256 public key",
            hs256(&pem("rsa-public.pem"), &valid),
        ),
        (
            "HS256 with the RSA key's kid, signed with its public key",
            signed(
                Algorithm::HS256,
                Some("rsa-1"),
                &EncodingKey::from_secret(&pem("rsa-public.pem")).expect("key"),
                &claims(Role::Staff),
            ),
        ),
        (
            "wrong key",
            hs256(b"another-secret-of-thirty-two-bytes-or-more!!", &valid),
        ),
        (
            "RS256 header over an HS256 signature",
            format!(
                "{}.{}.{good_signature}",
                b64(&json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"})),
                b64(&valid)
            ),
        ),
        (
            "expired (beyond the leeway)",
            hs256(secret, &with("exp", json!(now - 3600))),
        ),
        (
            "not yet valid",
            hs256(secret, &with("nbf", json!(now + 3600))),
        ),
        ("wrong issuer", hs256(secret, &with("iss", json!("evil")))),
        (
            "wrong audience",
            hs256(secret, &with("aud", json!("another-api"))),
        ),
        ("missing subject", hs256(secret, &without("sub"))),
        ("missing exp", hs256(secret, &without("exp"))),
        ("missing role", hs256(secret, &without("role"))),
        ("unknown role", hs256(secret, &with("role", json!("admin")))),
        (
            "exp as a string",
            hs256(secret, &with("exp", json!(format!("{}", now + 600)))),
        ),
        (
            "customer token whose subject is no UUID",
            hs256(secret, &with("role", json!("customer"))),
        ),
        ("empty subject", hs256(secret, &with("sub", json!("")))),
        (
            "oversized token",
            hs256(secret, &with("pad", json!("x".repeat(8 * 1024)))),
        ),
        ("garbage", "not.a.token".to_owned()),
        (
            "two segments",
            format!("{}.{}", b64(&json!({"alg": "HS256"})), b64(&valid)),
        ),
        ("signature of another token", {
            let other = hs256(secret, &with("sub", json!("someone-else")));
            let (head, _) = other.rsplit_once('.').expect("dots");
            format!("{head}.{good_signature}")
        }),
    ]
}

async fn refused(app: &TestApp, name: &str, headers: &[(&str, &str)]) {
    let before = app.snapshot().await;
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let reply = app
        .send(
            reqwest::Method::POST,
            "/customers",
            Some(
                json!({"name": "Mallory", "email": format!("m-{}@example.com", uuid::Uuid::new_v4().simple())})
                    .to_string()
                    .into_bytes(),
            ),
            &all,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 401, "{name}: {}", reply.body);
    reply.assert_problem(401, "unauthorized");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{name}: WWW-Authenticate"
    );
    let token = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| *v)
        .unwrap_or_default();
    let echoed = String::from_utf8_lossy(&reply.raw).into_owned();
    if token.len() > 20 {
        assert!(
            !echoed.contains(&token[7..]),
            "{name}: the answer repeats the token"
        );
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "{name}: something was written"
    );
}

#[tokio::test]
async fn every_token_attack_is_refused_and_writes_nothing() {
    let app = spawn().await;
    let attacks = attacks();
    for (name, token) in &attacks {
        let header = format!("Bearer {token}");
        refused(&app, name, &[("authorization", &header)]).await;
    }
    for (name, header) in [
        ("no token", "-"),
        ("Basic scheme", "Basic YWRhOmxvdmVsYWNl"),
        ("Bearer without a token", "Bearer "),
        ("token without a scheme", "eyJhbGciOiJIUzI1NiJ9.e30.x"),
    ] {
        refused(&app, name, &[("authorization", header)]).await;
    }
    let staff = crate::helpers::staff();
    let bearer = format!("Bearer {staff}");
    refused(
        &app,
        "two Authorization headers",
        &[("authorization", &bearer), ("authorization", &bearer)],
    )
    .await;
    println!(
        "token attacks refused with 401 and nothing written: {}",
        attacks.len() + 5
    );
}

/// Headers a string cannot carry: bytes that are not UTF-8 (obs-text) in
/// the token, a valid token after non-UTF-8 bytes, and a header far over
/// the token bound. Each is a 401 problem (never a 500 or a dropped
/// connection), and nothing is written.
#[tokio::test]
async fn authorization_headers_that_are_not_text_are_refused() {
    let app = spawn().await;
    let staff = crate::helpers::staff();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "non-UTF-8 token",
            b"Bearer \xff\xfe\xfd.\x80\x81.\xc3\x28".to_vec(),
        ),
        (
            "non-UTF-8 before a valid token",
            [b"Bearer \xff".as_slice(), staff.as_bytes()].concat(),
        ),
        (
            "a 6 KiB header",
            format!("Bearer {}", "a".repeat(6 * 1024)).into_bytes(),
        ),
    ];
    for (name, value) in &cases {
        let before = app.snapshot().await;
        let header = reqwest::header::HeaderValue::from_bytes(value)
            .expect("obs-text is a valid header value");
        let response = app
            .http
            .post(format!("{}/customers", app.base))
            .header("authorization", header)
            .header("content-type", "application/json")
            .body(json!({"name": "Mallory", "email": format!("m-{}@example.com", uuid::Uuid::new_v4().simple())}).to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: no answer: {e}"));
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(status, 401, "{name}");
        assert!(
            kind.starts_with("application/problem+json"),
            "{name}: {kind}"
        );
        assert_eq!(
            app.snapshot().await,
            before,
            "{name}: something was written"
        );
    }
}

#[tokio::test]
async fn the_configured_keys_verify_each_with_its_own_algorithm() {
    let app = spawn().await;
    let leeway_expired = {
        let mut c = claims(Role::Staff);
        c.exp = now_secs() - 5;
        c
    };
    for (name, token) in [
        (
            "HS256 secret",
            hs256(SECRET.as_bytes(), &claims(Role::Staff)),
        ),
        ("RS256 from the JWKS", rs256(&claims(Role::Staff))),
        ("ES256 from the JWKS", es256(&claims(Role::Staff))),
        (
            "expired within the leeway",
            hs256(SECRET.as_bytes(), &leeway_expired),
        ),
    ] {
        let bearer = format!("Bearer {token}");
        let reply = app
            .post_with(
                "/customers",
                &json!({"name": "Ada", "email": format!("a-{}@example.com", uuid::Uuid::new_v4().simple())}),
                &[("authorization", &bearer)],
            )
            .await;
        assert_eq!(reply.status.as_u16(), 201, "{name}: {}", reply.body);
    }
}

/// Keys rotate without a restart: a key added to the JWKS file is used once
/// the file is re-read, a key removed is refused.
#[tokio::test]
async fn the_jwks_file_is_reloaded_without_a_restart() {
    let dir = std::env::temp_dir().join(format!("orderflow-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("jwks.json");
    let all: Value = serde_json::from_slice(&pem("jwks.json")).expect("the test JWKS is JSON");
    let only_ec = json!({"keys": [all["keys"][1].clone()]});
    std::fs::write(&file, only_ec.to_string()).expect("write");
    let mut args = auth_args(&["--auth-jwks-reload", "100ms"]);
    args.jwks_file = Some(file.clone());
    let app = spawn_with(Duration::from_secs(3600), args).await;
    let rsa = format!("Bearer {}", rs256(&claims(Role::Staff)));
    let status = |app: &TestApp, bearer: String| {
        let request = app
            .http
            .post(format!("{}/customers", app.base))
            .header("authorization", bearer)
            .json(&json!({"name": "Ada", "email": format!("r-{}@example.com", uuid::Uuid::new_v4().simple())}));
        async move { request.send().await.expect("sent").status().as_u16() }
    };
    assert_eq!(
        status(&app, rsa.clone()).await,
        401,
        "the RSA key is not loaded yet"
    );
    std::fs::write(&file, all.to_string()).expect("write");
    orderflow_testkit::eventually(
        "the added RSA key to verify",
        Duration::from_secs(30),
        || {
            let check = status(&app, rsa.clone());
            async move { (check.await == 201).then_some(()) }
        },
    )
    .await;
    std::fs::write(&file, only_ec.to_string()).expect("write");
    orderflow_testkit::eventually(
        "the removed RSA key to be refused",
        Duration::from_secs(30),
        || {
            let check = status(&app, rsa.clone());
            async move { (check.await == 401).then_some(()) }
        },
    )
    .await;
    std::fs::write(&file, "{ not json").expect("write");
    let es = format!("Bearer {}", es256(&claims(Role::Staff)));
    // A broken file keeps the keys in use; nothing to wait for, so check a
    // few reload periods' worth of requests all verify.
    for _ in 0..5 {
        assert_eq!(
            status(&app, es.clone()).await,
            201,
            "a broken file keeps the keys"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_service_refuses_to_start_without_a_key_unless_told() {
    use orderflow_service::auth::{Auth, AuthError};
    let mut args = auth_args(&[]);
    args.hs256_secret = None;
    args.jwks_file = None;
    assert!(matches!(Auth::from_args(&args), Err(AuthError::NoKeys)));
    args.hs256_secret = Some(orderflow_service::Secret::new("short"));
    assert!(
        matches!(Auth::from_args(&args), Err(AuthError::Keys(_))),
        "a short secret"
    );
    args.hs256_secret = Some(orderflow_service::Secret::new(SECRET));
    args.disabled = true;
    assert!(matches!(
        Auth::from_args(&args),
        Err(AuthError::DisabledWithKeys)
    ));
    args.hs256_secret = None;
    assert!(Auth::from_args(&args).is_ok(), "explicitly disabled");
}
