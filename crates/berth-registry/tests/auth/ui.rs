//! The web interface (`ui/`), server side: every page's access decision
//! against the same callers and repositories as the oracle tests (a private
//! repository reads exactly as a missing one), sessions (sign-in under the
//! token service's failure limits, ended by sign-out, a password change, a
//! revoked token), CSRF tokens on every form, the security headers, and
//! `--ui false`. The browser suite (`tests/ui/`) drives the same pages in
//! Chromium.

use reqwest::Method;

use crate::support::{Pushed, Resp, TestApp, password_of};

/// The private repository with content, and one that does not exist: names
/// of the same length, so that the pages' lengths match too.
const PRIVATE: &str = "alice/secret";
const ABSENT: &str = "alice/nosuch";

/// A browser: a cookie jar over the test app's client.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: Vec::new(),
        }
    }

    /// A browser signed in as `user` with `password` (a password or token).
    async fn signed_in(app: &'a TestApp, user: &str, password: &str) -> Self {
        let mut browser = Self::new(app);
        let resp = browser.sign_in(user, password).await;
        assert_eq!(resp.status, 303, "signed in: {}", resp.text());
        browser
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, resp: &Resp) {
        for value in resp.headers.get_all("set-cookie") {
            let value = value.to_str().unwrap();
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            let (name, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), v.to_owned()));
            }
        }
    }

    async fn get(&mut self, path: &str) -> Resp {
        let request = self
            .app
            .request(Method::GET, path)
            .header("cookie", self.cookie_header());
        let resp = self.app.send(request).await;
        self.keep_cookies(&resp);
        resp
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let request = self
            .app
            .request(Method::POST, path)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let resp = self.app.send(request).await;
        self.keep_cookies(&resp);
        resp
    }

    /// The CSRF token of the forms of the page at `path`.
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        csrf_of(&page)
    }

    async fn sign_in(&mut self, user: &str, password: &str) -> Resp {
        let csrf = self.csrf("/ui/sign-in").await;
        self.post(
            "/ui/sign-in",
            &[
                ("csrf", &csrf),
                ("username", user),
                ("password", password),
                ("next", "/ui/account"),
            ],
        )
        .await
    }
}

/// The value of the first `csrf` hidden field of a page.
fn csrf_of(page: &Resp) -> String {
    let text = page.text();
    let start = text
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("a form with a CSRF token: {text}"))
        + "name=\"csrf\" value=\"".len();
    text[start..].split('"').next().unwrap().to_owned()
}

/// Status and body, the repository's name (as it is, and percent-encoded
/// in the sign-in link's `next`) replaced by `<repo>`.
fn normalised(resp: &Resp, repo: &str) -> (u16, String) {
    let text = resp
        .text()
        .replace(&crate::support::encode(repo), "<repo>")
        .replace(repo, "<repo>");
    (resp.status, text)
}

/// alice's private repository, bob's public one, and an organisation `acme`
/// with bob as a member and a private repository.
async fn world(app: &TestApp) -> Pushed {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let _ = alice;
    let token = app
        .user_token(
            "alice",
            &[
                &format!("repository:{PRIVATE}:pull,push"),
                "repository:alice/public:pull,push",
            ],
        )
        .await;
    let pushed = app.push_image(PRIVATE, "v1", &token).await;
    app.push_image("alice/public", "v1", &token).await;
    app.set_public("alice/public", true).await;
    let acme = app.org("acme", &bob).await;
    let carol = app.user("carol").await;
    app.member(&acme, &carol, berth_registry::identity::Role::Member)
        .await;
    let bob_token = app
        .user_token("bob", &["repository:acme/app:pull,push"])
        .await;
    app.push_image("acme/app", "v1", &bob_token).await;
    pushed
}

#[tokio::test]
async fn a_private_repository_page_reads_exactly_as_a_missing_one() {
    let app = TestApp::start().await;
    let pushed = world(&app).await;
    let bob = app.user("dave").await;
    let dave_pat = app.pat(&bob, "ci", "pull,push", &[], 3600).await;
    let mut visitors = vec![
        ("anonymous", Browser::new(&app)),
        (
            "bob",
            Browser::signed_in(&app, "bob", &password_of("bob")).await,
        ),
        (
            "dave by token",
            Browser::signed_in(&app, "dave", &dave_pat).await,
        ),
    ];
    let digest = pushed.digest.to_string();
    let pages = [
        "/ui/repo/{repo}".to_owned(),
        "/ui/repo/{repo}?before_time=9999999999&before_name=zz".to_owned(),
        format!("/ui/manifest/{{repo}}@{digest}"),
    ];
    for (who, browser) in &mut visitors {
        for page in &pages {
            let private = browser.get(&page.replace("{repo}", PRIVATE)).await;
            let absent = browser.get(&page.replace("{repo}", ABSENT)).await;
            assert_eq!(private.status, 404, "{who} {page}: {}", private.text());
            assert_eq!(
                normalised(&private, PRIVATE),
                normalised(&absent, ABSENT),
                "{who} {page}"
            );
        }
        let explore = browser.get("/ui/").await;
        assert_eq!(explore.status, 200);
        assert!(
            !explore.text().contains(PRIVATE),
            "{who} is not shown {PRIVATE}"
        );
        assert!(
            explore.text().contains("alice/public"),
            "{who} sees public ones"
        );
        let search = browser.get("/ui/?q=secret").await;
        assert!(
            !search.text().contains(PRIVATE),
            "{who}: search hides it too"
        );
    }
    // Those policy lets pull it see it: its owner, and an administrator.
    for (user, password) in [
        ("alice", password_of("alice")),
        ("admin", crate::support::ADMIN_PASSWORD.to_owned()),
    ] {
        let mut browser = Browser::signed_in(&app, user, &password).await;
        let page = browser.get(&format!("/ui/repo/{PRIVATE}")).await;
        assert_eq!(page.status, 200, "{user}: {}", page.text());
        assert!(
            page.text().contains("data-tag=\"v1\""),
            "{user} sees the tag"
        );
        let manifest = browser
            .get(&format!("/ui/manifest/{PRIVATE}@{digest}"))
            .await;
        assert_eq!(manifest.status, 200, "{user}: {}", manifest.text());
        assert!(
            manifest.text().contains(&pushed.layer.to_string()),
            "layers listed"
        );
        let explore = browser.get("/ui/?q=secret").await;
        assert!(explore.text().contains(PRIVATE), "{user} finds it");
    }
}

#[tokio::test]
async fn organisation_repositories_follow_membership_and_token_limits() {
    let app = TestApp::start().await;
    world(&app).await;
    // carol is a member of acme: she may pull acme/app.
    let mut carol = Browser::signed_in(&app, "carol", &password_of("carol")).await;
    assert_eq!(carol.get("/ui/repo/acme/app").await.status, 200);
    assert!(carol.get("/ui/").await.text().contains("acme/app"));
    // A token limited to other repositories shows neither page nor listing.
    let carol_user = app
        .registry
        .identity
        .user_by_name("carol")
        .await
        .unwrap()
        .unwrap();
    let narrow = app
        .pat(&carol_user, "narrow", "pull", &["carol/*"], 3600)
        .await;
    let mut narrow = Browser::signed_in(&app, "carol", &narrow).await;
    assert_eq!(narrow.get("/ui/repo/acme/app").await.status, 404);
    assert!(!narrow.get("/ui/").await.text().contains("acme/app"));
    // alice is no member.
    let mut alice = Browser::signed_in(&app, "alice", &password_of("alice")).await;
    assert_eq!(alice.get("/ui/repo/acme/app").await.status, 404);
}

#[tokio::test]
async fn sessions_end_at_sign_out_password_change_and_token_revocation() {
    let app = TestApp::start().await;
    let alice = app.user("alice").await;
    // Signed in: the account page, and a cookie as strict as it gets.
    let mut browser = Browser::new(&app);
    let resp = browser.sign_in("alice", &password_of("alice")).await;
    assert_eq!(resp.status, 303);
    assert_eq!(resp.header("location"), Some("/ui/account"));
    let cookie = resp.header("set-cookie").unwrap();
    assert!(cookie.starts_with("berth_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "no Secure over http: {cookie}");
    assert_eq!(browser.get("/ui/account").await.status, 200);

    // Sign-out ends it server-side: the old cookie replayed is no session.
    let stolen = browser.cookies.clone();
    let csrf = browser.csrf("/ui/account").await;
    let out = browser.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let mut replay = Browser::new(&app);
    replay.cookies = stolen;
    assert_eq!(replay.get("/ui/account").await.status, 401);

    // A password change (through the API) ends every session.
    let mut one = Browser::signed_in(&app, "alice", &password_of("alice")).await;
    let mut two = Browser::signed_in(&app, "alice", &password_of("alice")).await;
    let changed = app
        .api_as(
            "alice",
            Method::PUT,
            "/api/v1/user/password",
            Some(serde_json::json!({"old_password": password_of("alice"), "new_password": "a-new-password"})),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text());
    assert_eq!(one.get("/ui/account").await.status, 401);
    assert_eq!(two.get("/ui/account").await.status, 401);
    // The old password signs in no more; the new one does.
    assert_eq!(
        Browser::new(&app)
            .sign_in("alice", &password_of("alice"))
            .await
            .status,
        401
    );
    Browser::signed_in(&app, "alice", "a-new-password").await;

    // A session signed in with a token ends when the token is revoked.
    let pat = app.pat(&alice, "laptop", "pull,push", &[], 3600).await;
    let mut by_token = Browser::signed_in(&app, "alice", &pat).await;
    let account = by_token.get("/ui/account").await;
    assert_eq!(account.status, 200);
    assert!(
        account.text().contains("id=\"via-token\""),
        "says it is a token session"
    );
    assert!(
        !account.text().contains("id=\"change-password\""),
        "a token session is offered no password change"
    );
    let revoked = app
        .api_with(
            Method::DELETE,
            "/api/v1/user/tokens/laptop",
            &crate::support::basic_header("alice", "a-new-password"),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    assert_eq!(by_token.get("/ui/account").await.status, 401);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let mut browser = Browser::signed_in(&app, "alice", &password_of("alice")).await;
    let fields = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("name", "sneaky"),
            ("pull", "on"),
            ("expires_in_days", "5"),
        ]
    };
    for csrf in ["", "not-the-token"] {
        let resp = browser.post("/ui/account/tokens", &fields(csrf)).await;
        assert_eq!(resp.status, 403, "{}", resp.text());
        assert!(resp.text().contains("security token"), "{}", resp.text());
    }
    let without = browser
        .post(
            "/ui/account/tokens",
            &[("name", "sneaky"), ("pull", "on"), ("expires_in_days", "5")],
        )
        .await;
    assert_eq!(without.status, 403);
    // Another visitor's token is not this one's.
    let other = Browser::new(&app).csrf("/ui/sign-in").await;
    let resp = browser
        .post(
            "/ui/account/tokens",
            &[
                ("csrf", &other),
                ("name", "sneaky"),
                ("pull", "on"),
                ("expires_in_days", "5"),
            ],
        )
        .await;
    assert_eq!(resp.status, 403);
    let listed = app
        .api_as("alice", Method::GET, "/api/v1/user/tokens", None)
        .await;
    assert_eq!(
        listed.json()["tokens"],
        serde_json::json!([]),
        "no token was made"
    );
    // Signing in without the token is refused too (login CSRF).
    let mut fresh = Browser::new(&app);
    fresh.get("/ui/sign-in").await;
    let resp = fresh
        .post(
            "/ui/sign-in",
            &[("username", "alice"), ("password", &password_of("alice"))],
        )
        .await;
    assert_eq!(resp.status, 403);
    assert!(
        resp.header("set-cookie")
            .is_none_or(|c| !c.contains("berth_session"))
    );

    // With it, the token is made and its secret shown once, not cached.
    let csrf = browser.csrf("/ui/account").await;
    let made = browser
        .post(
            "/ui/account/tokens",
            &[
                ("csrf", &csrf),
                ("name", "ci"),
                ("pull", "on"),
                ("repositories", "alice/*"),
                ("expires_in_days", "5"),
            ],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.header("cache-control"), Some("no-store"));
    let text = made.text();
    let start = text.find("id=\"new-token-secret\">").unwrap() + "id=\"new-token-secret\">".len();
    let secret = text[start..].split('<').next().unwrap();
    let token = app
        .token_get(
            Some(("alice", secret)),
            &app.token_query(&["repository:alice/x:pull"]),
        )
        .await;
    assert_eq!(
        token.status,
        200,
        "the shown secret logs in: {}",
        token.text()
    );
    assert!(
        !browser.get("/ui/account").await.text().contains(secret),
        "shown once"
    );
}

#[tokio::test]
async fn sign_in_failures_count_with_the_token_services() {
    let app = TestApp::start().await;
    app.user("alice").await;
    let mut browser = Browser::new(&app);
    let wrong = browser.sign_in("alice", "wrong-password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("Wrong user name, password or token"));
    // Unknown names until the address is blocked (30 a minute)...
    let mut blocked = None;
    for i in 0..40 {
        let resp = browser.sign_in(&format!("nobody{i}"), "x").await;
        if resp.status == 429 {
            blocked = Some(resp);
            break;
        }
        assert_eq!(resp.status, 401);
    }
    let blocked = blocked.expect("the address is blocked");
    assert!(blocked.header("retry-after").is_some());
    // ...and /token refuses the right password from it too: one limit.
    let token = app
        .token_get(
            Some(("alice", &password_of("alice"))),
            &app.token_query(&["repository:alice/x:pull"]),
        )
        .await;
    assert_eq!(token.status, 429, "{}", token.text());
}

#[tokio::test]
async fn organisation_and_admin_pages_offer_only_what_policy_allows() {
    let app = TestApp::start().await;
    world(&app).await;
    // bob owns acme: forms to change members and robots.
    let mut bob = Browser::signed_in(&app, "bob", &password_of("bob")).await;
    let page = bob.get("/ui/orgs/acme").await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("id=\"add-member\""));
    assert!(page.text().contains("id=\"create-robot\""));
    // carol, a member, sees the members but no form.
    let mut carol = Browser::signed_in(&app, "carol", &password_of("carol")).await;
    let page = carol.get("/ui/orgs/acme").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("data-member=\"carol\""));
    assert!(!page.text().contains("id=\"add-member\""));
    assert!(!page.text().contains("/members/remove"));
    // Her POST is refused by the API's policy anyway.
    let csrf = carol.csrf("/ui/orgs/acme").await;
    let resp = carol
        .post(
            "/ui/orgs/acme/members",
            &[("csrf", &csrf), ("user", "carol"), ("role", "owner")],
        )
        .await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    // alice is no member: the same refusal for acme and an organisation that
    // does not exist.
    let mut alice = Browser::signed_in(&app, "alice", &password_of("alice")).await;
    let acme = alice.get("/ui/orgs/acme").await;
    let none = alice.get("/ui/orgs/nope").await;
    assert_eq!(acme.status, 403);
    assert_eq!(normalised(&acme, "acme"), normalised(&none, "nope"));
    // The admin page: administrators only, and no link for anyone else.
    let page = alice.get("/ui/admin").await;
    assert_eq!(page.status, 403);
    assert!(!alice.get("/ui/").await.text().contains("id=\"nav-admin\""));
    let mut admin = Browser::signed_in(&app, "admin", crate::support::ADMIN_PASSWORD).await;
    let page = admin.get("/ui/admin").await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("id=\"rotate-keys\""));
    assert!(page.text().contains("active: signs new tokens"));
    assert!(
        page.text().contains("href=\"/ui/orgs/acme\""),
        "organisations linked"
    );
    assert!(admin.get("/ui/").await.text().contains("id=\"nav-admin\""));
    // Anonymous: sign in first.
    assert_eq!(Browser::new(&app).get("/ui/admin").await.status, 401);
    assert_eq!(Browser::new(&app).get("/ui/account").await.status, 401);
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = TestApp::start().await;
    let pushed = world(&app).await;
    let mut browser = Browser::signed_in(&app, "alice", &password_of("alice")).await;
    for path in [
        "/".to_owned(),
        "/ui/".to_owned(),
        "/ui/sign-in".to_owned(),
        "/ui/account".to_owned(),
        format!("/ui/repo/{PRIVATE}"),
        format!("/ui/manifest/{PRIVATE}@{}", pushed.digest),
        "/ui/repo/nobody/nothing".to_owned(),
        "/ui/no-such-page".to_owned(),
        "/ui/assets/berth.css".to_owned(),
    ] {
        let resp = browser.get(&path).await;
        let csp = resp.header("content-security-policy").unwrap_or("");
        assert_eq!(
            csp,
            berth_registry::ui::CONTENT_SECURITY_POLICY,
            "{path}: status {}",
            resp.status
        );
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(
            resp.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(resp.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            resp.header("referrer-policy"),
            Some("same-origin"),
            "{path}"
        );
        if path.starts_with("/ui/assets") {
            assert_eq!(resp.header("content-type"), Some("text/css; charset=utf-8"));
        } else {
            assert_eq!(resp.header("cache-control"), Some("no-store"), "{path}");
            assert_eq!(
                resp.header("content-type"),
                Some("text/html; charset=utf-8")
            );
            assert!(
                !resp.text().contains("<script>"),
                "{path}: no inline script"
            );
            assert!(!resp.text().contains(" style="), "{path}: no inline style");
        }
    }
    assert_eq!(browser.get("/ui/assets/nope.js").await.status, 404);
}

#[tokio::test]
async fn cookies_are_secure_behind_https_and_the_ui_can_be_turned_off() {
    let app = TestApp::start_with(|config| {
        config.public_url = "https://registry.example.com".to_owned();
    })
    .await;
    app.user("alice").await;
    let resp = Browser::new(&app).get("/ui/sign-in").await;
    let csrf = resp.header("set-cookie").unwrap();
    assert!(csrf.starts_with("__Host-berth_csrf="), "{csrf}");
    assert!(csrf.ends_with("; Secure"), "{csrf}");
    let mut browser = Browser::new(&app);
    let resp = browser.sign_in("alice", &password_of("alice")).await;
    assert_eq!(resp.status, 303, "{}", resp.text());
    let session = resp.header("set-cookie").unwrap().to_owned();
    assert!(session.starts_with("__Host-berth_session="), "{session}");
    assert!(session.contains("; Secure"), "{session}");
    // The session is read back under its prefixed name, and the same value
    // without the prefix (what a sibling subdomain could plant) is none.
    assert_eq!(browser.get("/ui/account").await.status, 200);
    let value = session
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1;
    let mut planted = Browser::new(&app);
    planted.cookies = vec![("berth_session".to_owned(), value.to_owned())];
    assert_eq!(planted.get("/ui/account").await.status, 401);

    let off = TestApp::start_with(|config| config.ui = false).await;
    for path in ["/", "/ui/", "/ui/sign-in", "/ui/assets/berth.css"] {
        let resp = Browser::new(&off).get(path).await;
        assert_eq!(resp.status, 404, "{path}");
        assert!(resp.header("content-security-policy").is_none());
    }
    // The registry itself still answers.
    assert_eq!(off.get("/v2/", None).await.status, 401);
}

#[tokio::test]
async fn after_sign_in_only_local_paths_are_followed() {
    let app = TestApp::start().await;
    app.user("alice").await;
    for (next, expected) in [
        ("/ui/repo/alice/x", "/ui/repo/alice/x"),
        ("https://evil.example/", "/ui/"),
        ("//evil.example/", "/ui/"),
    ] {
        let mut browser = Browser::new(&app);
        let csrf = browser.csrf("/ui/sign-in").await;
        let resp = browser
            .post(
                "/ui/sign-in",
                &[
                    ("csrf", &csrf),
                    ("username", "alice"),
                    ("password", &password_of("alice")),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(resp.status, 303);
        assert_eq!(resp.header("location"), Some(expected), "{next}");
    }
}

/// Regression: the manifest page read the image configuration its manifest
/// named from the blob store by digest alone, so carol could push an index
/// into her repository with a `config` naming alice's private configuration
/// and read it (environment, labels) on her manifest page, anonymously once
/// her repository was public. A configuration is shown only for an image
/// manifest, and only when it is linked in the repository shown.
#[tokio::test]
async fn a_manifest_page_shows_no_blob_of_another_repository() {
    let app = TestApp::start().await;
    app.user("alice").await;
    app.user("carol").await;
    let alice = app
        .user_token("alice", &["repository:alice/secret:pull,push"])
        .await;
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["DB_HOST=internal-db.corp"],"Labels":{"secret.label":"private-label-value-42"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = app.push_blob("alice/secret", &alice, config).await;
    let image = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [],
    });
    let resp = app
        .put_manifest("alice/secret", "v1", Some(&alice), &image)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    // alice sees her configuration on her page.
    let image_digest = berth_core::digest::Digest::sha256_of(&crate::support::to_bytes(&image));
    let mut alice_browser = Browser::signed_in(&app, "alice", &password_of("alice")).await;
    let page = alice_browser
        .get(&format!("/ui/manifest/alice/secret@{image_digest}"))
        .await;
    assert!(
        page.text().contains("DB_HOST=internal-db.corp"),
        "{}",
        page.text()
    );

    // carol names it from an index's `config` member in her repository.
    let carol = app
        .user_token("carol", &["repository:carol/xss:pull,push"])
        .await;
    app.push_blob("carol/xss", &carol, crate::support::EMPTY_CONFIG)
        .await;
    let child = crate::support::image_manifest(&[]);
    let resp = app
        .put_manifest("carol/xss", "child", Some(&carol), &child)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let child_bytes = crate::support::to_bytes(&child);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": berth_core::digest::Digest::sha256_of(&child_bytes).to_string(),
            "size": child_bytes.len(),
        }],
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
    });
    let pushed = app
        .put_manifest("carol/xss", "steal", Some(&carol), &index)
        .await;
    assert_eq!(
        pushed.status,
        201,
        "an index may carry other members: {}",
        pushed.text()
    );
    app.set_public("carol/xss", true).await;
    let index_digest = berth_core::digest::Digest::sha256_of(&crate::support::to_bytes(&index));
    let page = Browser::new(&app)
        .get(&format!("/ui/manifest/carol/xss@{index_digest}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("id=\"platforms\""), "the index's page");
    for leaked in [
        "internal-db.corp",
        "private-label-value-42",
        "is not JSON",
        "could not be read",
        "Configuration",
    ] {
        assert!(
            !page.text().contains(leaked),
            "{leaked} on carol's page: {}",
            page.text()
        );
    }
}
