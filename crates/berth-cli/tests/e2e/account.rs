//! The account commands (`berth token`, `berth password`, `berth org member`,
//! `berth robot`, `berth repo`) against a real `berth serve`, logged in the
//! way a user is: with the refresh token `berth login` stored (no password
//! kept), or with BERTH_USERNAME/BERTH_PASSWORD.

use serde_json::{Value, json};

use crate::support::{Cli, Server};

/// `GET /token` for `scope` with Basic credentials: the status and, on 200,
/// the `access` claim.
fn token(server: &Server, user: &str, password: &str, scope: &str) -> (u16, Value) {
    use base64::Engine;
    let response = reqwest::blocking::Client::new()
        .get(server.url("/token"))
        .query(&[("service", server.addr.as_str()), ("scope", scope)])
        .basic_auth(user, Some(password))
        .send()
        .unwrap();
    let status = response.status().as_u16();
    if status != 200 {
        return (status, Value::Null);
    }
    let body: Value = response.json().unwrap();
    let payload = body["token"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    (status, claims["access"].clone())
}

/// Pushes a one-blob artifact to `repo:tag` as admin.
fn push(server: &Server, home: &std::path::Path, repo: &str) {
    std::fs::create_dir_all(home).unwrap();
    let file = home.join("note.txt");
    std::fs::write(&file, b"a note").unwrap();
    Cli::admin(home).ok(
        &[
            "push",
            &format!("{}/{repo}:v1", server.addr),
            file.to_str().unwrap(),
        ],
        b"",
    );
}

#[test]
fn account_commands_work_from_the_stored_login() {
    let data = tempfile::tempdir().unwrap();
    let homes = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let registry = server.url("");
    let admin_home = homes.path().join("admin");
    let admin = Cli::admin(&admin_home).env("BERTH_REGISTRY", &registry);
    for (name, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
        admin.ok(
            &["admin", "user", "create", name, "--password-stdin"],
            format!("{password}\n").as_bytes(),
        );
    }
    admin.ok(&["admin", "org", "create", "acme", "--owner", "alice"], b"");

    // alice logs in; berth keeps a refresh token, not her password.
    let alice_home = homes.path().join("alice");
    let alice = Cli::new(&alice_home).env("BERTH_REGISTRY", &registry);
    alice.ok(
        &["login", &server.addr, "-u", "alice", "--password-stdin"],
        b"alice-password\n",
    );
    let stored = std::fs::read_to_string(alice_home.join("config/berth/auth.json")).unwrap();
    assert!(!stored.contains("alice-password"), "{stored}");

    // Her own token: the secret alone on stdout, usable at /token.
    let secret = alice.ok_text(
        &[
            "token", "create", "--name", "ci", "--scope", "pull", "--repo", "alice/*",
        ],
        b"",
    );
    assert_eq!(secret.lines().count(), 1, "{secret:?}");
    let secret = secret.trim_end();
    assert!(secret.starts_with("berth_pat_"), "{secret}");
    assert_eq!(
        token(&server, "alice", secret, "repository:alice/app:pull,push"),
        (
            200,
            json!([{"type": "repository", "name": "alice/app", "actions": ["pull"]}])
        )
    );
    let listed = alice.ok_json(&["token", "list", "--output", "json"], b"");
    assert_eq!(listed["user"], "alice");
    assert_eq!(listed["tokens"][0]["name"], "ci");
    assert!(!listed.to_string().contains("berth_pat_"), "{listed}");
    let table = alice.ok_text(&["token", "list"], b"");
    assert!(
        table.starts_with("NAME") && table.contains("alice/*"),
        "{table}"
    );
    let beyond = alice.fails_with_empty_stdout(
        &["token", "create", "--name", "bobs", "--repo", "bob/*"],
        b"",
    );
    assert!(
        beyond.contains("403") && beyond.contains("cannot carry pull on `bob/*`"),
        "{beyond}"
    );
    assert_eq!(
        alice.ok_text(&["token", "revoke", "--name", "ci"], b""),
        "revoked token ci\n"
    );
    assert_eq!(
        token(&server, "alice", secret, "repository:alice/app:pull").0,
        401
    );

    // The organisation she owns: a member, a robot, the visibility.
    assert_eq!(
        alice.ok_text(
            &[
                "org",
                "member",
                "add",
                "acme",
                "bob",
                "--role",
                "maintainer"
            ],
            b""
        ),
        "bob is now a maintainer of acme\n"
    );
    assert_eq!(
        alice.ok_json(&["org", "member", "list", "acme", "--output", "json"], b""),
        json!({"org": "acme", "members": [
            {"name": "alice", "role": "owner"},
            {"name": "bob", "role": "maintainer"},
        ]})
    );
    assert_eq!(
        alice.ok_text(&["org", "member", "list", "acme"], b""),
        "NAME   ROLE\nalice  owner\nbob    maintainer\n"
    );
    let robot = alice.ok_text(
        &["robot", "create", "acme", "acme-ci", "--scope", "pull"],
        b"",
    );
    assert_eq!(robot.lines().count(), 1, "{robot:?}");
    assert_eq!(
        token(
            &server,
            "acme-ci",
            robot.trim_end(),
            "repository:acme/app:pull,push"
        ),
        (
            200,
            json!([{"type": "repository", "name": "acme/app", "actions": ["pull"]}])
        )
    );
    assert_eq!(
        alice.ok_text(&["robot", "list", "acme"], b""),
        "NAME\nacme-ci\n"
    );
    push(&server, &admin_home, "acme/app");
    assert_eq!(
        alice.ok_text(&["repo", "set-visibility", "acme/app", "public"], b""),
        "acme/app is now public\n"
    );
    assert_eq!(
        alice.ok_json(&["repo", "list", "--output", "json"], b""),
        json!({"repositories": [{"name": "acme/app", "visibility": "public"}]})
    );
    assert_eq!(
        alice.ok_text(&["robot", "delete", "acme", "acme-ci"], b""),
        "deleted robot acme-ci of acme\n"
    );
    assert_eq!(
        token(
            &server,
            "acme-ci",
            robot.trim_end(),
            "repository:acme/app:pull"
        )
        .0,
        401
    );

    // bob, a maintainer, manages nothing of acme.
    let bob = Cli::user(&homes.path().join("bob"), "bob", "bob-password")
        .env("BERTH_REGISTRY", &registry);
    let refused = bob.fails_with_empty_stdout(&["org", "member", "remove", "acme", "alice"], b"");
    assert!(
        refused.contains("403")
            && refused.contains("`bob` is a maintainer of `acme`, not an owner"),
        "{refused}"
    );
    let refused =
        bob.fails_with_empty_stdout(&["repo", "set-visibility", "acme/app", "private"], b"");
    assert!(
        refused.contains("may not set the visibility of `acme/app`"),
        "{refused}"
    );

    // Her password: the old one required; the stored login is renewed.
    let wrong = alice.fails_with_empty_stdout(
        &["password", "--password-stdin"],
        b"not-her-password\nalice-new-password\n",
    );
    assert!(wrong.contains("the old password is not right"), "{wrong}");
    let out = alice.run(
        &["password", "--password-stdin", "--output", "json"],
        b"alice-password\nalice-new-password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({"user": "alice", "changed": true, "logged_in_again": true})
    );
    assert_eq!(token(&server, "alice", "alice-password", "").0, 401);
    assert_eq!(token(&server, "alice", "alice-new-password", "").0, 200);
    let renewed = alice.ok_json(&["token", "list", "--output", "json"], b"");
    assert_eq!(renewed["tokens"], json!([]), "the stored login works again");
    let not_admin = alice.fails_with_empty_stdout(&["admin", "keys", "rotate"], b"");
    assert!(
        not_admin.contains("403") && not_admin.contains("`alice` is not an administrator"),
        "{not_admin}"
    );
}

#[test]
fn every_account_command_has_an_example() {
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::new(home.path());
    for command in [
        &["token", "create"][..],
        &["token", "list"],
        &["token", "revoke"],
        &["password"],
        &["org", "member", "add"],
        &["org", "member", "remove"],
        &["org", "member", "list"],
        &["robot", "create"],
        &["robot", "list"],
        &["robot", "delete"],
        &["repo", "set-visibility"],
        &["repo", "list"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = cli.ok_text(&args, b"");
        assert!(help.contains("Example"), "{command:?}: {help}");
        assert!(help.contains("berth "), "{command:?}: {help}");
    }
    let help = cli.ok_text(&["password", "--help"], b"");
    assert!(help.contains("--password-stdin"), "{help}");
}

#[test]
fn admin_lists_deletes_and_refuses_to_retire_a_key_too_soon() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let admin = Cli::admin(home.path()).env("BERTH_REGISTRY", server.url(""));
    admin.ok(
        &["admin", "user", "create", "alice", "--password-stdin"],
        b"alice-password\n",
    );
    admin.ok(&["admin", "org", "create", "acme", "--owner", "alice"], b"");
    assert_eq!(
        admin.ok_text(&["admin", "user", "list"], b""),
        "NAME   KIND\nadmin  administrator\nalice  user\n"
    );
    assert_eq!(admin.ok_text(&["admin", "org", "list"], b""), "acme\n");
    push(&server, home.path(), "acme/app");
    push(&server, home.path(), "acme/old");
    assert_eq!(
        admin.ok_text(&["admin", "repo", "delete", "acme/old"], b""),
        "deleted repository acme/old\n"
    );
    let kept = admin.fails_with_empty_stdout(&["admin", "org", "delete", "acme"], b"");
    assert!(
        kept.contains("409") && kept.contains("organisation `acme` owns 1 repository"),
        "{kept}"
    );
    assert_eq!(
        admin.ok_text(
            &["admin", "org", "delete", "acme", "--delete-repositories"],
            b""
        ),
        "deleted organisation acme\n"
    );
    assert_eq!(admin.ok_text(&["admin", "org", "list"], b""), "");
    let jwks: Value = reqwest::blocking::get(server.url("/token/jwks.json"))
        .unwrap()
        .json()
        .unwrap();
    let old = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    admin.ok(&["admin", "keys", "rotate"], b"");
    let soon = admin.fails_with_empty_stdout(&["admin", "keys", "retire", &old], b"");
    assert!(
        soon.contains("409")
            && soon.contains(&format!("tokens signed by `{old}` may be valid until")),
        "{soon}"
    );
}
