//! The exchange itself: what a matching token is granted, both ways (RFC
//! 8693 and Basic `oidc:`), what the registry token says (`sub`, `access`,
//! `berth_trust`), what it pushes and what it may not; GitLab's tokens; the
//! union of several namespaces' rules; malformed requests; the failure limit.

use berth_core::token::parse_rfc3339;
use berth_registry::auth::authenticate::{
    MAX_FAILURES_PER_ADDRESS, MAX_FAILURES_PER_USER_AND_ADDRESS,
};
use berth_registry::trust::IssuerKind;
use serde_json::json;

use super::{
    ACCESS_TOKEN, DELETE, EXCHANGE, GET, ID_TOKEN, JWT, acme, another_address, api_error,
    assert_basic_refused, assert_exchanged, assert_invalid_grant, assert_refused, created,
    exchange_basic, exchange_form, exchange_post, main_token, post_rule, release_rule,
};
use crate::support::{access, claims, encode, now, password_of, repo_access};

#[tokio::test]
async fn a_github_token_is_exchanged_both_ways_for_what_the_rule_grants() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    let before = now();
    let rule = release_rule(&app, &issuer).await;
    let created_at = rule["created_at"].as_str().unwrap().to_owned();
    let at = parse_rfc3339(&created_at).unwrap();
    assert!((before - 2..=now() + 2).contains(&at), "{created_at}");
    assert_eq!(
        rule,
        json!({
            "namespace": "acme",
            "name": "release",
            "issuer": issuer.url(),
            // Default audience: the registry's service.
            "audience": app.service,
            "claims": {"repository": "acme/app", "ref": "refs/heads/main"},
            // Default actions.
            "actions": ["pull", "push"],
            "repositories": ["acme/app"],
            "created_by": "olive",
            "created_at": created_at,
        })
    );
    let resp = app.api_as("olive", GET, "/api/v1/trust/acme", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), json!({"rules": [rule]}));

    let (id_token, id_claims) = main_token(&app, &issuer);
    let run_id = id_claims["run_id"].as_str().unwrap();
    let sub = format!("trust:acme/release:repo:acme/app:ref:refs/heads/main@run:{run_id}");
    let scope = "repository:acme/app:pull,push";

    // RFC 8693.
    let body = exchange_post(&app, &id_token, &[scope]).await;
    assert_eq!(body["scope"], scope);
    let token = body["token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["sub"], sub);
    assert_eq!(c["iss"], "berth");
    assert_eq!(c["aud"], app.service);
    assert_eq!(
        c["access"],
        json!([repo_access("acme/app", &["pull", "push"])])
    );
    let trust = c["berth_trust"].as_array().unwrap();
    assert_eq!(trust.len(), 1, "{c}");
    assert!(trust[0].is_i64(), "{c}");
    // The plain JWT token type names the same thing.
    let form = exchange_form(&app, &id_token, &[scope]).replace(&encode(ID_TOKEN), &encode(JWT));
    let body = assert_exchanged(&app.token_post(&form).await);
    assert_eq!(claims(body["token"].as_str().unwrap())["sub"], sub);

    // Basic oidc:<ID token>, on GET and in the password grant.
    let basic = exchange_basic(&app, &id_token, &[scope]).await;
    assert_eq!(claims(&basic)["sub"], sub);
    assert_eq!(
        access(&basic),
        json!([repo_access("acme/app", &["pull", "push"])])
    );
    let form = format!(
        "grant_type=password&username=oidc&password={}&service={}&scope={}",
        encode(&id_token),
        encode(&app.service),
        encode(scope)
    );
    let resp = app.token_post(&form).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(claims(resp.json()["token"].as_str().unwrap())["sub"], sub);

    // The token pushes where the rule says.
    app.push_image("acme/app", "v1", token).await;
    app.push_image("acme/app", "v2", &basic).await;
    let resp = app.get("/v2/acme/app/tags/list", Some(token)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn a_push_outside_the_rules_repositories_is_refused() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    app.user("alice").await;
    let (id_token, _) = main_token(&app, &issuer);

    // Asked for, not granted: the grant is what was asked ∩ what the rule gives.
    let body = exchange_post(
        &app,
        &id_token,
        &[
            "repository:acme/other:pull,push",
            "repository:acme/app/sub:push",
            "repository:alice/app:pull,push",
            "repository:acme/app:pull,push,delete",
        ],
    )
    .await;
    assert_eq!(body["scope"], "repository:acme/app:pull,push");
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        access(token),
        json!([repo_access("acme/app", &["pull", "push"])])
    );

    // The gate refuses a push elsewhere as it refuses any principal that may
    // not push there (the `gate` suite's convention): 403 DENIED.
    for name in ["acme/other", "alice/app"] {
        let resp = app
            .post(&format!("/v2/{name}/blobs/uploads/"), Some(token), b"")
            .await;
        resp.assert_error(403, "DENIED");
    }
    // A token asked for the other repository only carries nothing.
    let other = exchange_basic(&app, &id_token, &["repository:acme/other:pull,push"]).await;
    assert_eq!(access(&other), json!([]));
    let resp = app
        .post("/v2/acme/other/blobs/uploads/", Some(&other), b"")
        .await;
    resp.assert_error(403, "DENIED");
}

#[tokio::test]
async fn rules_of_two_namespaces_matching_one_token_grant_the_union() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    let tina = app.user("tina").await;
    app.org("tools", &tina).await;
    release_rule(&app, &issuer).await;
    created(
        &post_rule(
            &app,
            "tina",
            "tools",
            json!({
                "name": "mirror",
                "issuer": issuer.url(),
                "claims": {"repository_owner": "acme", "ref": "refs/heads/*"},
                "actions": ["pull"],
                "repositories": ["tools/**"],
            }),
        )
        .await,
    );
    let (id_token, id_claims) = main_token(&app, &issuer);
    let body = exchange_post(
        &app,
        &id_token,
        &[
            "repository:acme/app:pull,push",
            "repository:tools/cache/x:pull,push",
            "repository:tools/other:delete",
        ],
    )
    .await;
    assert_eq!(
        body["scope"],
        "repository:acme/app:pull,push repository:tools/cache/x:pull"
    );
    let c = claims(body["token"].as_str().unwrap());
    assert_eq!(
        c["access"],
        json!([
            repo_access("acme/app", &["pull", "push"]),
            repo_access("tools/cache/x", &["pull"]),
        ])
    );
    let run = id_claims["run_id"].as_str().unwrap();
    let sub = c["sub"].as_str().unwrap();
    assert!(
        [
            format!("trust:acme/release+tools/mirror:repo:acme/app:ref:refs/heads/main@run:{run}"),
            format!("trust:tools/mirror+acme/release:repo:acme/app:ref:refs/heads/main@run:{run}"),
        ]
        .iter()
        .any(|s| s == sub),
        "{sub}"
    );
    let trust = c["berth_trust"].as_array().unwrap();
    assert_eq!(trust.len(), 2, "{c}");
    assert_ne!(trust[0], trust[1]);
}

#[tokio::test]
async fn a_workload_pulls_public_repositories_as_anyone_does() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    app.seed_image("acme/public", "v1").await;
    app.set_public("acme/public", true).await;
    app.seed_image("acme/private", "v1").await;
    let (id_token, _) = main_token(&app, &issuer);
    let body = exchange_post(
        &app,
        &id_token,
        &[
            "repository:acme/public:pull,push",
            "repository:acme/private:pull",
        ],
    )
    .await;
    assert_eq!(body["scope"], "repository:acme/public:pull");
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        access(token),
        json!([repo_access("acme/public", &["pull"])])
    );
    let resp = app.get("/v2/acme/public/manifests/v1", Some(token)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[tokio::test]
async fn a_gitlab_token_is_exchanged_under_a_gitlab_issuer() {
    let (app, issuer) = acme(IssuerKind::Gitlab).await;
    // GitHub's claim names are not GitLab's.
    let resp = post_rule(
        &app,
        "olive",
        "acme",
        json!({"issuer": issuer.url(), "claims": {"repository": "acme/app"}, "repositories": ["acme/app"]}),
    )
    .await;
    let message = api_error(&resp, 400);
    assert!(message.contains("repository"), "{message}");

    created(
        &post_rule(
            &app,
            "olive",
            "acme",
            json!({
                "name": "ci",
                "issuer": issuer.url(),
                "claims": {
                    "project_path": "acme/platform/*",
                    "ref_type": "tag",
                    "ref_protected": "true",
                },
                "actions": ["pull", "push", "delete"],
                "repositories": ["acme/platform/**"],
            }),
        )
        .await,
    );
    let scope = "repository:acme/platform/api:pull,push,delete";
    let id_claims = issuer.gitlab_claims("acme/platform/api", "refs/tags/v3", &app.service);
    let body = exchange_post(&app, &issuer.mint(id_claims.clone()), &[scope]).await;
    // The granted scope in the registry's canonical order.
    assert_eq!(
        body["scope"],
        "repository:acme/platform/api:delete,pull,push"
    );
    let c = claims(body["token"].as_str().unwrap());
    assert_eq!(
        c["sub"],
        format!(
            "trust:acme/ci:project_path:acme/platform/api:ref_type:tag:ref:v3@job:{}",
            id_claims["job_id"].as_str().unwrap()
        )
    );
    assert_eq!(
        c["access"],
        json!([repo_access(
            "acme/platform/api",
            &["delete", "pull", "push"]
        )])
    );
    let basic = exchange_basic(&app, &issuer.mint(id_claims), &[scope]).await;
    app.push_image("acme/platform/api", "v3", &basic).await;

    // A branch pipeline, or an unprotected tag, is not the rule's.
    let branch = issuer.gitlab_claims("acme/platform/api", "main", &app.service);
    assert_refused(&app, &issuer.mint(branch), &[scope], "no trust rule").await;
    let mut unprotected = issuer.gitlab_claims("acme/platform/api", "refs/tags/v4", &app.service);
    unprotected["ref_protected"] = json!("false");
    assert_refused(&app, &issuer.mint(unprotected), &[scope], "no trust rule").await;
}

#[tokio::test]
async fn a_malformed_exchange_request_is_invalid_request() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let (id_token, _) = main_token(&app, &issuer);
    let (grant, token, id_type) = (encode(EXCHANGE), encode(&id_token), encode(ID_TOKEN));
    let service = encode(&app.service);
    let cases = [
        (
            "no subject_token",
            format!("grant_type={grant}&subject_token_type={id_type}&service={service}"),
        ),
        (
            "an empty subject_token",
            format!(
                "grant_type={grant}&subject_token=&subject_token_type={id_type}&service={service}"
            ),
        ),
        (
            "no subject_token_type",
            format!("grant_type={grant}&subject_token={token}&service={service}"),
        ),
        (
            "an access token's subject_token_type",
            format!(
                "grant_type={grant}&subject_token={token}&subject_token_type={}&service={service}",
                encode(ACCESS_TOKEN)
            ),
        ),
    ];
    // Every case answered before any assertion, so that a failure shows all.
    let mut answers = Vec::new();
    for (case, form) in &cases {
        let resp = app.token_post(form).await;
        assert!(
            !resp.text().contains(&id_token),
            "{case}: the ID token is echoed"
        );
        answers.push((*case, resp.status, resp.json()["error"].clone()));
    }
    let expected: Vec<_> = cases
        .iter()
        .map(|(case, _)| (*case, 400, json!("invalid_request")))
        .collect();
    assert_eq!(answers, expected);
}

/// Refused exchanges are failed logins. They count per address and per
/// address and workload (the ID token's issuer and subject, both ways: the
/// RFC 8693 `POST` and Basic `oidc:` share it), so one job's broken token
/// locks out that job, not the other jobs behind the same address (CI
/// runners share addresses); the per-address limit still holds for all.
#[tokio::test]
async fn refused_exchanges_count_toward_the_failure_limit() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let from = another_address();
    let client = app.client_from(from);
    let scope = "repository:acme/app:pull";
    let stray_of = |repository: &str| {
        issuer.mint(issuer.github_claims(repository, "refs/heads/main", &app.service))
    };
    let stray = stray_of("evil/app");
    for i in 0..MAX_FAILURES_PER_USER_AND_ADDRESS {
        if i % 2 == 0 {
            let resp = app
                .token_post_from(from, &exchange_form(&app, &stray, &[scope]))
                .await;
            assert_invalid_grant(&resp, "no trust rule");
        } else {
            let resp = app
                .token_get_with(&client, Some(("oidc", &stray)), &app.token_query(&[scope]))
                .await;
            assert_basic_refused(&app, &resp, "no trust rule");
        }
    }
    // Past the limit, that workload waits, both ways...
    for resp in [
        app.token_post_from(from, &exchange_form(&app, &stray, &[scope]))
            .await,
        app.token_get_with(&client, Some(("oidc", &stray)), &app.token_query(&[scope]))
            .await,
    ] {
        resp.assert_error(429, "TOOMANYREQUESTS");
        let retry: u64 = resp.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    }
    // ...while another job's ID token from the same address is exchanged,
    // and the password logins of that address work.
    let (good, _) = main_token(&app, &issuer);
    let resp = app
        .token_post_from(from, &exchange_form(&app, &good, &[scope]))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = app
        .token_get_with(
            &client,
            Some(("olive", &password_of("olive"))),
            &app.token_query(&[scope]),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Failures of many workloads reach the address' limit: then everything
    // from it waits, and another address is not locked out.
    for i in MAX_FAILURES_PER_USER_AND_ADDRESS..MAX_FAILURES_PER_ADDRESS {
        let resp = app
            .token_post_from(
                from,
                &exchange_form(&app, &stray_of(&format!("evil/app{i}")), &[scope]),
            )
            .await;
        assert_invalid_grant(&resp, "no trust rule");
    }
    let resp = app
        .token_post_from(from, &exchange_form(&app, &good, &[scope]))
        .await;
    resp.assert_error(429, "TOOMANYREQUESTS");
    exchange_post(&app, &good, &[scope]).await;
}

/// Another namespace's rule that accepts the same job plays no part in a
/// request for this namespace's repositories: it is not named in the token,
/// grants nothing there, and removing it does not end the job's tokens (a
/// stranger can neither swell nor revoke another organisation's CI tokens).
/// A request naming no repository (a login's check) names no rule at all.
#[tokio::test]
async fn a_strangers_rule_neither_shows_in_nor_revokes_another_namespaces_tokens() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    app.user("mallory").await;
    created(
        &post_rule(
            &app,
            "mallory",
            "mallory",
            json!({
                "name": "shadow",
                "issuer": issuer.url(),
                "claims": {"repository": "acme/app"},
                "repositories": ["mallory/**"],
            }),
        )
        .await,
    );
    let (id_token, id_claims) = main_token(&app, &issuer);
    let run = id_claims["run_id"].as_str().unwrap();
    let body = exchange_post(&app, &id_token, &["repository:acme/app:pull,push"]).await;
    let token = body["token"].as_str().unwrap().to_owned();
    let c = claims(&token);
    assert_eq!(
        c["sub"],
        format!("trust:acme/release:repo:acme/app:ref:refs/heads/main@run:{run}")
    );
    assert_eq!(c["berth_trust"].as_array().map(Vec::len), Some(1), "{c}");

    let resp = app
        .api_as("mallory", DELETE, "/api/v1/trust/mallory/shadow", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let tags = "/v2/acme/app/tags/list";
    app.push_blob("acme/app", &token, b"still mine").await;
    assert_eq!(app.get(tags, Some(&token)).await.status, 200);

    // No repository asked about: the identity is proven, nothing granted,
    // no rule named.
    let body = exchange_post(&app, &id_token, &[]).await;
    let c = claims(body["token"].as_str().unwrap());
    assert_eq!(
        c["sub"],
        format!("trust:repo:acme/app:ref:refs/heads/main@run:{run}")
    );
    assert_eq!(c["access"], json!([]));
    assert!(c.get("berth_trust").is_none(), "{c}");
    // A namespace none of whose rules accepts the job: refused, naming it.
    assert_refused(
        &app,
        &id_token,
        &["repository:olive/app:pull"],
        "no trust rule of namespace olive",
    )
    .await;
}
