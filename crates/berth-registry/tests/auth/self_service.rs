//! The account API over HTTP: a user's own tokens (never beyond their rights,
//! never broader than the token that makes them) and password (the old one
//! required, old logins ended); an organisation owner's members, robots and
//! visibility; refusals that read alike for what exists and what does not;
//! and the administrator's lists, deletions and key retirement.

use berth_core::token::format_rfc3339;
use berth_registry::Config;
use berth_registry::identity::Role;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::revocation::assert_refused_within;
use crate::support::{
    ADMIN_PASSWORD, LIFETIME, Resp, TestApp, access, basic_header, encode, password_of, repo_access,
};

/// An answer's status and JSON body.
#[track_caller]
fn answer(resp: &Resp) -> (u16, Value) {
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{}: {}",
        resp.status,
        resp.text()
    );
    (resp.status, resp.json())
}

/// The error body `{"errors":[{"code","message"}]}`.
fn error(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message}]})
}

fn denied(message: &str) -> (u16, Value) {
    (403, error("DENIED", message))
}

const POST: Method = Method::POST;
const GET: Method = Method::GET;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

#[tokio::test]
async fn a_user_creates_lists_and_revokes_their_own_tokens() {
    let app = TestApp::start().await;
    app.user("alice").await;
    app.user("bob").await;
    let resp = app
        .api_as(
            "alice",
            POST,
            "/api/v1/user/tokens",
            Some(json!({"name": "ci", "actions": ["pull", "push"], "repositories": ["alice/*"], "expires_in_days": 30})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let created = resp.json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("berth_pat_"), "{created}");
    assert_eq!(
        (
            &created["user"],
            &created["name"],
            &created["actions"],
            &created["repositories"],
            &created["last_used_at"]
        ),
        (
            &json!("alice"),
            &json!("ci"),
            &json!(["pull", "push"]),
            &json!(["alice/*"]),
            &Value::Null
        )
    );

    // It works at /token within its limits, and only there.
    let token = app
        .token(
            Some(("alice", &secret)),
            &[
                "repository:alice/app:pull,push,delete",
                "repository:alice/a/b:pull",
            ],
        )
        .await;
    assert_eq!(
        access(&token),
        json!([repo_access("alice/app", &["pull", "push"])])
    );

    // Listed without its secret, at both addresses.
    for path in ["/api/v1/user/tokens", "/api/v1/users/alice/tokens"] {
        let resp = app.api_as("alice", GET, path, None).await;
        let (status, body) = answer(&resp);
        assert_eq!(status, 200);
        assert_eq!(body["user"], "alice");
        let tokens = body["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), 1, "{body}");
        assert_eq!(tokens[0]["name"], "ci");
        assert_eq!(tokens[0]["expired"], false);
        assert!(!resp.text().contains("berth_pat_"), "{body}");
    }

    // Another user's tokens: refused alike whether that user exists or not.
    for other in ["bob", "ghost"] {
        let resp = app
            .api_as("alice", GET, &format!("/api/v1/users/{other}/tokens"), None)
            .await;
        assert_eq!(
            answer(&resp),
            denied(&format!(
                "`alice` may manage only their own personal access tokens and those of the \
                 robots of organisations they own, not those of `{other}`"
            ))
        );
    }

    // Revoked at once: the token service refuses it.
    let resp = app
        .api_as("alice", DELETE, "/api/v1/user/tokens/ci", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let refused = app
        .token_get(Some(("alice", &secret)), &app.token_query(&[]))
        .await;
    assert_eq!(refused.status, 401);
    let resp = app
        .api_as("alice", DELETE, "/api/v1/user/tokens/ci", None)
        .await;
    assert_eq!(
        answer(&resp),
        (
            404,
            error(
                "TOKEN_UNKNOWN",
                "user `alice` has no token named `ci`; list them with `berth token list --user alice`"
            )
        )
    );
}

#[tokio::test]
async fn a_token_beyond_the_users_rights_is_refused_naming_why() {
    let app = TestApp::start().await;
    let olive = app.user("olive").await;
    let bob = app.user("bob").await;
    let acme = app.org("acme", &olive).await;
    app.member(&acme, &bob, Role::Member).await;
    let create = |body: Value| app.api_as("bob", POST, "/api/v1/user/tokens", Some(body));

    let resp = create(json!({"name": "x", "repositories": ["olive/*"]})).await;
    assert_eq!(
        answer(&resp),
        denied(
            "a token of `bob` cannot carry pull on `olive/*`: `bob` may pull only in `bob/...`, \
             `acme/...`; limit the token to repositories there"
        )
    );
    let resp = create(json!({"name": "x", "actions": ["push"], "repositories": ["acme/*"]})).await;
    assert_eq!(
        answer(&resp),
        denied(
            "a token of `bob` cannot carry push on `acme/*`: `bob` may push only in `bob/...`; \
             limit the token to repositories there"
        )
    );
    let resp = create(json!({"name": "x", "actions": ["pull"], "repositories": ["**"]})).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = create(json!({"name": "x", "repositories": ["Acme/*"]})).await;
    assert_eq!(answer(&resp).0, 400);
    assert_eq!(answer(&resp).1["errors"][0]["code"], "TOKEN_INVALID");

    // Within his rights: his namespace, and pull where he is a member.
    let resp =
        create(json!({"name": "x", "actions": ["pull"], "repositories": ["acme/*", "bob/**"]}))
            .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = app.api_as("bob", GET, "/api/v1/user/tokens", None).await;
    let names: Vec<String> = resp.json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["x"], "nothing of the refused requests was stored");
}

#[tokio::test]
async fn a_personal_access_token_makes_no_broader_token_and_never_the_password() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let pat = app
        .pat(
            &alice,
            "narrow",
            "pull,push",
            &["alice/app", "alice/lib-*"],
            10 * 86_400,
        )
        .await;
    let by_pat = basic_header("alice", &pat);
    let create = |body: Value| app.api_with(POST, "/api/v1/user/tokens", &by_pat, Some(body));
    let prefix = "this request is made with the personal access token `narrow`, and a token it \
                  creates or revokes may be no broader than itself: ";

    let resp = create(json!({"name": "child", "actions": ["pull"], "repositories": ["alice/lib-x"], "expires_in_days": 1})).await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = create(json!({"name": "c", "actions": ["pull", "delete"], "repositories": ["alice/app"], "expires_in_days": 1})).await;
    assert_eq!(
        answer(&resp),
        denied(&format!("{prefix}it carries pull,push, not delete"))
    );
    let resp = create(json!({"name": "c", "actions": ["pull"], "expires_in_days": 1})).await;
    assert_eq!(
        answer(&resp),
        denied(&format!(
            "{prefix}it is limited to the repositories alice/app alice/lib-*, and this one is not"
        ))
    );
    let resp = create(json!({"name": "c", "actions": ["pull"], "repositories": ["alice/*"], "expires_in_days": 1})).await;
    assert_eq!(
        answer(&resp),
        denied(&format!(
            "{prefix}`alice/*` is not within its repositories (alice/app alice/lib-*)"
        ))
    );
    let resp = create(json!({"name": "c", "actions": ["pull"], "repositories": ["alice/app"], "expires_in_days": 30})).await;
    let (status, body) = answer(&resp);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(status, 403);
    assert!(
        message.starts_with(&format!("{prefix}it expires at "))
            && message.ends_with(", before this one (ask for fewer `expires_in_days`)"),
        "{message}"
    );

    // Revoking: not a broader token; a narrower one, and itself.
    let resp = app
        .api_as(
            "alice",
            POST,
            "/api/v1/user/tokens",
            Some(json!({"name": "wide"})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = app
        .api_with(DELETE, "/api/v1/user/tokens/wide", &by_pat, None)
        .await;
    assert_eq!(
        answer(&resp),
        denied(&format!(
            "{prefix}it is limited to the repositories alice/app alice/lib-*, and this one is not"
        ))
    );
    let resp = app
        .api_with(DELETE, "/api/v1/user/tokens/child", &by_pat, None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());

    // Never the password, whatever the token carries.
    let full = app.pat(&alice, "full", "pull,push,delete", &[], 3600).await;
    let resp = app
        .api_with(
            PUT,
            "/api/v1/user/password",
            &basic_header("alice", &full),
            Some(json!({"old_password": password_of("alice"), "new_password": "a-new-password"})),
        )
        .await;
    assert_eq!(
        answer(&resp),
        denied(
            "a personal access token cannot change the password: a token is a narrower \
             credential than the password it would replace; log in with the password (or the \
             refresh token `berth login` stores) to change it"
        )
    );

    let resp = app
        .api_with(DELETE, "/api/v1/user/tokens/narrow", &by_pat, None)
        .await;
    assert_eq!(
        resp.status,
        204,
        "a token may revoke itself: {}",
        resp.text()
    );
    let resp = app.api_with(GET, "/api/v1/user", &by_pat, None).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
}

#[tokio::test]
async fn a_password_change_needs_the_old_password_and_ends_old_logins() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let scope = "repository:alice/app:pull,push";
    let before = app.user_token("alice", &[scope]).await;
    app.push_image("alice/app", "v1", &before).await;
    let refresh = app.refresh_token("alice", &password_of("alice")).await;
    let by_refresh = format!("Bearer {refresh}");
    let change = |old: &str, new: &str| {
        app.api_with(
            PUT,
            "/api/v1/user/password",
            &by_refresh,
            Some(json!({"old_password": old, "new_password": new})),
        )
    };

    // The refresh token `berth login` stores is a credential of the API.
    let resp = app.api_with(GET, "/api/v1/user", &by_refresh, None).await;
    assert_eq!(
        answer(&resp),
        (
            200,
            json!({"name": "alice", "admin": false, "robot_of": null, "orgs": [], "token": null})
        )
    );

    let resp = change("not-the-password", "alice-new-password").await;
    assert_eq!(
        answer(&resp),
        denied(
            "the old password is not right; nothing changed. Give the password you log in with now"
        )
    );
    let resp = change(&password_of("alice"), "short").await;
    assert_eq!(
        answer(&resp),
        (
            400,
            error(
                "INVALID_REQUEST",
                "the password is shorter than 8 characters; choose a longer one"
            )
        )
    );
    // Nothing changed so far: the refresh token still logs in.
    let form = format!(
        "grant_type=refresh_token&refresh_token={}&service={}&client_id=test",
        encode(&refresh),
        encode(&app.service)
    );
    assert_eq!(app.token_post(&form).await.status, 200);

    let resp = change(&password_of("alice"), "alice-new-password").await;
    assert_eq!(resp.status, 204, "{}", resp.text());

    // Old logins end: the refresh token (the one used, too), and the
    // registry tokens issued from the old password.
    assert_eq!(app.token_post(&form).await.status, 401);
    let resp = app.api_with(GET, "/api/v1/user", &by_refresh, None).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_refused_within(
        &app,
        "",
        "/v2/alice/app/tags/list",
        &before,
        "repository:alice/app:pull",
    )
    .await;
    let old = app
        .token_get(
            Some(("alice", &password_of("alice"))),
            &app.token_query(&[scope]),
        )
        .await;
    assert_eq!(old.status, 401);
    let new = app
        .token_get(
            Some(("alice", "alice-new-password")),
            &app.token_query(&[scope]),
        )
        .await;
    assert_eq!(new.status, 200, "{}", new.text());
}

#[tokio::test]
async fn an_owner_manages_members_robots_and_visibility() {
    let app = TestApp::start().await;
    let olive = app.user("olive").await;
    app.user("bob").await;
    app.org("acme", &olive).await;
    let owner = app
        .user_token("olive", &["repository:acme/app:pull,push"])
        .await;
    app.push_image("acme/app", "v1", &owner).await;

    let resp = app
        .api_as(
            "olive",
            PUT,
            "/api/v1/orgs/acme/members/bob",
            Some(json!({"role": "maintainer"})),
        )
        .await;
    assert_eq!(
        answer(&resp),
        (
            200,
            json!({"org": "acme", "user": "bob", "role": "maintainer"})
        )
    );
    // Any member sees the members, page by page.
    let resp = app
        .api_as("bob", GET, "/api/v1/orgs/acme/members", None)
        .await;
    assert_eq!(
        answer(&resp),
        (
            200,
            json!({"org": "acme", "members": [{"name": "bob", "role": "maintainer"}, {"name": "olive", "role": "owner"}]})
        )
    );
    let resp = app
        .api_as("bob", GET, "/api/v1/orgs/acme/members?n=1", None)
        .await;
    assert_eq!(
        resp.header("link"),
        Some(r#"</api/v1/orgs/acme/members?n=1&last=bob>; rel="next""#)
    );
    assert_eq!(
        resp.json()["members"],
        json!([{"name": "bob", "role": "maintainer"}])
    );
    let bobs = app
        .user_token("bob", &["repository:acme/app:pull,push"])
        .await;
    assert_eq!(
        access(&bobs),
        json!([repo_access("acme/app", &["pull", "push"])])
    );

    // A robot, its token, a second token for it, the list.
    let resp = app
        .api_as(
            "olive",
            POST,
            "/api/v1/orgs/acme/robots",
            Some(json!({"name": "acme-ci", "actions": ["pull"]})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let robot = resp.json();
    assert_eq!(
        (&robot["name"], &robot["org"]),
        (&json!("acme-ci"), &json!("acme"))
    );
    let robot_secret = robot["token"]["secret"].as_str().unwrap().to_owned();
    let robot_token = app
        .token(
            Some(("acme-ci", &robot_secret)),
            &["repository:acme/app:pull,push"],
        )
        .await;
    assert_eq!(
        access(&robot_token),
        json!([repo_access("acme/app", &["pull"])])
    );
    let resp = app
        .api_as(
            "olive",
            POST,
            "/api/v1/users/acme-ci/tokens",
            Some(json!({"name": "deploy", "actions": ["pull", "push"], "repositories": ["acme/app"]})),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = app
        .api_as("bob", GET, "/api/v1/orgs/acme/robots", None)
        .await;
    assert_eq!(
        answer(&resp),
        (200, json!({"org": "acme", "robots": [{"name": "acme-ci"}]}))
    );

    // Visibility: the organisation's repositories for its owner, one's own
    // for a user.
    let resp = app
        .api_as(
            "olive",
            PUT,
            "/api/v1/repositories/visibility",
            Some(json!({"repository": "acme/app", "visibility": "public"})),
        )
        .await;
    assert_eq!(
        answer(&resp),
        (
            200,
            json!({"repository": "acme/app", "visibility": "public"})
        )
    );
    let anonymous = app.anonymous_token(&["repository:acme/app:pull"]).await;
    assert_eq!(
        access(&anonymous),
        json!([repo_access("acme/app", &["pull"])])
    );
    let own = app
        .user_token("bob", &["repository:bob/tool:pull,push"])
        .await;
    app.push_image("bob/tool", "v1", &own).await;
    let resp = app
        .api_as(
            "bob",
            PUT,
            "/api/v1/repositories/visibility",
            Some(json!({"repository": "bob/tool", "visibility": "public"})),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = app.api_as("olive", GET, "/api/v1/repositories", None).await;
    assert_eq!(
        answer(&resp),
        (
            200,
            json!({"repositories": [{"name": "acme/app", "visibility": "public"}]})
        )
    );

    // The robot deleted, the member removed: their tokens end at once.
    let resp = app
        .api_as("olive", DELETE, "/api/v1/orgs/acme/robots/acme-ci", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_refused_within(
        &app,
        "",
        "/v2/acme/app/tags/list",
        &robot_token,
        "repository:acme/app:pull",
    )
    .await;
    let resp = app
        .api_as("olive", DELETE, "/api/v1/orgs/acme/members/bob", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_refused_within(
        &app,
        "",
        "/v2/acme/app/tags/list",
        &bobs,
        "repository:acme/app:pull",
    )
    .await;

    // The last owner stays.
    let resp = app
        .api_as("olive", DELETE, "/api/v1/orgs/acme/members/olive", None)
        .await;
    assert_eq!(
        answer(&resp),
        (
            409,
            error(
                "LAST_OWNER",
                "`olive` is the last owner of `acme`; make another member owner first (`berth \
                 org member add acme USER --role owner`), so that someone can still manage it"
            )
        )
    );
}

/// carol's answers (status, body with the organisation's name as `ORG`)
/// on organisation `org`, of which she is no member.
async fn outside(app: &TestApp, org: &str) -> Vec<(u16, String)> {
    let mut answers = Vec::new();
    for (method, path, body) in [
        (
            PUT,
            format!("/api/v1/orgs/{org}/members/carol"),
            Some(json!({"role": "member"})),
        ),
        (GET, format!("/api/v1/orgs/{org}/members"), None),
        (GET, format!("/api/v1/orgs/{org}/robots"), None),
        (
            POST,
            format!("/api/v1/orgs/{org}/robots"),
            Some(json!({"name": "x"})),
        ),
    ] {
        let resp = app.api_as("carol", method, &path, body).await;
        let (status, body) = answer(&resp);
        answers.push((status, body.to_string().replace(org, "ORG")));
    }
    answers
}

#[tokio::test]
async fn a_member_who_is_not_an_owner_is_refused_alike_for_what_exists_and_what_does_not() {
    let app = TestApp::start().await;
    let olive = app.user("olive").await;
    let bob = app.user("bob").await;
    app.user("carol").await;
    let acme = app.org("acme", &olive).await;
    app.member(&acme, &bob, Role::Maintainer).await;
    let owner = app
        .user_token("olive", &["repository:acme/app:pull,push"])
        .await;
    app.push_image("acme/app", "v1", &owner).await;
    let robot = app.robot(&acme, "acme-ci").await;
    app.pat(&robot, "default", "pull", &[], 3600).await;

    let not_owner = "`bob` is a maintainer of `acme`, not an owner: only its owners (or an \
                     administrator) manage its members and robots";
    let requests: [(Method, &str, Option<Value>); 5] = [
        (
            PUT,
            "/api/v1/orgs/acme/members/carol",
            Some(json!({"role": "member"})),
        ),
        (DELETE, "/api/v1/orgs/acme/members/olive", None),
        (
            POST,
            "/api/v1/orgs/acme/robots",
            Some(json!({"name": "bobs-robot"})),
        ),
        (DELETE, "/api/v1/orgs/acme/robots/acme-ci", None),
        (
            POST,
            "/api/v1/users/acme-ci/tokens",
            Some(json!({"name": "mine", "actions": ["pull"]})),
        ),
    ];
    for (method, path, body) in requests {
        let resp = app.api_as("bob", method.clone(), path, body.clone()).await;
        let expected = if path.starts_with("/api/v1/users/") {
            denied(
                "`bob` may manage only their own personal access tokens and those of the \
                 robots of organisations they own, not those of `acme-ci`",
            )
        } else {
            denied(not_owner)
        };
        assert_eq!(answer(&resp), expected, "{method} {path}");
    }
    let resp = app
        .api_as(
            "bob",
            PUT,
            "/api/v1/repositories/visibility",
            Some(json!({"repository": "acme/app", "visibility": "public"})),
        )
        .await;
    assert_eq!(
        answer(&resp),
        denied(
            "`bob` may not set the visibility of `acme/app`: only the user whose namespace it \
             is in, the owners of its organisation, or an administrator may"
        )
    );

    // Someone outside: an organisation that exists and one that does not
    // answer alike (but for the name).
    let acme_answers = outside(&app, "acme").await;
    assert_eq!(acme_answers, outside(&app, "ghost").await);
    assert_eq!(
        acme_answers[0],
        (
            403,
            error(
                "DENIED",
                "only an owner of the organisation `ORG` (or an administrator) manages its \
                 members and robots, and `carol` is none"
            )
            .to_string()
        )
    );
    assert_eq!(
        acme_answers[1],
        (
            403,
            error(
                "DENIED",
                "only the members of the organisation `ORG` (or an administrator) see its \
                 members and robots, and `carol` is none"
            )
            .to_string()
        )
    );

    // A private repository carol cannot see answers as a missing one: the
    // same bytes before and after it is deleted.
    let visibility = || {
        app.api_as(
            "carol",
            PUT,
            "/api/v1/repositories/visibility",
            Some(json!({"repository": "acme/app", "visibility": "public"})),
        )
    };
    let before = visibility().await;
    let resp = app
        .admin_api(DELETE, "/api/v1/repositories?repository=acme/app", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let after = visibility().await;
    assert_eq!((before.status, &before.body), (after.status, &after.body));
    assert_eq!(before.status, 403);

    // Nothing changed.
    let resp = app
        .api_as("olive", GET, "/api/v1/orgs/acme/members", None)
        .await;
    assert_eq!(
        resp.json()["members"],
        json!([{"name": "bob", "role": "maintainer"}, {"name": "olive", "role": "owner"}])
    );
}

#[tokio::test]
async fn administrators_list_users_organisations_and_repositories_page_by_page() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    app.user("carol").await;
    let acme = app.org("acme", &alice).await;
    app.robot(&acme, "acme-ci").await;

    let resp = app.admin_api(GET, "/api/v1/users?n=2", None).await;
    assert_eq!(
        answer(&resp),
        (
            200,
            json!({"users": [
                {"name": "acme-ci", "admin": false, "robot_of": "acme"},
                {"name": "admin", "admin": true, "robot_of": null},
            ]})
        )
    );
    let next = resp.header("link").unwrap().to_owned();
    assert_eq!(next, r#"</api/v1/users?n=2&last=admin>; rel="next""#);
    let resp = app
        .admin_api(GET, "/api/v1/users?n=2&last=admin", None)
        .await;
    assert_eq!(
        resp.json(),
        json!({"users": [
            {"name": "alice", "admin": false, "robot_of": null},
            {"name": "bob", "admin": false, "robot_of": null},
        ]})
    );
    let resp = app.admin_api(GET, "/api/v1/users?n=2&last=bob", None).await;
    assert_eq!(
        resp.json(),
        json!({"users": [{"name": "carol", "admin": false, "robot_of": null}]})
    );
    assert_eq!(resp.header("link"), None, "the last page");
    let resp = app.admin_api(GET, "/api/v1/users?n=5000", None).await;
    assert_eq!(answer(&resp).0, 400);
    assert_eq!(
        answer(&resp).1["errors"][0]["code"],
        "PAGINATION_NUMBER_INVALID"
    );

    let resp = app.admin_api(GET, "/api/v1/orgs", None).await;
    assert_eq!(answer(&resp), (200, json!({"orgs": [{"name": "acme"}]})));

    app.seed_image("alice/app", "v1").await;
    app.seed_image("acme/api", "v1").await;
    app.seed_image("acme/web", "v1").await;
    app.set_public("alice/app", true).await;
    let resp = app.admin_api(GET, "/api/v1/repositories", None).await;
    assert_eq!(
        answer(&resp),
        (
            200,
            json!({"repositories": [
                {"name": "acme/api", "visibility": "private"},
                {"name": "acme/web", "visibility": "private"},
                {"name": "alice/app", "visibility": "public"},
            ]})
        )
    );
    let resp = app
        .admin_api(GET, "/api/v1/repositories?namespace=acme&n=1", None)
        .await;
    assert_eq!(
        resp.json(),
        json!({"repositories": [{"name": "acme/api", "visibility": "private"}]})
    );
    assert_eq!(
        resp.header("link"),
        Some(r#"</api/v1/repositories?namespace=acme&n=1&last=acme%2Fapi>; rel="next""#)
    );

    // Only administrators list users and organisations; a user lists the
    // repositories they manage, and no one else's.
    for path in ["/api/v1/users", "/api/v1/orgs"] {
        let resp = app.api_as("bob", GET, path, None).await;
        assert_eq!(
            answer(&resp),
            denied(
                "`bob` is not an administrator; the admin API needs an administrator's credentials"
            ),
            "{path}"
        );
    }
    let resp = app.api_as("alice", GET, "/api/v1/repositories", None).await;
    assert_eq!(
        resp.json()["repositories"],
        json!([
            {"name": "acme/api", "visibility": "private"},
            {"name": "acme/web", "visibility": "private"},
            {"name": "alice/app", "visibility": "public"},
        ])
    );
    let resp = app
        .api_as("bob", GET, "/api/v1/repositories?namespace=acme", None)
        .await;
    assert_eq!(
        answer(&resp),
        denied(
            "`bob` may list only the repositories of the namespaces they manage (`bob`), not those of `acme`"
        )
    );
}

#[tokio::test]
async fn administrators_delete_organisations_robots_and_repositories() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    let acme = app.org("acme", &alice).await;
    let scopes = [
        "repository:acme/api:pull,push",
        "repository:acme/web:pull,push",
    ];
    let before = app.user_token("alice", &scopes).await;
    app.push_image("acme/api", "v1", &before).await;
    app.push_image("acme/web", "v1", &before).await;
    let robot = app.robot(&acme, "acme-ci").await;
    let robot_pat = app.pat(&robot, "default", "pull", &[], 3600).await;

    let resp = app.admin_api(DELETE, "/api/v1/orgs/acme", None).await;
    assert_eq!(
        answer(&resp),
        (
            409,
            error(
                "OWNS_REPOSITORIES",
                "organisation `acme` owns 2 repositories; delete them with it (`berth admin org \
                 delete acme --delete-repositories`, or `DELETE \
                 /api/v1/orgs/acme?delete_repositories=true`), or keep the organisation"
            )
        )
    );

    // A repository, whole: tokens issued on it end, a new one finds nothing.
    let resp = app
        .admin_api(DELETE, "/api/v1/repositories?repository=acme/web", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_refused_within(
        &app,
        "",
        "/v2/acme/web/tags/list",
        &before,
        "repository:acme/web:pull",
    )
    .await;
    let after = app.user_token("alice", &scopes).await;
    app.get("/v2/acme/web/tags/list", Some(&after))
        .await
        .assert_error(404, "NAME_UNKNOWN");
    let resp = app
        .admin_api(DELETE, "/api/v1/repositories?repository=acme/web", None)
        .await;
    assert_eq!(
        answer(&resp),
        (
            404,
            error(
                "NAME_UNKNOWN",
                "repository `acme/web` does not exist; nothing was deleted"
            )
        )
    );
    let resp = app
        .api_as(
            "alice",
            DELETE,
            "/api/v1/repositories?repository=acme/api",
            None,
        )
        .await;
    assert_eq!(
        resp.status, 403,
        "only administrators delete a repository whole"
    );

    // A robot: its token is refused.
    let resp = app
        .admin_api(DELETE, "/api/v1/orgs/acme/robots/acme-ci", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let refused = app
        .token_get(Some(("acme-ci", &robot_pat)), &app.token_query(&[]))
        .await;
    assert_eq!(refused.status, 401);

    // The organisation with its repositories: its name is free again, and
    // a new owner of it inherits nothing.
    let resp = app
        .admin_api(DELETE, "/api/v1/orgs/acme?delete_repositories=true", None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_refused_within(
        &app,
        "",
        "/v2/acme/api/tags/list",
        &after,
        "repository:acme/api:pull",
    )
    .await;
    let resp = app.admin_api(GET, "/api/v1/orgs", None).await;
    assert_eq!(resp.json(), json!({"orgs": []}));
    let resp = app.admin_api(DELETE, "/api/v1/orgs/acme", None).await;
    assert_eq!(
        answer(&resp),
        (
            404,
            error(
                "ORG_UNKNOWN",
                "there is no organisation `acme`; nothing was deleted"
            )
        )
    );
    app.user("acme").await;
    let heir = app
        .user_token("acme", &["repository:acme/api:pull,push"])
        .await;
    app.get("/v2/acme/api/tags/list", Some(&heir))
        .await
        .assert_error(404, "NAME_UNKNOWN");
}

/// A second process on the same data directory and public URL (a restart).
async fn restart(app: &TestApp) -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let registry = app.open_node(Config::new(app.base.clone())).await;
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(berth_registry::serve(listener, registry, async move {
        let _ = rx.await;
    }));
    (base, tx)
}

#[tokio::test]
async fn a_signing_key_is_retired_only_after_its_last_token_expired() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let old = app.registry.keys.as_ref().unwrap().active_kid();
    let signed_by_old = app
        .user_token("alice", &["repository:alice/app:pull,push"])
        .await;
    app.push_image("alice/app", "v1", &signed_by_old).await;
    let resp = app.admin_api(POST, "/api/v1/keys/rotate", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let new = resp.json()["kid"].as_str().unwrap().to_owned();
    let since: i64 = std::fs::read_to_string(
        app.data_dir()
            .join("keys/signing")
            .join(format!("{old}.inactive")),
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let possible_at = since + LIFETIME as i64 + 60;

    let resp = app.admin_api(GET, "/api/v1/keys", None).await;
    assert_eq!(
        resp.json()["keys"],
        json!([
            {"kid": old, "active": false, "inactive_since": format_rfc3339(since), "retirable_at": format_rfc3339(possible_at)},
            {"kid": new, "active": true, "inactive_since": null, "retirable_at": null},
        ])
    );
    let resp = app
        .admin_api(DELETE, &format!("/api/v1/keys/{old}"), None)
        .await;
    assert_eq!(
        answer(&resp),
        (
            409,
            error(
                "KEY_IN_USE",
                &format!(
                    "tokens signed by `{old}` may be valid until {} (the token lifetime and 60 s \
                     of leeway after it stopped signing); retire it from then on",
                    format_rfc3339(possible_at)
                )
            )
        )
    );
    let resp = app
        .admin_api(DELETE, &format!("/api/v1/keys/{new}"), None)
        .await;
    assert_eq!(
        answer(&resp),
        (
            409,
            error(
                "KEY_ACTIVE",
                &format!(
                    "`{new}` is the active signing key; rotate first (`berth admin keys rotate`), \
                     then retire it once the tokens it signed have expired"
                )
            )
        )
    );
    let resp = app.admin_api(DELETE, "/api/v1/keys/nope", None).await;
    assert_eq!(answer(&resp).0, 404);
    // Its tokens still work until then.
    assert_eq!(
        app.get("/v2/alice/app/tags/list", Some(&signed_by_old))
            .await
            .status,
        200
    );

    // As if its last token had expired: the time it stopped moved back,
    // and the registry restarted on the same data.
    std::fs::write(
        app.data_dir()
            .join("keys/signing")
            .join(format!("{old}.inactive")),
        format!("{}\n", since - LIFETIME as i64 - 61),
    )
    .unwrap();
    // On PostgreSQL the keys' truth is the database: store the edited file
    // there (on SQLite the files are all there is, and this does nothing).
    let keys = app.registry.keys.clone().unwrap();
    berth_registry::auth::key_sync::change(&app.registry.db, &keys, |_| {
        Ok::<_, berth_registry::auth::keys::KeyError>(())
    })
    .await
    .unwrap();
    let (node, _stop) = restart(&app).await;
    let admin = basic_header("admin", ADMIN_PASSWORD);
    let resp = app
        .api_with(DELETE, &format!("{node}/api/v1/keys/{old}"), &admin, None)
        .await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    let jwks = app
        .get(&format!("{node}/token/jwks.json"), None)
        .await
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new.as_str()]);
    let resp = app
        .get(
            &format!("{node}/v2/alice/app/tags/list"),
            Some(&signed_by_old),
        )
        .await;
    assert_eq!(resp.status, 401, "a token of a retired key is refused");
}
