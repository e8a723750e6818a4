//! Trust rules over the admin API: checked at creation (patterns inside the
//! namespace, claims the platform documents, something identifying pinned),
//! managed only by whoever manages the namespace (and by a PAT only with
//! pull, push and delete on `<ns>/**`), and, once deleted, the end of the
//! registry tokens issued through them.

use berth_registry::identity::Role;
use berth_registry::trust::IssuerKind;
use berth_test_issuer::Issuer;
use serde_json::{Value, json};

use super::{
    DELETE, GET, POST, acme, api_error, app_trusting, assert_refused, created, exchange_post,
    main_token, post_rule, release_rule,
};
use crate::revocation::assert_refused_within;
use crate::support::{basic_header, claims, now, password_of, repo_access};

#[tokio::test]
async fn a_rule_is_checked_at_creation() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    let url = issuer.url();
    let refused = |body: Value| {
        let app = &app;
        async move {
            let resp = post_rule(app, "olive", "acme", body).await;
            api_error(&resp, 400)
        }
    };
    // A pattern outside the namespace, in every form.
    for pattern in ["other/app", "acmex/app", "*/app", "**"] {
        let message = refused(json!({
            "issuer": url,
            "claims": {"repository": "acme/app"},
            "repositories": ["acme/app", pattern],
        }))
        .await;
        assert!(message.contains(pattern), "{pattern}: {message}");
    }
    // No repositories, no claims.
    refused(json!({"issuer": url, "claims": {"repository": "acme/app"}, "repositories": []})).await;
    refused(json!({"issuer": url, "claims": {}, "repositories": ["acme/app"]})).await;
    refused(json!({"issuer": url, "repositories": ["acme/app"]})).await;
    // An issuer the registry does not trust (GitHub's own is not configured here).
    let message = refused(json!({
        "issuer": "https://token.actions.githubusercontent.com",
        "claims": {"repository": "acme/app"},
        "repositories": ["acme/app"],
    }))
    .await;
    assert!(
        message.contains("https://token.actions.githubusercontent.com"),
        "{message}"
    );
    // A bad name, an unknown action.
    refused(json!({
        "name": "Release!",
        "issuer": url,
        "claims": {"repository": "acme/app"},
        "repositories": ["acme/app"],
    }))
    .await;
    refused(json!({
        "issuer": url,
        "claims": {"repository": "acme/app"},
        "actions": ["pull", "admin"],
        "repositories": ["acme/app"],
    }))
    .await;
    // Nothing identifying pinned: every job on GitHub would match.
    for claims in [
        json!({"ref": "refs/heads/main"}),
        json!({"repository": "*/app"}),
        json!({"repository_owner": "*"}),
    ] {
        refused(json!({"issuer": url, "claims": claims, "repositories": ["acme/app"]})).await;
    }

    let resp = app.api_as("olive", GET, "/api/v1/trust/acme", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json(),
        json!({"rules": []}),
        "nothing refused was stored"
    );

    // A default name, then a taken one.
    let first = created(
        &post_rule(
            &app,
            "olive",
            "acme",
            json!({"issuer": url, "claims": {"repository": "acme/app"}, "repositories": ["acme/*"]}),
        )
        .await,
    );
    let name = first["name"].as_str().unwrap();
    assert!(name.starts_with("rule-"), "{first}");
    let resp = post_rule(
        &app,
        "olive",
        "acme",
        json!({"name": name, "issuer": url, "claims": {"repository": "acme/app"}, "repositories": ["acme/**"]}),
    )
    .await;
    assert_eq!(resp.status, 409, "{}", resp.text());
    api_error(&resp, 409);
}

#[tokio::test]
async fn a_misspelt_claim_is_refused_for_a_known_platform_only() {
    let github = Issuer::start().await;
    let generic = Issuer::start().await;
    let app = app_trusting(
        &[
            (IssuerKind::Github, &github),
            (IssuerKind::Generic, &generic),
        ],
        |_| {},
    )
    .await;
    app.user("alice").await;
    let resp = post_rule(
        &app,
        "alice",
        "alice",
        json!({
            "issuer": github.url(),
            "claims": {"repositry": "alice/app"},
            "repositories": ["alice/app"],
        }),
    )
    .await;
    let message = api_error(&resp, 400);
    assert!(message.contains("repositry"), "{message}");

    // A generic issuer's claims are whatever it sends.
    let rule = created(
        &post_rule(
            &app,
            "alice",
            "alice",
            json!({
                "name": "generic",
                "issuer": generic.url(),
                "claims": {"repositry": "alice/app"},
                "repositories": ["alice/app"],
            }),
        )
        .await,
    );
    assert_eq!(rule["claims"], json!({"repositry": "alice/app"}));
    let id_token = generic.mint(json!({
        "iss": generic.url(),
        "aud": app.service,
        "sub": "job-7",
        "repositry": "alice/app",
        "iat": now(),
        "nbf": now(),
        "exp": now() + 300,
    }));
    let body = exchange_post(&app, &id_token, &["repository:alice/app:pull,push"]).await;
    let c = claims(body["token"].as_str().unwrap());
    // No run claim for a generic issuer.
    assert_eq!(c["sub"], "trust:alice/generic:job-7");
    assert_eq!(
        c["access"],
        json!([repo_access("alice/app", &["pull", "push"])])
    );
}

#[tokio::test]
async fn only_whoever_manages_the_namespace_manages_its_rules() {
    let issuer = Issuer::start().await;
    let app = app_trusting(&[(IssuerKind::Github, &issuer)], |_| {}).await;
    let olive = app.user("olive").await;
    let acme = app.org("acme", &olive).await;
    let bob = app.user("bob").await;
    app.user("carol").await;
    app.member(&acme, &bob, Role::Maintainer).await;
    let body = |repositories: Value, actions: Value| {
        json!({
            "issuer": issuer.url(),
            "claims": {"repository": "acme/app"},
            "actions": actions,
            "repositories": repositories,
        })
    };

    // A maintainer is not the owner; a stranger is nobody: 403 alike, whether
    // the namespace exists or not.
    for user in ["bob", "carol"] {
        for namespace in ["acme", "ghost"] {
            let resp = post_rule(
                &app,
                user,
                namespace,
                body(json!([format!("{namespace}/app")]), json!(["pull"])),
            )
            .await;
            resp.assert_error(403, "DENIED");
            let resp = app
                .api_as(user, GET, &format!("/api/v1/trust/{namespace}"), None)
                .await;
            resp.assert_error(403, "DENIED");
        }
    }
    // The administrator learns that it does not exist.
    let resp = app
        .admin_api(
            POST,
            "/api/v1/trust/ghost",
            Some(body(json!(["ghost/app"]), json!(["pull"]))),
        )
        .await;
    api_error(&resp, 404);
    // ... and may manage any namespace.
    let by_admin = created(
        &app.admin_api(
            POST,
            "/api/v1/trust/acme",
            Some(body(json!(["acme/app"]), json!(["pull"]))),
        )
        .await,
    );
    assert_eq!(by_admin["created_by"], "admin");

    // A user, their own namespace; not another user's.
    let resp = post_rule(
        &app,
        "bob",
        "bob",
        body(json!(["bob/app"]), json!(["pull", "push"])),
    )
    .await;
    created(&resp);
    let resp = post_rule(
        &app,
        "bob",
        "olive",
        body(json!(["olive/app"]), json!(["pull"])),
    )
    .await;
    resp.assert_error(403, "DENIED");

    // Through a personal access token: pull, push and delete on `acme/**`.
    let pull_only = app
        .pat(&olive, "pull-only", "pull", &["acme/**"], 3600)
        .await;
    let full = app
        .pat(&olive, "full", "pull,push,delete", &["acme/**"], 3600)
        .await;
    let narrow = app
        .pat(&olive, "narrow", "pull,push,delete", &["acme/app"], 3600)
        .await;
    for pat in [&pull_only, &narrow] {
        let resp = app
            .api_with(
                POST,
                "/api/v1/trust/acme",
                &basic_header("olive", pat),
                Some(body(json!(["acme/app"]), json!(["pull", "push"]))),
            )
            .await;
        resp.assert_error(403, "DENIED");
    }
    let resp = app
        .api_with(
            POST,
            "/api/v1/trust/acme",
            &basic_header("olive", &full),
            Some(body(json!(["acme/app"]), json!(["pull", "push"]))),
        )
        .await;
    assert_eq!(created(&resp)["created_by"], "olive");
    // A refresh token as bearer is olive herself.
    let refresh = app.refresh_token("olive", &password_of("olive")).await;
    let resp = app
        .api_with(
            GET,
            "/api/v1/trust/acme",
            &format!("Bearer {refresh}"),
            None,
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["rules"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_deleted_rule_stops_the_tokens_issued_through_it() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    release_rule(&app, &issuer).await;
    let (id_token, _) = main_token(&app, &issuer);
    let body = exchange_post(&app, &id_token, &["repository:acme/app:pull,push"]).await;
    let token = body["token"].as_str().unwrap();
    app.push_image("acme/app", "v1", token).await;
    let tags = "/v2/acme/app/tags/list";
    assert_eq!(app.get(tags, Some(token)).await.status, 200);

    // Only the owner deletes it.
    app.user("bob").await;
    let resp = app
        .api_as("bob", DELETE, "/api/v1/trust/acme/release", None)
        .await;
    resp.assert_error(403, "DENIED");
    assert_eq!(app.get(tags, Some(token)).await.status, 200);

    let resp = app
        .api_as("olive", DELETE, "/api/v1/trust/acme/release", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert!(resp.body.is_empty());
    assert_refused_within(&app, "", tags, token, "repository:acme/app:pull").await;
    // No rule now: the same ID token is refused.
    assert_refused(
        &app,
        &id_token,
        &["repository:acme/app:pull"],
        "no trust rule",
    )
    .await;
    let resp = app
        .api_as("olive", DELETE, "/api/v1/trust/acme/release", None)
        .await;
    assert_eq!(resp.status, 404, "{}", resp.text());
    // A new rule of the same name works for new tokens, not the old one.
    release_rule(&app, &issuer).await;
    let again = exchange_post(&app, &id_token, &["repository:acme/app:pull"]).await;
    assert_eq!(
        app.get(tags, Some(again["token"].as_str().unwrap()))
            .await
            .status,
        200
    );
    assert_eq!(app.get(tags, Some(token)).await.status, 401);
}

/// Claims naming the workflow or CI file a job ran do not say whose job it
/// is (any repository may call a public reusable workflow, or use another
/// project's CI file): a rule pinned only on them is refused, as is one
/// whose pinned claim starts with a wildcard. Beside an identifying claim
/// they narrow a rule as any claim does.
#[tokio::test]
async fn a_rule_must_pin_whose_jobs_it_accepts() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    let workflow = "acme/shared/.github/workflows/release.yml@refs/heads/main";
    for claims in [
        json!({"job_workflow_ref": workflow}),
        json!({"repository": "*/app"}),
        json!({"repository": "**"}),
    ] {
        let resp = post_rule(
            &app,
            "olive",
            "acme",
            json!({"issuer": issuer.url(), "claims": claims, "repositories": ["acme/app"]}),
        )
        .await;
        assert!(
            api_error(&resp, 400).contains("whose jobs"),
            "{claims}: {}",
            resp.text()
        );
    }
    created(
        &post_rule(
            &app,
            "olive",
            "acme",
            json!({
                "issuer": issuer.url(),
                "claims": {"repository_owner": "acme", "job_workflow_ref": workflow},
                "repositories": ["acme/app"],
            }),
        )
        .await,
    );

    let (gitlab_app, gitlab) = acme(IssuerKind::Gitlab).await;
    let resp = post_rule(
        &gitlab_app,
        "olive",
        "acme",
        json!({
            "issuer": gitlab.url(),
            "claims": {"ci_config_ref_uri": "gitlab.com/**"},
            "repositories": ["acme/**"],
        }),
    )
    .await;
    assert!(
        api_error(&resp, 400).contains("whose jobs"),
        "{}",
        resp.text()
    );
}

/// A namespace has at most 100 rules: an exchange reads the rules of the
/// namespaces it asks about.
#[tokio::test]
async fn a_namespace_has_at_most_a_hundred_rules() {
    let (app, issuer) = acme(IssuerKind::Github).await;
    for i in 0..100 {
        created(
            &post_rule(
                &app,
                "olive",
                "acme",
                json!({
                    "name": format!("r{i}"),
                    "issuer": issuer.url(),
                    "claims": {"repository": format!("acme/app{i}")},
                    "repositories": ["acme/app"],
                }),
            )
            .await,
        );
    }
    let resp = post_rule(
        &app,
        "olive",
        "acme",
        json!({"issuer": issuer.url(), "claims": {"repository": "acme/x"}, "repositories": ["acme/x"]}),
    )
    .await;
    assert!(
        api_error(&resp, 409).contains("100 trust rules"),
        "{}",
        resp.text()
    );
}
