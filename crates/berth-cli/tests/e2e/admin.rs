//! `berth admin ...` against a real `berth serve`: users, organisations,
//! tokens used at `/token`, htpasswd import, visibility, key rotation, and
//! who may call the admin API at all.

use base64::Engine;
use berth_core::digest::Digest;
use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Cli, Server};

/// `GET /token` for `scope`, with Basic credentials when given.
fn token(server: &Server, basic: Option<(&str, &str)>, scope: &str) -> reqwest::blocking::Response {
    let mut request = reqwest::blocking::Client::new()
        .get(server.url("/token"))
        .query(&[("service", server.addr.as_str()), ("scope", scope)]);
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    request.send().unwrap()
}

/// The `access` claim of a token answer.
fn access(response: reqwest::blocking::Response) -> (String, Value) {
    assert_eq!(response.status(), 200, "a token is issued");
    let body: Value = response.json().unwrap();
    let jwt = body["token"].as_str().unwrap().to_owned();
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    (jwt, claims["access"].clone())
}

/// Pushes a one-layer image to `repo:tag` as admin.
fn push_image(server: &Server, repo: &str, tag: &str) {
    let client = reqwest::blocking::Client::new();
    let bearer = server.admin_token(&format!("repository:{repo}:pull,push"));
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a tarball, but bytes all the same".to_vec();
    let mut descriptors = Vec::new();
    for (bytes, media_type) in [
        (config.to_vec(), "application/vnd.oci.image.config.v1+json"),
        (layer, "application/vnd.oci.image.layer.v1.tar+gzip"),
    ] {
        let digest = Digest::sha256_of(&bytes);
        let response = client
            .post(server.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .bearer_auth(&bearer)
            .header("content-type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .unwrap();
        assert_eq!(response.status(), 201, "blob {digest} uploaded");
        descriptors.push(
            json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()}),
        );
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptors[0],
        "layers": [descriptors[1]],
    });
    let response = client
        .put(server.url(&format!("/v2/{repo}/manifests/{tag}")))
        .bearer_auth(&bearer)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "manifest pushed");
}

/// The whole administration story: users, an organisation and a member, a
/// narrow token used and revoked, an htpasswd import, visibility, a robot,
/// key rotation and the root certificate.
#[test]
fn admin_commands_drive_the_registry() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let admin = Cli::admin(home.path()).env("BERTH_REGISTRY", server.url(""));

    // Users, with the password on stdin.
    let out = admin.ok_text(
        &["admin", "user", "create", "alice", "--password-stdin"],
        b"alice-password\n",
    );
    assert_eq!(out, "created user alice\n");
    admin.ok_text(
        &["admin", "user", "create", "bob", "--password-stdin"],
        b"bob-password\n",
    );
    assert_eq!(
        token(&server, Some(("alice", "alice-password")), "").status(),
        200,
        "alice logs in with the password given on stdin"
    );
    let again = admin.fails_with_empty_stdout(
        &["admin", "user", "create", "alice", "--password-stdin"],
        b"another-password\n",
    );
    assert!(again.contains("already exists"), "{again}");

    // An organisation and a member.
    assert_eq!(
        admin.ok_text(&["admin", "org", "create", "acme", "--owner", "alice"], b""),
        "created organisation acme, owned by alice\n"
    );
    admin.ok_text(
        &[
            "admin",
            "org",
            "add-member",
            "acme",
            "bob",
            "--role",
            "member",
        ],
        b"",
    );

    // A token for bob: pull only, on acme/* only. Its secret is all of stdout.
    let out = admin.ok_text(
        &[
            "admin", "token", "create", "--user", "bob", "--name", "ci", "--scope", "pull",
            "--repo", "acme/*",
        ],
        b"",
    );
    assert_eq!(out.lines().count(), 1, "only the secret on stdout: {out:?}");
    let pat = out.trim_end().to_owned();
    assert!(pat.starts_with("berth_pat_"), "{pat}");

    // Used as a Basic password at /token (any user name), it grants pull on acme/app
    // (bob is a member there), not push, and nothing on bob's own repositories.
    let (_, granted) = access(token(
        &server,
        Some(("whoever", &pat)),
        "repository:acme/app:pull,push repository:bob/private:pull",
    ));
    assert_eq!(
        granted,
        json!([{"type": "repository", "name": "acme/app", "actions": ["pull"]}])
    );

    // Listed without its secret, in text and JSON.
    let table = admin.ok_text(&["admin", "token", "list", "--user", "bob"], b"");
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("ci") && table.contains("acme/*"), "{table}");
    assert!(!table.contains(&pat));
    let listed = admin.ok_json(
        &[
            "admin", "token", "list", "--user", "bob", "--output", "json",
        ],
        b"",
    );
    assert_eq!(listed["tokens"][0]["name"], "ci");
    assert_eq!(listed["tokens"][0]["actions"], json!(["pull"]));
    assert_eq!(listed["tokens"][0]["repositories"], json!(["acme/*"]));
    assert!(!listed.to_string().contains("berth_pat_"), "{listed}");

    // Revoked: the token service refuses it.
    admin.ok_text(
        &["admin", "token", "revoke", "--user", "bob", "--name", "ci"],
        b"",
    );
    let refused = token(&server, Some(("bob", &pat)), "repository:acme/app:pull");
    assert_eq!(refused.status(), 401, "a revoked token is refused");
    let again = admin.fails_with_empty_stdout(
        &["admin", "token", "revoke", "--user", "bob", "--name", "ci"],
        b"",
    );
    assert!(again.contains("has no token named `ci`"), "{again}");

    // htpasswd import: one new bcrypt user, one that exists already.
    let hash = bcrypt::hash_with_result("carol-password", 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let file = work.path().join("users.htpasswd");
    std::fs::write(&file, format!("# team\ncarol:{hash}\nalice:{hash}\n")).unwrap();
    let report = admin.ok_text(
        &["admin", "user", "import-htpasswd", file.to_str().unwrap()],
        b"",
    );
    assert!(report.contains("created          carol"), "{report}");
    assert!(report.contains("skipped-existing alice"), "{report}");
    assert_eq!(
        token(&server, Some(("carol", "carol-password")), "").status(),
        200,
        "carol logs in with her htpasswd password"
    );
    assert_eq!(
        token(&server, Some(("alice", "carol-password")), "").status(),
        401,
        "alice kept her own password"
    );

    // Visibility: private until made public, then pulled anonymously.
    push_image(&server, "acme/app", "v1");
    let pull_anonymously = || {
        let (jwt, granted) = access(token(&server, None, "repository:acme/app:pull"));
        let status = reqwest::blocking::Client::new()
            .get(server.url("/v2/acme/app/manifests/v1"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .bearer_auth(jwt)
            .send()
            .unwrap()
            .status();
        (granted, status.as_u16())
    };
    let (granted, status) = pull_anonymously();
    assert_eq!((granted, status), (json!([]), 401), "private at first");
    assert_eq!(
        admin.ok_text(
            &["admin", "repo", "set-visibility", "acme/app", "public"],
            b""
        ),
        "acme/app is now public\n"
    );
    let (granted, status) = pull_anonymously();
    assert_eq!(
        granted,
        json!([{"type": "repository", "name": "acme/app", "actions": ["pull"]}])
    );
    assert_eq!(status, 200, "anonymous pull of a public repository");
    let missing = admin.fails_with_empty_stdout(
        &["admin", "repo", "set-visibility", "acme/nothing", "public"],
        b"",
    );
    assert!(
        missing.contains("404") && missing.contains("`acme/nothing` does not exist"),
        "{missing}"
    );

    // A robot of acme: its token is all of stdout and reaches acme's repositories.
    let robot_token = admin.ok_text(&["admin", "robot", "create", "acme", "acme-ci"], b"");
    assert_eq!(robot_token.lines().count(), 1, "{robot_token:?}");
    let (_, granted) = access(token(
        &server,
        Some(("acme-ci", robot_token.trim_end())),
        "repository:acme/app:pull,push,delete",
    ));
    assert_eq!(
        granted,
        json!([{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}])
    );

    // Key rotation: the JWKS lists the old key and the new one.
    let kid = admin
        .ok_text(&["admin", "keys", "rotate"], b"")
        .trim_end()
        .to_owned();
    assert!(!kid.is_empty());
    let jwks: Value = reqwest::blocking::get(server.url("/token/jwks.json"))
        .unwrap()
        .json()
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{jwks}");
    assert_eq!(keys[1]["kid"], kid.as_str(), "{jwks}");
    let (jwt, _) = access(token(&server, Some(("alice", "alice-password")), ""));
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], kid.as_str(), "new tokens use the new key");

    // The root certificate, PEM, alone on stdout.
    let pem = admin.ok_text(&["admin", "keys", "export-root"], b"");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"), "{pem}");
    assert_eq!(pem.matches("BEGIN").count(), 1);

    // Deleting a user ends its logins.
    assert_eq!(
        admin.ok_text(&["admin", "user", "delete", "carol"], b""),
        "deleted user carol\n"
    );
    assert_eq!(
        token(&server, Some(("carol", "carol-password")), "").status(),
        401
    );
}

/// Only administrators: no or wrong credentials are 401 with a Basic
/// challenge, anyone else 403, a narrow token of an administrator 403.
#[test]
fn only_administrators_may_administer() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = Server::start(data.path());
    let registry = server.url("");
    let admin = Cli::admin(home).env("BERTH_REGISTRY", &registry);
    admin.ok_text(
        &["admin", "user", "create", "bob", "--password-stdin"],
        b"bob-password\n",
    );

    // The CLI: a non-admin, a wrong password, no credentials at all.
    let denied = Cli::user(home, "bob", "bob-password")
        .env("BERTH_REGISTRY", &registry)
        .fails_with_empty_stdout(
            &["admin", "user", "create", "eve", "--password-stdin"],
            b"eve-password\n",
        );
    assert!(
        denied.contains("403") && denied.contains("`bob` is not an administrator"),
        "{denied}"
    );
    let wrong = Cli::user(home, "admin", "not-the-password")
        .env("BERTH_REGISTRY", &registry)
        .fails_with_empty_stdout(&["admin", "keys", "rotate"], b"");
    assert!(
        wrong.contains("401") && wrong.contains("invalid username, password or token"),
        "{wrong}"
    );
    let unset = Cli::new(home)
        .env("BERTH_REGISTRY", &registry)
        .fails_with_empty_stdout(&["admin", "keys", "export-root"], b"");
    assert!(
        unset.contains("BERTH_USERNAME and BERTH_PASSWORD are not set"),
        "{unset}"
    );

    // The API itself.
    let client = reqwest::blocking::Client::new();
    let url = server.url("/api/v1/users/bob/tokens");
    let response = client.get(&url).send().unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!("Basic realm=\"{}\"", server.addr).as_str()
    );
    let body: Value = response.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    let response = client
        .get(&url)
        .basic_auth("admin", Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .get(&url)
        .basic_auth("bob", Some("bob-password"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let response = client
        .get(&url)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().unwrap()["tokens"], json!([]));

    // A pull-only token of the administrator may not administer.
    let narrow = admin.ok_text(
        &[
            "admin",
            "token",
            "create",
            "--user",
            "admin",
            "--name",
            "pull-only",
            "--scope",
            "pull",
        ],
        b"",
    );
    let response = client
        .get(&url)
        .basic_auth("admin", Some(narrow.trim_end()))
        .send()
        .unwrap();
    assert_eq!(response.status(), 403, "a narrow token cannot administer");

    // Bodies over 64 KiB are refused; a typo in a field is an error.
    let response = client
        .post(server.url("/api/v1/users"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"name": "big", "password": "x".repeat(70 * 1024)}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = client
        .post(server.url("/api/v1/users"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"name": "typo", "pasword": "long enough password"}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("pasword"),
        "{body}"
    );
}

/// `berth admin user delete` keeps a user who owns repositories unless told
/// `--delete-repositories`; `berth admin user set-password` ends logins made
/// with the old password. (Both send their bodies as `application/json`,
/// which the admin API requires.)
#[test]
fn users_with_repositories_and_changed_passwords() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let admin = Cli::admin(home.path()).env("BERTH_REGISTRY", server.url(""));
    admin.ok_text(
        &["admin", "user", "create", "alice", "--password-stdin"],
        b"alice-password\n",
    );
    push_image(&server, "alice/app", "v1");

    let refused = admin.fails_with_empty_stdout(&["admin", "user", "delete", "alice"], b"");
    assert!(
        refused.contains("409")
            && refused.contains("user `alice` owns 1 repository")
            && refused.contains("berth admin user delete alice --delete-repositories"),
        "{refused}"
    );

    assert_eq!(
        admin.ok_text(
            &["admin", "user", "set-password", "alice", "--password-stdin"],
            b"alice-new-password\n",
        ),
        "changed the password of alice\n"
    );
    assert_eq!(
        token(&server, Some(("alice", "alice-password")), "").status(),
        401,
        "the old password is refused"
    );
    let (_, granted) = access(token(
        &server,
        Some(("alice", "alice-new-password")),
        "repository:alice/app:pull",
    ));
    assert_eq!(
        granted,
        json!([{"type": "repository", "name": "alice/app", "actions": ["pull"]}])
    );
    let short = admin.fails_with_empty_stdout(
        &["admin", "user", "set-password", "alice", "--password-stdin"],
        b"short\n",
    );
    assert!(short.contains("shorter than 8 characters"), "{short}");

    assert_eq!(
        admin.ok_text(
            &["admin", "user", "delete", "alice", "--delete-repositories"],
            b""
        ),
        "deleted user alice\n"
    );
    assert_eq!(
        server.get_json("/v2/_catalog", "registry:catalog:*"),
        json!({"repositories": []})
    );
}
