//! The token endpoint (PROTOCOL.md section 3): scope merging and parsing,
//! `service`, credentials (passwords, personal access tokens), the OAuth2
//! `POST` grants and refresh tokens, and the failure limit.

use base64::Engine;
use berth_core::token::parse_rfc3339;
use berth_registry::identity::secret::hash_secret;
use serde_json::json;

use crate::support::{
    LIFETIME, Resp, TestApp, access, basic_header, claims, encode, now, password_of, repo_access,
};

/// Asserts the token endpoint's answer to wrong credentials: 401, a Basic
/// challenge naming the service, an UNAUTHORIZED body.
#[track_caller]
fn assert_bad_credentials(app: &TestApp, resp: &Resp) {
    resp.assert_error(401, "UNAUTHORIZED");
    assert_eq!(
        resp.header("www-authenticate"),
        Some(format!(r#"Basic realm="{}""#, app.service).as_str())
    );
}

/// Asserts a 400 in both shapes (OAuth2 `error` and the registry's
/// `errors`) whose description contains `needle`.
#[track_caller]
fn assert_bad_request(resp: &Resp, oauth_error: &str, needle: &str) {
    let message = resp.assert_error(400, "UNSUPPORTED");
    let body = resp.json();
    assert_eq!(body["error"], oauth_error, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(needle), "{needle:?} in {description}");
    assert!(message.contains(needle), "{needle:?} in {message}");
}

/// Asserts a successful token response and returns its body.
#[track_caller]
fn assert_issued(resp: &Resp) -> serde_json::Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], LIFETIME);
    parse_rfc3339(body["issued_at"].as_str().unwrap()).unwrap();
    body
}

#[tokio::test]
async fn repeated_scope_params_and_space_separated_lists_merge() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let password = password_of("alice");
    let query = format!(
        "service={}&scope={}&scope={}&scope={}",
        app.service,
        encode("repository:alice/app:pull"),
        encode("repository:alice/app:push repository:alice/lib:pull"),
        // `+` is a space in a query too.
        "repository:alice/lib:delete+registry:catalog:*",
    );
    let resp = app.token_get(Some(("alice", &password)), &query).await;
    let body = assert_issued(&resp);
    assert_eq!(
        access(body["token"].as_str().unwrap()),
        json!([
            {"type": "registry", "name": "catalog", "actions": ["*"]},
            repo_access("alice/app", &["pull", "push"]),
            repo_access("alice/lib", &["delete", "pull"]),
        ])
    );
}

#[tokio::test]
async fn a_scope_that_does_not_parse_is_400_naming_it() {
    let app = TestApp::start().await;
    for bad in [
        "repository:alice/app",
        "repository:alice/app:",
        "Repository:alice/app:pull",
    ] {
        let query = format!(
            "service={}&scope={}&scope={}",
            app.service,
            encode("repository:alice/ok:pull"),
            encode(bad)
        );
        let resp = app.token_get(None, &query).await;
        assert_bad_request(&resp, "invalid_request", bad);
    }
}

#[tokio::test]
async fn another_service_is_400_naming_it() {
    let app = TestApp::start().await;
    let resp = app
        .token_get(None, "service=other&scope=repository:alice/app:pull")
        .await;
    assert_bad_request(&resp, "invalid_request", "other");
    assert!(resp.text().contains(&app.service), "names the right one");
}

#[tokio::test]
async fn wrong_password_or_unknown_user_is_401_with_a_basic_challenge() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let query = app.token_query(&["repository:alice/app:pull"]);
    for (user, password) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("nobody", "whatever"),
        ("", ""),
    ] {
        let resp = app.token_get(Some((user, password)), &query).await;
        assert_bad_credentials(&app, &resp);
    }
    // Credentials that are not Basic at all are no credentials: anonymous.
    let resp = app
        .send(
            app.request(reqwest::Method::GET, &format!("/token?{query}"))
                .header("authorization", "Digest username=\"alice\""),
        )
        .await;
    let body = assert_issued(&resp);
    assert_eq!(claims(body["token"].as_str().unwrap())["sub"], "");
}

#[tokio::test]
async fn a_personal_access_token_works_as_the_password_with_any_username() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let pat = app.pat(&alice, "ci", "pull,push", &[], 3600).await;
    for user in ["alice", "someone-else", ""] {
        let token = app
            .token(
                Some((user, &pat)),
                &["repository:alice/app:pull,push,delete"],
            )
            .await;
        let c = claims(&token);
        assert_eq!(c["sub"], "alice", "as {user:?}");
        // The token's actions bound the grant: no delete.
        assert_eq!(
            c["access"],
            json!([repo_access("alice/app", &["pull", "push"])])
        );
    }
}

#[tokio::test]
async fn a_revoked_or_expired_personal_access_token_is_401() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let query = app.token_query(&["repository:alice/app:pull"]);
    let revoked = app.pat(&alice, "old", "pull", &[], 3600).await;
    app.token(Some(("alice", &revoked)), &[]).await;
    assert!(
        app.registry
            .identity
            .revoke_pat(alice.id, "old")
            .await
            .unwrap()
    );
    // Revoking through the admin API also forgets the remembered check (the
    // e2e admin test covers that path); straight in the store, do it here.
    app.registry.authn.forget_remembered();
    // The store refuses a token born expired: one that expires in a second.
    let expired = app.pat(&alice, "expired", "pull", &[], 1).await;
    let deadline = now() + 1;
    while now() <= deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A well-formed PAT that was never issued.
    let unknown = format!("berth_pat_{}", "A".repeat(43));
    for pat in [&revoked, &expired, &unknown] {
        let resp = app.token_get(Some(("alice", pat)), &query).await;
        assert_bad_credentials(&app, &resp);
    }
}

#[tokio::test]
async fn a_personal_access_token_limited_to_pull_and_a_pattern_gets_only_that() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let pat = app.pat(&alice, "web", "pull", &["alice/web-*"], 3600).await;
    let token = app
        .token(
            Some(("alice", &pat)),
            &[
                "repository:alice/web-app:pull,push,delete",
                "repository:alice/api:pull",
                "repository:alice/web-app/sub:pull",
            ],
        )
        .await;
    assert_eq!(
        access(&token),
        json!([repo_access("alice/web-app", &["pull"])])
    );
}

#[tokio::test]
async fn post_with_grant_type_password_answers_with_the_granted_scope() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let form = format!(
        "grant_type=password&username=alice&password={}&service={}&client_id=test&scope={}",
        encode(&password_of("alice")),
        encode(&app.service),
        encode("repository:alice/app:pull,push repository:bob/x:pull"),
    );
    let resp = app.token_post(&form).await;
    let body = assert_issued(&resp);
    assert_eq!(body["scope"], "repository:alice/app:pull,push");
    assert_eq!(body.get("refresh_token"), None);
    let c = claims(body["token"].as_str().unwrap());
    assert_eq!(c["sub"], "alice");
    assert_eq!(
        c["access"],
        json!([repo_access("alice/app", &["pull", "push"])])
    );

    // Wrong password on POST: the same 401 as on GET.
    let form = format!(
        "grant_type=password&username=alice&password=nope&service={}",
        encode(&app.service)
    );
    assert_bad_credentials(&app, &app.token_post(&form).await);
}

#[tokio::test]
async fn refresh_tokens_from_get_and_post_log_in_again_until_revoked() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let password = password_of("alice");

    // GET with offline_token=true.
    let query = format!(
        "{}&offline_token=true",
        app.token_query(&["repository:alice/app:pull"])
    );
    let body = assert_issued(&app.token_get(Some(("alice", &password)), &query).await);
    let from_get = body["refresh_token"].as_str().unwrap().to_owned();
    // Anonymous callers get no refresh token, even when they ask.
    let body = assert_issued(&app.token_get(None, &query).await);
    assert_eq!(body.get("refresh_token"), None);

    // POST with access_type=offline.
    let form = format!(
        "grant_type=password&username=alice&password={}&service={}&access_type=offline",
        encode(&password),
        encode(&app.service)
    );
    let body = assert_issued(&app.token_post(&form).await);
    let from_post = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(from_get, from_post);

    for refresh in [&from_get, &from_post] {
        let form = format!(
            "grant_type=refresh_token&refresh_token={}&service={}&scope={}",
            encode(refresh),
            encode(&app.service),
            encode("repository:alice/app:pull,push"),
        );
        let body = assert_issued(&app.token_post(&form).await);
        assert_eq!(body["scope"], "repository:alice/app:pull,push");
        let c = claims(body["token"].as_str().unwrap());
        assert_eq!(c["sub"], "alice");
        assert!(c["exp"].as_i64().unwrap() >= now() + 290);
    }

    // Revoked, then garbage: 401.
    assert!(
        app.registry
            .identity
            .revoke_refresh_token(&hash_secret(&from_get))
            .await
            .unwrap()
    );
    let garbage = format!("berth_rt_{}", "x".repeat(43));
    for refresh in [from_get.as_str(), garbage.as_str(), "not-a-token"] {
        let form = format!(
            "grant_type=refresh_token&refresh_token={}&service={}",
            encode(refresh),
            encode(&app.service)
        );
        assert_bad_credentials(&app, &app.token_post(&form).await);
    }
}

#[tokio::test]
async fn an_unsupported_grant_type_is_400() {
    let app = TestApp::start().await;
    let form = format!(
        "grant_type=client_credentials&client_id=x&client_secret=y&service={}",
        encode(&app.service)
    );
    let resp = app.token_post(&form).await;
    assert_bad_request(&resp, "unsupported_grant_type", "client_credentials");
    // Not a secret in the answer.
    assert!(!resp.text().contains("client_secret=y"), "{}", resp.text());
    // And a form without grant_type.
    let resp = app.token_post("username=alice&password=x").await;
    let body = resp.json();
    assert_eq!(resp.status, 400, "{body}");
    assert!(!resp.text().contains("password=x"), "{}", resp.text());
}

/// Thirty wrong passwords from one address, each for another username: the
/// next attempt, and then a correct one, get 429 TOOMANYREQUESTS with
/// `Retry-After` (the limit per address; see `abuse` for the limit per
/// address and username).
#[tokio::test]
async fn thirty_wrong_passwords_from_one_client_are_followed_by_429_with_retry_after() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let query = app.token_query(&["repository:alice/app:pull"]);
    for i in 0..30 {
        // Different usernames: the limit is per address, too.
        let user = format!("guess{i}");
        let resp = app.token_get(Some((&user, "wrong")), &query).await;
        assert_bad_credentials(&app, &resp);
    }
    let password = password_of("alice");
    for (user, password) in [("alice", "wrong"), ("alice", password.as_str())] {
        let resp = app
            .send(
                app.request(reqwest::Method::GET, &format!("/token?{query}"))
                    .header("authorization", basic_header(user, password)),
            )
            .await;
        resp.assert_error(429, "TOOMANYREQUESTS");
        let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    }
    // Anonymous requests carry no credentials to guess with: still served.
    assert_issued(&app.token_get(None, &query).await);
}

/// Regression: a refresh token asked for with a personal access token
/// (`offline_token=true`, Basic `alice:<pat>`) logged in as alice without the
/// token's limits, so a pull-only PAT for `alice/web-*` could be traded for
/// push and delete everywhere alice may. A PAT is itself the long-lived
/// credential: no refresh token is issued for it.
#[tokio::test]
async fn a_personal_access_token_cannot_be_traded_for_an_unlimited_refresh_token() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let pat = app.pat(&alice, "web", "pull", &["alice/web-*"], 3600).await;
    let query = format!(
        "{}&offline_token=true",
        app.token_query(&["repository:alice/web-app:pull"])
    );
    let body = assert_issued(&app.token_get(Some(("alice", &pat)), &query).await);
    assert_eq!(body.get("refresh_token"), None, "{body}");
    assert_eq!(
        access(body["token"].as_str().unwrap()),
        json!([repo_access("alice/web-app", &["pull"])])
    );
    let form = format!(
        "grant_type=password&username=alice&password={pat}&service={}&access_type=offline",
        encode(&app.service)
    );
    let body = assert_issued(&app.token_post(&form).await);
    assert_eq!(body.get("refresh_token"), None, "{body}");
    // A password login still gets one.
    let form = format!(
        "grant_type=password&username=alice&password={}&service={}&access_type=offline",
        encode(&password_of("alice")),
        encode(&app.service)
    );
    let body = assert_issued(&app.token_post(&form).await);
    assert!(body["refresh_token"].as_str().is_some(), "{body}");
}

/// Regression: failures with a refresh token (which has no username) were
/// counted under the empty username, shared by every client, so ten bad
/// refresh tokens from one address locked every client out of the refresh
/// grant. The limit is per client address (and per real username).
#[tokio::test]
async fn bad_refresh_tokens_from_one_client_do_not_lock_out_another() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let form = format!(
        "grant_type=password&username=alice&password={}&service={}&access_type=offline",
        encode(&password_of("alice")),
        encode(&app.service)
    );
    let body = assert_issued(&app.token_post(&form).await);
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let refresh_form = |token: &str| {
        format!(
            "grant_type=refresh_token&refresh_token={}&service={}",
            encode(token),
            encode(&app.service)
        )
    };
    let attacker: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let other: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    for i in 0..10 {
        let resp = app
            .token_post_from(attacker, &refresh_form(&format!("berth_rt_guess{i}")))
            .await;
        assert_bad_credentials(&app, &resp);
    }
    let resp = app.token_post_from(attacker, &refresh_form(&refresh)).await;
    resp.assert_error(429, "TOOMANYREQUESTS");
    assert!(resp.header("retry-after").is_some());
    // Another client is not affected.
    let body = assert_issued(&app.token_post_from(other, &refresh_form(&refresh)).await);
    assert_eq!(claims(body["token"].as_str().unwrap())["sub"], "alice");
}

/// What clients send beyond the plain grammar: a deprecated resource class
/// (accepted, ignored), actions berth does not know (carried, never granted),
/// `*`, a name with `host:port` (no repository here: nothing granted). All
/// are answered 200 with what applies.
#[tokio::test]
async fn scope_variants_clients_send_are_granted_what_applies() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let token = app
        .user_token(
            "alice",
            &[
                "repository(plugin):alice/plugin:pull",
                "repository:alice/lib:pull,metadata-read",
                "repository:alice/all:*",
                "repository:127.0.0.1:5000/alice/app:pull",
            ],
        )
        .await;
    assert_eq!(
        access(&token),
        json!([
            repo_access("alice/all", &["delete", "pull", "push"]),
            repo_access("alice/lib", &["pull"]),
            repo_access("alice/plugin", &["pull"]),
        ])
    );
}

/// Clients assume 60 s when told less: a shorter configured lifetime is
/// raised to 60, in `expires_in` and in the JWT alike.
#[tokio::test]
async fn a_token_lifetime_below_60_s_is_issued_as_60() {
    let app = TestApp::start_with(|config| {
        config.token_lifetime = std::time::Duration::from_secs(10);
    })
    .await;
    let resp = app.token_get(None, &app.token_query(&[])).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["expires_in"], 60);
    let c = claims(body["token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);
}

/// Basic credentials that cannot be read (not base64, no `:`) are wrong
/// credentials, not none: 401, never an anonymous token a client would take
/// for a successful login.
#[tokio::test]
async fn malformed_basic_credentials_are_401() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let query = app.token_query(&[]);
    let no_colon = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice")
    );
    for value in [
        "Basic !!!not-base64",
        "Basic",
        no_colon.as_str(),
        "Basic /w==",
    ] {
        let resp = app
            .send(
                app.request(reqwest::Method::GET, &format!("/token?{query}"))
                    .header("authorization", value),
            )
            .await;
        assert_eq!(resp.status, 401, "{value}: {}", resp.text());
        assert_bad_credentials(&app, &resp);
    }
}

/// Regression: a verified password was remembered for 60 s by user name and
/// password alone, so after a password change (say, after a leak) the old
/// password kept getting tokens for up to a minute. A change takes effect at
/// once: the old password is a wrong password.
#[tokio::test]
async fn a_changed_password_takes_effect_at_once() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let old = password_of("alice");
    let query = app.token_query(&["repository:alice/app:pull"]);
    assert_issued(&app.token_get(Some(("alice", &old)), &query).await);
    let hash = berth_registry::identity::password::hash_password("new-password").unwrap();
    app.registry
        .identity
        .set_password("alice", &hash)
        .await
        .unwrap();
    assert_bad_credentials(&app, &app.token_get(Some(("alice", &old)), &query).await);
    let body = assert_issued(&app.token_get(Some(("alice", "new-password")), &query).await);
    assert_eq!(claims(body["token"].as_str().unwrap())["sub"], "alice");
}

/// A refresh token (what `berth login` and docker store instead of the
/// password) ends with the password it was made with: after a change, only a
/// new login gets tokens.
#[tokio::test]
async fn a_changed_password_revokes_refresh_tokens() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let old = password_of("alice");
    let query = format!(
        "{}&offline_token=true",
        app.token_query(&["repository:alice/app:pull"])
    );
    let body = assert_issued(&app.token_get(Some(("alice", &old)), &query).await);
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let form = format!(
        "grant_type=refresh_token&refresh_token={}&service={}",
        encode(&refresh),
        encode(&app.service)
    );
    assert_issued(&app.token_post(&form).await);

    let hash = berth_registry::identity::password::hash_password("new-password").unwrap();
    app.registry
        .identity
        .set_password("alice", &hash)
        .await
        .unwrap();
    assert_bad_credentials(&app, &app.token_post(&form).await);
    let body = assert_issued(&app.token_get(Some(("alice", "new-password")), &query).await);
    assert!(
        body["refresh_token"].as_str().is_some(),
        "a new login gets a new one"
    );
}
