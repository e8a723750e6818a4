//! Which ID tokens are refused, and with which word: claim conditions (exact
//! and glob), audience, issuer, times (`exp`, `nbf`, `iat`, the maximum age),
//! algorithms and signatures, size; which keys are used: ES256, a rotated key
//! fetched at most once per interval, cached keys while the issuer is down.

use std::time::Duration;

use berth_registry::trust::IssuerKind;
use berth_test_issuer::Issuer;
use serde_json::json;

use super::{
    acme, acme_with, another_address, api_error, assert_invalid_grant, assert_refused, created,
    exchange_basic, exchange_form, exchange_post, main_token, post_rule, release_rule,
    with_payload,
};
use crate::support::{claims, now, repo_access};

#[tokio::test]
async fn every_claim_condition_must_hold() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    let base = {
        let mut c = issuer.github_claims("acme/app", "refs/heads/main", &app.service);
        c["environment"] = json!("production");
        c["sub"] = json!("repo:acme/app:environment:production");
        c
    };
    let conditions = json!({
        "repository": "acme/app",
        "repository_id": base["repository_id"],
        "ref": "refs/heads/main",
        "job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main",
        "environment": "production",
        "sub": "repo:acme/app:environment:production",
    });
    created(
        &post_rule(
            &app,
            "olive",
            "acme",
            json!({
                "name": "deploy",
                "issuer": issuer.url(),
                "claims": conditions,
                "repositories": ["acme/app"],
            }),
        )
        .await,
    );
    let scope = "repository:acme/app:pull,push";
    let body = exchange_post(&app, &issuer.mint(base.clone()), &[scope]).await;
    assert_eq!(body["scope"], scope);
    assert_eq!(
        claims(body["token"].as_str().unwrap())["sub"],
        format!(
            "trust:acme/deploy:repo:acme/app:environment:production@run:{}",
            base["run_id"].as_str().unwrap()
        )
    );

    for (name, wrong) in [
        ("repository", json!("acme/app2")),
        ("repository_id", json!("1")),
        ("ref", json!("refs/heads/mainx")),
        (
            "job_workflow_ref",
            json!("evil/app/.github/workflows/release.yml@refs/heads/main"),
        ),
        ("environment", json!("Production")),
        ("sub", json!("repo:acme/app:ref:refs/heads/main")),
    ] {
        let mut changed = base.clone();
        changed[name] = wrong;
        assert_refused(&app, &issuer.mint(changed), &[scope], "no trust rule").await;
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove(name);
        assert_refused(&app, &issuer.mint(missing), &[scope], "no trust rule").await;
    }
}

#[tokio::test]
async fn glob_conditions_match_within_or_across_segments() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    created(
        &post_rule(
            &app,
            "olive",
            "acme",
            json!({
                "name": "tags",
                "issuer": issuer.url(),
                "claims": {"repository": "acme/app", "ref": "refs/tags/v*"},
                "repositories": ["acme/app"],
            }),
        )
        .await,
    );
    created(
        &post_rule(
            &app,
            "olive",
            "acme",
            json!({
                "name": "features",
                "issuer": issuer.url(),
                "claims": {"repository": "acme/*", "ref": "refs/heads/feature/**"},
                "actions": ["pull"],
                "repositories": ["acme/**"],
            }),
        )
        .await,
    );
    let token = |repository: &str, git_ref: &str| {
        issuer.mint(issuer.github_claims(repository, git_ref, &app.service))
    };

    // `*` within one segment.
    let body = exchange_post(
        &app,
        &token("acme/app", "refs/tags/v1.2.3"),
        &["repository:acme/app:pull,push"],
    )
    .await;
    let c = claims(body["token"].as_str().unwrap());
    assert!(
        c["sub"]
            .as_str()
            .unwrap()
            .starts_with("trust:acme/tags:repo:acme/app:ref:refs/tags/v1.2.3@run:"),
        "{c}"
    );
    assert_eq!(
        c["access"],
        json!([repo_access("acme/app", &["pull", "push"])])
    );
    for git_ref in ["refs/tags/v1/rc1", "refs/tags/release-1", "refs/heads/v1"] {
        assert_refused(
            &app,
            &token("acme/app", git_ref),
            &["repository:acme/app:pull,push"],
            "no trust rule",
        )
        .await;
    }

    // `**` across segments; `acme/*` one segment of the repository claim.
    let body = exchange_post(
        &app,
        &token("acme/lib", "refs/heads/feature/a/b"),
        &["repository:acme/lib/sub:pull,push"],
    )
    .await;
    let c = claims(body["token"].as_str().unwrap());
    assert!(
        c["sub"]
            .as_str()
            .unwrap()
            .starts_with("trust:acme/features:repo:acme/lib:ref:refs/heads/feature/a/b@run:"),
        "{c}"
    );
    assert_eq!(c["access"], json!([repo_access("acme/lib/sub", &["pull"])]));
    for (repository, git_ref) in [
        ("acme/lib", "refs/heads/main"),
        ("other/lib", "refs/heads/feature/x"),
        ("acmex/lib", "refs/heads/feature/x"),
    ] {
        assert_refused(
            &app,
            &token(repository, git_ref),
            &["repository:acme/lib:pull"],
            "no trust rule",
        )
        .await;
    }
}

#[tokio::test]
async fn the_audience_must_be_the_rules() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let scope = "repository:acme/app:pull";
    // GitHub's default audience, the owner's URL, is not this registry.
    let other = issuer.github_claims("acme/app", "refs/heads/main", "https://github.com/acme");
    assert_refused(&app, &issuer.mint(other), &[scope], "no trust rule").await;
    // `aud` as a list containing the rule's audience.
    let mut listed = issuer.github_claims("acme/app", "refs/heads/main", "x");
    listed["aud"] = json!(["https://github.com/acme", app.service]);
    exchange_post(&app, &issuer.mint(listed), &[scope]).await;

    // A rule with an audience of its own.
    created(
        &post_rule(
            &app,
            "olive",
            "acme",
            json!({
                "name": "own-audience",
                "issuer": issuer.url(),
                "audience": "berth-ci",
                "claims": {"repository": "acme/tools"},
                "repositories": ["acme/tools"],
            }),
        )
        .await,
    );
    let tools = |aud: &str| issuer.mint(issuer.github_claims("acme/tools", "refs/heads/main", aud));
    let scope = "repository:acme/tools:pull";
    let body = exchange_post(&app, &tools("berth-ci"), &[scope]).await;
    assert_eq!(body["scope"], scope);
    assert_refused(&app, &tools(&app.service), &[scope], "no trust rule").await;
}

#[tokio::test]
async fn a_token_of_an_issuer_not_configured_is_refused_without_fetching() {
    let (app, trusted) = acme(IssuerKind::Github).await;
    release_rule(&app, &trusted).await;
    let stranger = Issuer::start().await;
    let scope = "repository:acme/app:pull";

    let token = stranger.mint(stranger.github_claims("acme/app", "refs/heads/main", &app.service));
    assert_refused(&app, &token, &[scope], "issuer").await;
    assert_eq!(
        stranger.fetches(),
        (0, 0),
        "nothing fetched from an issuer not configured"
    );

    // The stranger's key under the trusted issuer's name: no such key there.
    let mut claims = stranger.github_claims("acme/app", "refs/heads/main", &app.service);
    claims["iss"] = json!(trusted.url());
    assert_refused(&app, &stranger.mint(claims), &[scope], "key").await;
    assert_eq!(stranger.fetches(), (0, 0));

    // A rule cannot name it either.
    let resp = post_rule(
        &app,
        "olive",
        "acme",
        json!({
            "issuer": stranger.url(),
            "claims": {"repository": "acme/app"},
            "repositories": ["acme/app"],
        }),
    )
    .await;
    let message = api_error(&resp, 400);
    assert!(message.contains(stranger.url()), "{message}");
    assert_eq!(stranger.fetches(), (0, 0));
}

#[tokio::test]
async fn an_expired_token_is_refused_past_the_leeway() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let scope = "repository:acme/app:pull";
    let at = |exp: i64| {
        let mut c = issuer.github_claims("acme/app", "refs/heads/main", &app.service);
        c["iat"] = json!(now() - 400);
        c["nbf"] = json!(now() - 400);
        c["exp"] = json!(exp);
        issuer.mint(c)
    };
    assert_refused(&app, &at(now() - 90), &[scope], "expired").await;
    assert_refused(&app, &at(0), &[scope], "expired").await;
    // Within the 60 s leeway.
    exchange_post(&app, &at(now() - 20), &[scope]).await;
}

#[tokio::test]
async fn a_token_not_yet_valid_or_issued_in_the_future_is_refused() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let scope = "repository:acme/app:pull";
    let base = issuer.github_claims("acme/app", "refs/heads/main", &app.service);

    let mut nbf = base.clone();
    nbf["nbf"] = json!(now() + 300);
    nbf["exp"] = json!(now() + 900);
    assert_refused(&app, &issuer.mint(nbf), &[scope], "not valid before").await;

    let mut iat = base.clone();
    iat["iat"] = json!(now() + 300);
    iat["exp"] = json!(now() + 900);
    assert_refused(&app, &issuer.mint(iat), &[scope], "issued in the future").await;

    // Within the 60 s leeway: accepted.
    let mut skewed = base.clone();
    skewed["iat"] = json!(now() + 20);
    skewed["nbf"] = json!(now() + 20);
    exchange_post(&app, &issuer.mint(skewed), &[scope]).await;
}

#[tokio::test]
async fn a_token_issued_longer_ago_than_the_max_age_is_refused() {
    let (app, issuer) = acme_with(IssuerKind::Github, |oidc| {
        oidc.max_token_age = Duration::from_secs(120);
    })
    .await;
    release_rule(&app, &issuer).await;
    let scope = "repository:acme/app:pull";
    let issued = |iat: i64| {
        let mut c = issuer.github_claims("acme/app", "refs/heads/main", &app.service);
        c["iat"] = json!(iat);
        c["nbf"] = json!(iat);
        // Still far from expiring: the age alone refuses it.
        c["exp"] = json!(now() + 3600);
        issuer.mint(c)
    };
    assert_refused(&app, &issued(now() - 600), &[scope], "too old").await;
    exchange_post(&app, &issued(now() - 60), &[scope]).await;
}

#[tokio::test]
async fn alg_none_hs256_with_the_public_key_and_bad_signatures_are_refused() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let scope = "repository:acme/app:pull,push";
    let claims = issuer.github_claims("acme/app", "refs/heads/main", &app.service);

    assert_refused(
        &app,
        &issuer.forge_alg_none(claims.clone()),
        &[scope],
        "algorithm",
    )
    .await;
    assert_refused(
        &app,
        &issuer.forge_hs256_with_public_key(claims.clone()),
        &[scope],
        "algorithm",
    )
    .await;

    // A real signature over other claims.
    let signed = issuer.mint(claims.clone());
    let mut other = claims.clone();
    other["repository_id"] = json!("1");
    assert_refused(&app, &with_payload(&signed, &other), &[scope], "signature").await;

    // Not a JWT at all (the RFC 8693 form; over Basic such a password is
    // a password).
    for garbage in ["not-a-jwt", "eyJhbGciOiJSUzI1NiJ9.%%%.sig", "a.b.c.d.e"] {
        let resp = app
            .token_post_from(another_address(), &exchange_form(&app, garbage, &[scope]))
            .await;
        assert_invalid_grant(&resp, "not a jwt");
    }

    // The genuine token still works.
    exchange_post(&app, &signed, &[scope]).await;
}

#[tokio::test]
async fn a_token_over_16_kib_is_refused() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let mut claims = issuer.github_claims("acme/app", "refs/heads/main", &app.service);
    claims["head_ref"] = json!("x".repeat(17 * 1024));
    let token = issuer.mint(claims);
    let resp = app
        .token_post_from(
            another_address(),
            &exchange_form(&app, &token, &["repository:acme/app:pull"]),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "invalid_grant", "{}", resp.text());
    assert!(
        !resp.text().contains(&token[..64]),
        "the token is not echoed"
    );
}

#[tokio::test]
async fn es256_tokens_are_accepted() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let scope = "repository:acme/app:pull,push";
    let id_claims = issuer.github_claims("acme/app", "refs/heads/main", &app.service);
    let id_token = issuer.mint_es256(id_claims.clone());
    let body = exchange_post(&app, &id_token, &[scope]).await;
    assert_eq!(body["scope"], scope);
    let basic = exchange_basic(&app, &id_token, &[scope]).await;
    assert_eq!(
        claims(&basic)["sub"],
        format!(
            "trust:acme/release:repo:acme/app:ref:refs/heads/main@run:{}",
            id_claims["run_id"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_at_most_once_per_refresh_interval() {
    let refresh = Duration::from_secs(2);
    let (app, issuer) = acme_with(IssuerKind::Github, |oidc| oidc.jwks_refresh = refresh).await;
    release_rule(&app, &issuer).await;
    let scope = "repository:acme/app:pull";
    exchange_post(&app, &main_token(&app, &issuer).0, &[scope]).await;
    let (_, fetched) = issuer.fetches();
    assert!(fetched >= 1, "the keys were fetched");
    // Cached: no fetch for a known kid.
    exchange_post(&app, &main_token(&app, &issuer).0, &[scope]).await;
    assert_eq!(issuer.fetches().1, fetched);

    // Past the interval, a new kid makes one fetch, and is accepted.
    tokio::time::sleep(refresh + Duration::from_millis(200)).await;
    issuer.rotate();
    exchange_post(&app, &main_token(&app, &issuer).0, &[scope]).await;
    assert_eq!(issuer.fetches().1, fetched + 1);

    // Within the interval, kids nobody publishes make no fetch at all.
    let unknown = |issuer: &Issuer| {
        issuer.mint_unknown_kid(issuer.github_claims("acme/app", "refs/heads/main", &app.service))
    };
    for _ in 0..5 {
        assert_refused(&app, &unknown(&issuer), &[scope], "key").await;
    }
    assert_eq!(issuer.fetches().1, fetched + 1);

    // After it, one fetch; the kid is still unknown: refused.
    tokio::time::sleep(refresh + Duration::from_millis(200)).await;
    assert_refused(&app, &unknown(&issuer), &[scope], "key").await;
    assert_eq!(issuer.fetches().1, fetched + 2);
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_issuer_is_down() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let scope = "repository:acme/app:pull,push";
    exchange_post(&app, &main_token(&app, &issuer).0, &[scope]).await;

    issuer.set_down(true);
    let body = exchange_post(&app, &main_token(&app, &issuer).0, &[scope]).await;
    assert_eq!(body["scope"], scope);
    exchange_basic(&app, &main_token(&app, &issuer).0, &[scope]).await;
    // The ES256 key came in the same key set.
    let claims = issuer.github_claims("acme/app", "refs/heads/main", &app.service);
    exchange_post(&app, &issuer.mint_es256(claims.clone()), &[scope]).await;
    // A kid not cached cannot be looked up.
    assert_refused(
        &app,
        &issuer.mint_unknown_kid(claims),
        &[scope],
        "unreachable",
    )
    .await;

    // Back up: the new key of a rotation is found.
    issuer.set_down(false);
    issuer.rotate();
    exchange_post(&app, &main_token(&app, &issuer).0, &[scope]).await;
}

#[tokio::test]
async fn an_issuer_down_before_any_fetch_refuses_as_unreachable() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    issuer.set_down(true);
    let (id_token, _) = main_token(&app, &issuer);
    assert_refused(
        &app,
        &id_token,
        &["repository:acme/app:pull"],
        "unreachable",
    )
    .await;
    issuer.set_down(false);
    exchange_post(&app, &id_token, &["repository:acme/app:pull"]).await;
}
