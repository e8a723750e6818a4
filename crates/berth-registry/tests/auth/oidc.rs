//! Workload identity (issue 16): a CI job trades its OpenID Connect ID token
//! for a registry token under its namespace's trust rules.
//!
//! The ID tokens come from `berth-test-issuer`, a loopback issuer shaped like
//! GitHub Actions' and GitLab CI's; the registry trusts it as the platform
//! the test names (`config.oidc.issuers`, loopback allowed). Every exchange
//! is asked both ways a client asks: the RFC 8693 token exchange (`POST
//! /token`) and Basic `oidc:<ID token>` (`docker login -u oidc`); a refusal is
//! 400 `invalid_grant` for the first and 401 with a Basic challenge for the
//! second, its message carrying the word the contract names for the cause.
//! Refusals leave from addresses of their own (127.10.x.y) so that they stay
//! below the per-address failure limit, which has a test of its own.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_core::token::parse_rfc3339;
use berth_registry::config::OidcConfig;
use berth_registry::trust::{IssuerKind, OidcIssuer};
use berth_test_issuer::Issuer;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{LIFETIME, Resp, TestApp, encode};

mod exchange;
mod rules;
mod verify;

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;

/// RFC 8693's grant type and token types.
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

// ----- setup -----

/// A registry trusting `issuers` as the platforms named, loopback issuers
/// allowed, the keys fetched again for every unknown `kid` (no wait), the
/// rest of [`OidcConfig`] changed by `configure`.
async fn app_trusting(
    issuers: &[(IssuerKind, &Issuer)],
    configure: impl FnOnce(&mut OidcConfig),
) -> TestApp {
    let issuers: Vec<OidcIssuer> = issuers
        .iter()
        .map(|(kind, issuer)| OidcIssuer {
            kind: *kind,
            url: issuer.url().to_owned(),
        })
        .collect();
    TestApp::start_with(move |config| {
        config.oidc.issuers = issuers;
        config.oidc.allow_loopback = true;
        config.oidc.jwks_refresh = Duration::ZERO;
        configure(&mut config.oidc);
    })
    .await
}

/// An issuer of `kind`, a registry trusting it, and the organisation `acme`
/// owned by `olive`.
async fn acme(kind: IssuerKind) -> (TestApp, Issuer) {
    acme_with(kind, |_| {}).await
}

/// [`acme`] with the OIDC settings changed by `configure`.
async fn acme_with(kind: IssuerKind, configure: impl FnOnce(&mut OidcConfig)) -> (TestApp, Issuer) {
    let issuer = Issuer::start().await;
    let app = app_trusting(&[(kind, &issuer)], configure).await;
    let olive = app.user("olive").await;
    app.org("acme", &olive).await;
    (app, issuer)
}

/// `POST /api/v1/trust/<namespace>` as user `user` (password auth).
async fn post_rule(app: &TestApp, user: &str, namespace: &str, body: Value) -> Resp {
    app.api_as(
        user,
        POST,
        &format!("/api/v1/trust/{namespace}"),
        Some(body),
    )
    .await
}

/// Creates a rule as `user`; asserts 201 `{"rule": RULE}`, returns RULE.
#[track_caller]
fn created(resp: &Resp) -> Value {
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert_eq!(
        body.as_object().map(|o| o.keys().collect::<Vec<_>>()),
        Some(vec![&"rule".to_owned()]),
        "{body}"
    );
    body["rule"].clone()
}

/// The rule `release` of `acme`: GitHub's `acme/app` on `main`, push to
/// `acme/app`; created by olive.
async fn release_rule(app: &TestApp, issuer: &Issuer) -> Value {
    created(
        &post_rule(
            app,
            "olive",
            "acme",
            json!({
                "name": "release",
                "issuer": issuer.url(),
                "claims": {"repository": "acme/app", "ref": "refs/heads/main"},
                "repositories": ["acme/app"],
            }),
        )
        .await,
    )
}

/// An ID token of GitHub's `acme/app` on `main` for this registry.
fn main_token(app: &TestApp, issuer: &Issuer) -> (String, Value) {
    let claims = issuer.github_claims("acme/app", "refs/heads/main", &app.service);
    (issuer.mint(claims.clone()), claims)
}

// ----- the exchange -----

/// The RFC 8693 form for `id_token` and `scopes`, with this registry's service.
fn exchange_form(app: &TestApp, id_token: &str, scopes: &[&str]) -> String {
    let mut form = format!(
        "grant_type={}&subject_token={}&subject_token_type={}&service={}",
        encode(EXCHANGE),
        encode(id_token),
        encode(ID_TOKEN),
        encode(&app.service),
    );
    if !scopes.is_empty() {
        form.push_str(&format!("&scope={}", encode(&scopes.join(" "))));
    }
    form
}

/// Exchanges `id_token` for `scopes` with the RFC 8693 `POST`; asserts the
/// 200 and its fields, returns the body.
async fn exchange_post(app: &TestApp, id_token: &str, scopes: &[&str]) -> Value {
    let resp = app.token_post(&exchange_form(app, id_token, scopes)).await;
    assert_exchanged(&resp)
}

/// Asserts a granted exchange's answer: 200, JSON, `token` = `access_token`,
/// the RFC 8693 `issued_token_type`, `token_type: Bearer`, `expires_in` at
/// most the registry's lifetime, `issued_at`. Returns the body.
#[track_caller]
fn assert_exchanged(resp: &Resp) -> Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert!(body["token"].is_string(), "{body}");
    assert_eq!(body["access_token"], body["token"], "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let expires_in = body["expires_in"].as_u64().unwrap();
    assert!((1..=LIFETIME).contains(&expires_in), "{body}");
    parse_rfc3339(body["issued_at"].as_str().unwrap()).unwrap();
    assert!(body["scope"].is_string(), "{body}");
    assert_eq!(
        body.get("refresh_token"),
        None,
        "no refresh token for a workload"
    );
    body
}

/// Exchanges `id_token` for `scopes` with `GET /token` and Basic
/// `oidc:<id_token>`; asserts 200, returns the registry token.
async fn exchange_basic(app: &TestApp, id_token: &str, scopes: &[&str]) -> String {
    let resp = app
        .token_get(Some(("oidc", id_token)), &app.token_query(scopes))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.json()["token"].as_str().unwrap().to_owned()
}

/// A loopback address no other refusal of this process left from.
fn another_address() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    IpAddr::V4(Ipv4Addr::new(
        127,
        10,
        (n / 200 % 250) as u8,
        (n % 200 + 2) as u8,
    ))
}

/// Asserts the RFC 8693 refusal: 400, `error: invalid_grant`, and the word in
/// `error_description` and in the one `errors` message.
#[track_caller]
fn assert_invalid_grant(resp: &Resp, word: &str) {
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.to_lowercase().contains(word),
        "{word:?} in {description:?}"
    );
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.to_lowercase().contains(word),
        "{word:?} in {message:?}"
    );
}

/// Asserts the Basic refusal: 401 UNAUTHORIZED, the Basic challenge of the
/// token service, and the word in the message.
#[track_caller]
fn assert_basic_refused(app: &TestApp, resp: &Resp, word: &str) {
    let message = resp.assert_error(401, "UNAUTHORIZED");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(format!(r#"Basic realm="{}""#, app.service).as_str())
    );
    assert!(
        message.to_lowercase().contains(word),
        "{word:?} in {message:?}"
    );
}

/// Asserts that `id_token` is refused both ways, for `word` (lower case),
/// each attempt from an address of its own.
async fn assert_refused(app: &TestApp, id_token: &str, scopes: &[&str], word: &str) {
    let resp = app
        .token_post_from(another_address(), &exchange_form(app, id_token, scopes))
        .await;
    assert_invalid_grant(&resp, word);
    let client = app.client_from(another_address());
    let resp = app
        .token_get_with(&client, Some(("oidc", id_token)), &app.token_query(scopes))
        .await;
    assert_basic_refused(app, &resp, word);
}

/// `header.payload.signature` with the payload replaced by `claims`.
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// Asserts an account API error whose code the contract leaves to "the
/// other account endpoints": this status, a JSON body with one error, a
/// code and a message; returns the message.
#[track_caller]
fn api_error(resp: &Resp, status: u16) -> String {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert!(
        errors[0]["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    let message = errors[0]["message"].as_str().unwrap();
    assert!(!message.is_empty(), "{body}");
    message.to_owned()
}
