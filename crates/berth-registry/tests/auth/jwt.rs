//! Forged and broken JWTs over HTTP (PROTOCOL.md section 4): every one is
//! 401 `error="invalid_token"`. Each forgery is built by hand (base64url JSON
//! header and payload) or signed with `jsonwebtoken`; a control signed the
//! same way with the registry's own key is admitted, so a refusal is the
//! forgery's and not the harness's.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};
use serde_json::{Value, json};

use crate::support::{TestApp, now};

const REPO: &str = "alice/app";

/// alice with an image in `alice/app`.
async fn app() -> TestApp {
    let app = TestApp::start().await;
    app.user("alice").await;
    app.seed_image(REPO, "v1").await;
    app
}

/// Claims that would be valid: alice, pull on `alice/app`, now.
fn good_claims(app: &TestApp) -> Value {
    let now = now();
    json!({
        "iss": "berth", "sub": "alice", "aud": app.service, "exp": now + 300,
        "nbf": now, "iat": now, "jti": "00112233445566778899aabbccddeeff",
        "access": [{"type": "repository", "name": REPO, "actions": ["pull"]}],
    })
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// An ES256 header naming `kid`.
fn es256(kid: Option<&str>) -> Header {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    header
}

/// Signs `claims` with the registry's own signing key (as a thief of the key
/// file would), under `header` with the key's `kid`; the signature in its
/// low-S form, the only one berth accepts.
fn with_our_key(app: &TestApp, claims: &Value) -> String {
    let (kid, pem) = app.signing_key();
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    let token = jsonwebtoken::encode(&es256(Some(&kid)), claims, &key).unwrap();
    let (signed, s) = split_s(&token);
    if s > order_minus(&s) {
        with_s(signed, &token, &order_minus(&s))
    } else {
        token
    }
}

/// The order n of the P-256 group, big-endian (SEC 2, section 2.4.2).
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// n - s, big-endian.
fn order_minus(s: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// A token's `header.payload` and the `s` half of its ES256 signature.
fn split_s(token: &str) -> (&str, [u8; 32]) {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    (signed, signature[32..].try_into().unwrap())
}

/// `token` with the `s` half of its signature replaced by `s`.
fn with_s(signed: &str, token: &str, s: &[u8; 32]) -> String {
    let signature = URL_SAFE_NO_PAD
        .decode(token.rsplit_once('.').unwrap().1)
        .unwrap();
    let twin = [&signature[..32], &s[..]].concat();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(twin))
}

/// Asserts that `token` is refused on a pull of `alice/app` with 401 invalid_token.
async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let resp = app
        .get(&format!("/v2/{REPO}/manifests/v1"), Some(token))
        .await;
    assert_eq!(resp.status, 401, "{what}: {}", resp.text());
    resp.assert_unauthorized(&app.challenge(
        Some(&format!("repository:{REPO}:pull")),
        Some("invalid_token"),
    ));
}

/// The control: the same claims signed with our key are admitted.
async fn assert_control_admitted(app: &TestApp) {
    let token = with_our_key(app, &good_claims(app));
    let resp = app
        .get(&format!("/v2/{REPO}/manifests/v1"), Some(&token))
        .await;
    assert_eq!(resp.status, 200, "control: {}", resp.text());
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = app().await;
    assert_control_admitted(&app).await;
    let (kid, _) = app.signing_key();
    let real = app
        .user_token("alice", &[&format!("repository:{REPO}:pull")])
        .await;
    let real_signature = real.rsplit('.').next().unwrap();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let unsigned = format!("{}.{}", b64(&header), b64(&good_claims(&app)));
        assert_refused(&app, &format!("{unsigned}."), alg).await;
        assert_refused(&app, &format!("{unsigned}.{real_signature}"), alg).await;
    }
}

#[tokio::test]
async fn hs256_keyed_with_our_public_key_is_refused() {
    let app = app().await;
    let (kid, _) = app.signing_key();
    let jwks = app.get("/token/jwks.json", None).await.json();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"], kid.as_str());
    let coordinate = |c: &str| URL_SAFE_NO_PAD.decode(jwk[c].as_str().unwrap()).unwrap();
    let point = [&[4u8][..], &coordinate("x"), &coordinate("y")].concat();
    let root_pem = app.registry.keys.as_ref().unwrap().root_pem();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid);
    // Every form of our public key a confused verifier might use as the secret.
    for (what, secret) in [
        ("uncompressed point", point),
        ("root PEM", root_pem.into_bytes()),
        ("JWKS", jwks.to_string().into_bytes()),
        ("JWK", jwk.to_string().into_bytes()),
    ] {
        let key = EncodingKey::from_secret(&secret);
        let token = jsonwebtoken::encode(&header, &good_claims(&app), &key).unwrap();
        assert_refused(&app, &token, what).await;
    }
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let app = app().await;
    let (_, pem) = app.signing_key();
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    // Our own key, under a kid we do not have, and under none.
    for kid in [Some("no-such-key"), Some(""), None] {
        let token = jsonwebtoken::encode(&es256(kid), &good_claims(&app), &key).unwrap();
        assert_refused(&app, &token, &format!("kid {kid:?}")).await;
    }
    // Another key under its own thumbprint.
    let rogue = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let key = EncodingKey::from_ec_der(rogue.serialized_der());
    let token =
        jsonwebtoken::encode(&es256(Some("rogue-thumbprint")), &good_claims(&app), &key).unwrap();
    assert_refused(&app, &token, "rogue key").await;
}

#[tokio::test]
async fn a_key_with_an_x5c_chain_to_another_root_is_refused() {
    let app = app().await;
    // Another root CA, with the names berth uses, and a signing key under it.
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut root_params = CertificateParams::default();
    root_params
        .distinguished_name
        .push(DnType::CommonName, "berth token root");
    root_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let root = root_params.clone().self_signed(&root_key).unwrap();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf_params = CertificateParams::default();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "berth token signer");
    let issuer = Issuer::from_params(&root_params, &root_key);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let x5c = vec![STANDARD.encode(leaf.der()), STANDARD.encode(root.der())];
    let key = EncodingKey::from_ec_der(leaf_key.serialized_der());

    let (our_kid, _) = app.signing_key();
    for kid in [None, Some(our_kid.as_str()), Some("foreign")] {
        let mut header = es256(kid);
        header.x5c = Some(x5c.clone());
        let token = jsonwebtoken::encode(&header, &good_claims(&app), &key).unwrap();
        assert_refused(&app, &token, &format!("x5c, kid {kid:?}")).await;
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let app = app().await;
    assert_control_admitted(&app).await;
    let now = now();
    let mut expired = good_claims(&app);
    // 60 s of leeway, and a little more.
    expired["iat"] = json!(now - 400);
    expired["nbf"] = json!(now - 400);
    expired["exp"] = json!(now - 65);
    assert_refused(&app, &with_our_key(&app, &expired), "expired").await;

    let mut early = good_claims(&app);
    early["nbf"] = json!(now + 3600);
    early["iat"] = json!(now + 3600);
    early["exp"] = json!(now + 7200);
    assert_refused(&app, &with_our_key(&app, &early), "nbf ahead").await;

    let mut no_exp = good_claims(&app);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(&app, &with_our_key(&app, &no_exp), "no exp").await;

    // Within the leeway: admitted.
    let mut skewed = good_claims(&app);
    skewed["exp"] = json!(now - 5);
    skewed["nbf"] = json!(now + 5);
    let resp = app
        .get(
            &format!("/v2/{REPO}/manifests/v1"),
            Some(&with_our_key(&app, &skewed)),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn a_wrong_audience_or_issuer_is_refused() {
    let app = app().await;
    assert_control_admitted(&app).await;
    for aud in [
        json!("other.registry"),
        json!(""),
        json!(["other.registry"]),
    ] {
        let mut claims = good_claims(&app);
        claims["aud"] = aud.clone();
        assert_refused(&app, &with_our_key(&app, &claims), &format!("aud {aud}")).await;
    }
    let mut no_aud = good_claims(&app);
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_refused(&app, &with_our_key(&app, &no_aud), "no aud").await;
    for iss in ["evil", "berth ", "Berth", ""] {
        let mut claims = good_claims(&app);
        claims["iss"] = json!(iss);
        assert_refused(&app, &with_our_key(&app, &claims), &format!("iss {iss:?}")).await;
    }
}

#[tokio::test]
async fn a_tampered_access_claim_is_refused() {
    let app = app().await;
    // A real token, for nothing, as anonymous.
    let real = app.anonymous_token(&[]).await;
    assert_eq!(app.get("/v2/", Some(&real)).await.status, 200);
    let mut parts = real.split('.');
    let (header, payload, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["access"] = json!([{"type": "repository", "name": REPO, "actions": ["*"]}]);
    let forged = format!("{header}.{}.{signature}", b64(&claims));
    assert_refused(&app, &forged, "access edited").await;
    // Also as alice, the subject edited.
    claims["sub"] = json!("alice");
    let forged = format!("{header}.{}.{signature}", b64(&claims));
    assert_refused(&app, &forged, "sub edited").await;
    // And the original still works where it may.
    assert_eq!(app.get("/v2/", Some(&real)).await.status, 200);
}

/// Regression: an ECDSA signature (r, s) has a twin (r, n - s) that verifies
/// as well, so one token had two accepted forms (and two cache entries). Only
/// the low-S form (s <= n/2) is accepted, and berth signs only that form.
#[tokio::test]
async fn the_high_s_twin_of_a_valid_signature_is_refused() {
    let app = app().await;
    for _ in 0..4 {
        let real = app
            .user_token("alice", &[&format!("repository:{REPO}:pull")])
            .await;
        let (signed, s) = split_s(&real);
        let twin = with_s(signed, &real, &order_minus(&s));
        assert!(s < order_minus(&s), "berth signs low-S only");
        let resp = app
            .get(&format!("/v2/{REPO}/manifests/v1"), Some(&real))
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_refused(&app, &twin, "(r, n - s)").await;
    }
}

/// Regression: a bearer token of any length was hashed and parsed: a 1,000-
/// scope token (104 KB) was accepted and cached. No token /token issues is
/// longer than 64 KiB (100 scopes of 255-character names with every action
/// fit in under 50 KB), so a longer one is refused before any work.
#[tokio::test]
async fn a_token_longer_than_any_issued_is_refused_at_the_gate() {
    let app = app().await;
    let mut claims = good_claims(&app);
    let access: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "repository", "name": format!("alice/app-{i}"), "actions": ["pull"]}))
        .chain([json!({"type": "repository", "name": REPO, "actions": ["pull"]})])
        .collect();
    claims["access"] = json!(access);
    let huge = with_our_key(&app, &claims);
    assert!(huge.len() > 64 * 1024, "{}", huge.len());
    assert_refused(&app, &huge, "a 1,000-scope token").await;

    // The longest token /token issues at its scope limit is admitted.
    let names: Vec<String> = (0..100)
        .map(|i| format!("admin/{i:03}{}", "a".repeat(255 - 9)))
        .collect();
    let scopes: Vec<String> = names
        .iter()
        .map(|n| format!("repository:{n}:pull,push,delete"))
        .collect();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let longest = app.user_token("admin", &scopes).await;
    println!("longest token at the scope limit: {} bytes", longest.len());
    assert!(longest.len() <= 64 * 1024, "{}", longest.len());
    let resp = app
        .get(&format!("/v2/{}/tags/list", names[99]), Some(&longest))
        .await;
    assert_eq!(
        resp.status,
        404,
        "admitted (no such repository): {}",
        resp.text()
    );
    resp.assert_error(404, "NAME_UNKNOWN");
}
