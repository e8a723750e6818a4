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
/// file would), under `header` with the key's `kid`.
fn with_our_key(app: &TestApp, claims: &Value) -> String {
    let (kid, pem) = app.signing_key();
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    jsonwebtoken::encode(&es256(Some(&kid)), claims, &key).unwrap()
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
