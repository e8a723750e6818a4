//! The client commands (`login`, `logout`, `catalog`, `tags`, `digest`,
//! `delete`, `untag`, `auth explain`, and `admin` on the stored login) against a real
//! `berth serve`, with every credentials file in a temporary directory. A
//! plain login stores a refresh token (used by berth and by skopeo); one with
//! `--store-password` stores the password.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine;
use serde_json::json;

use crate::support::{ADMIN_PASSWORD, Server, admin_creds, peer, run, write_layout};

/// `berth <args>` with docker's and podman's files under `home`, and no
/// credential from the environment.
fn berth(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .args(args)
        .env("HOME", home.join("home"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("NO_COLOR", "1")
        .env_remove("BERTH_USERNAME")
        .env_remove("BERTH_PASSWORD")
        .env_remove("BERTH_REGISTRY");
    command
}

fn output(mut command: Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("berth starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `berth <args>`, which must succeed; its stdout.
fn ok(home: &Path, args: &[&str], stdin: &str) -> String {
    let out = output(berth(home, args), stdin);
    assert!(
        out.status.success(),
        "berth {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `berth <args>`, which must exit 1; its stderr.
fn fails(home: &Path, args: &[&str], stdin: &str) -> String {
    let out = output(berth(home, args), stdin);
    assert_eq!(
        out.status.code(),
        Some(1),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn login_list_inspect_explain_logout() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let config = home.join("docker/config.json");

    // A wrong password: refused by the token service, nothing written.
    let err = fails(
        home,
        &["login", host, "-u", "admin", "--password-stdin"],
        "not-the-password\n",
    );
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("nothing stored"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!config.exists(), "nothing written after a refused login");

    // The right one: verified; berth then offers a refresh token, which is
    // stored instead of the password (as docker does), in config.json, 0600.
    let login = ["login", host, "-u", "admin", "--password-stdin"];
    let out = output(berth(home, &login), &format!("{ADMIN_PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains(&config.display().to_string()), "{said}");
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(
        note.contains("stored a refresh token, not the password"),
        "{note}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&config).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains(ADMIN_PASSWORD), "no password stored: {text}");
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    let refresh = stored["auths"][host]["identitytoken"]
        .as_str()
        .unwrap_or_else(|| panic!("an identitytoken: {stored}"))
        .to_owned();
    assert!(!refresh.is_empty());
    // `auth` as docker writes it beside an identity token (`user:`), without
    // which containers/image (skopeo, podman) skips the entry.
    assert_eq!(
        stored["auths"][host]["auth"],
        base64::engine::general_purpose::STANDARD.encode("<token>:"),
        "{stored}"
    );

    // An image, pushed with skopeo.
    let layout = write_layout(&work.path().join("src"), "v1", 4096, 11);
    run(Command::new(peer("skopeo"))
        .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
        .args(["--dest-creds", &admin_creds()])
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(format!("docker://{host}/e2e/client:v1")));
    let image = format!("{host}/e2e/client");
    let digest = layout.manifest.to_string();

    assert_eq!(ok(home, &["tags", &image], ""), "v1\n");
    let tags: serde_json::Value =
        serde_json::from_str(&ok(home, &["tags", &image, "--output", "json"], "")).unwrap();
    assert_eq!(tags, json!({"name": "e2e/client", "tags": ["v1"]}));
    assert_eq!(
        ok(home, &["catalog", host, "--limit", "1"], ""),
        "e2e/client\n"
    );
    let catalog: serde_json::Value =
        serde_json::from_str(&ok(home, &["catalog", host, "--output", "json"], "")).unwrap();
    assert_eq!(catalog, json!({"repositories": ["e2e/client"]}));

    let tagged = format!("{image}:v1");
    assert_eq!(ok(home, &["digest", &tagged], ""), format!("{digest}\n"));
    assert_eq!(
        ok(home, &["digest", &tagged, "--full-ref"], ""),
        format!("{tagged}@{digest}\n")
    );
    assert_eq!(
        ok(home, &["digest", &tagged, "--config"], ""),
        format!("{}\n", layout.blobs[0])
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&ok(home, &["digest", &tagged, "--output", "json"], "")).unwrap();
    assert_eq!(inspected["digest"], digest.as_str());
    assert_eq!(inspected["reference"], format!("{tagged}@{digest}"));
    assert_eq!(
        inspected["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    // -v traces to stderr without secrets: the refresh-token grant by POST.
    let out = output(berth(home, &["tags", &image, "-v"]), "");
    assert!(out.status.success());
    let trace = String::from_utf8(out.stderr).unwrap();
    assert!(trace.contains("Bearer <redacted>"), "{trace}");
    assert!(trace.contains("OAuth2 refresh-token grant"), "{trace}");
    assert!(!trace.contains(ADMIN_PASSWORD), "{trace}");
    assert!(!trace.contains(&refresh), "{trace}");

    // auth explain: realm, scope, grant, expiry source; no secret.
    let explained = ok(home, &["auth", "explain", &tagged], "");
    let realm = server.url("/token");
    assert!(explained.contains(&format!("realm={realm}")), "{explained}");
    assert!(
        explained.contains("scope requested: repository:e2e/client:pull"),
        "{explained}"
    );
    assert!(
        explained.contains("POST") && explained.contains("OAuth2 refresh-token grant"),
        "{explained}"
    );
    assert!(
        explained.contains("from the JWT's exp claim"),
        "{explained}"
    );
    assert!(explained.contains("sub=admin"), "{explained}");
    assert!(explained.contains("docker config"), "{explained}");
    assert!(!explained.contains(ADMIN_PASSWORD), "{explained}");
    assert!(!explained.contains(&refresh), "{explained}");
    assert!(!explained.contains("eyJ"), "no JWT printed: {explained}");

    // The same facts as JSON, for scripts.
    let json_text = ok(home, &["auth", "explain", &tagged, "--output", "json"], "");
    let report: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(report["credential"]["kind"], "identity-token");
    assert_eq!(report["operation"]["status"], 200);
    let events = report["operation"]["events"].as_array().unwrap();
    let find = |kind: &str| {
        events
            .iter()
            .find(|e| e["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event: {json_text}"))
    };
    assert_eq!(find("challenges")["challenges"][0]["realm"], realm);
    assert_eq!(find("scopes")["requested"], "repository:e2e/client:pull");
    assert_eq!(find("token-request")["method"], "POST");
    assert_eq!(find("token-received")["expirySource"], "jwt-exp");
    assert_eq!(find("token-received")["claims"]["sub"], "admin");
    assert!(!json_text.contains(ADMIN_PASSWORD), "{json_text}");
    assert!(!json_text.contains(&refresh), "{json_text}");
    assert!(!json_text.contains("eyJ"), "no JWT printed: {json_text}");

    // skopeo (containers/image) reads the stored identity token from
    // $DOCKER_CONFIG/config.json and uses it for a private repository.
    let inspect = run(Command::new(peer("skopeo"))
        .args(["--insecure-policy", "inspect", "--tls-verify=false"])
        .arg(format!("docker://{tagged}"))
        .env("HOME", home.join("home"))
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("XDG_CONFIG_HOME", home.join("config")));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());

    // berth admin cannot use a refresh token, and says how to log in instead.
    let admin = [
        "admin",
        "--registry",
        &server.url(""),
        "keys",
        "export-root",
    ];
    let err = fails(home, &admin, "");
    assert!(err.contains("--store-password"), "{err}");
    assert!(err.contains("BERTH_USERNAME"), "{err}");

    // logout removes the refresh token; the private repository is then out of reach.
    let said = ok(home, &["logout", host], "");
    assert!(said.contains("removed"), "{said}");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(stored["auths"].get(host).is_none(), "{stored}");
    let err = fails(home, &["tags", &image], "");
    assert!(err.starts_with("berth: cannot list the tags"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // --store-password keeps the password: HTTP Basic to the token service,
    // and berth admin falls back to the stored login.
    let login = [
        "login",
        host,
        "-u",
        "admin",
        "--password-stdin",
        "--store-password",
    ];
    let out = output(berth(home, &login), &format!("{ADMIN_PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(!note.contains("refresh token"), "{note}");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(stored["auths"][host]["auth"].is_string(), "{stored}");
    assert!(
        stored["auths"][host].get("identitytoken").is_none(),
        "{stored}"
    );
    let explained = ok(home, &["auth", "explain", &tagged], "");
    assert!(explained.contains("HTTP Basic"), "{explained}");
    assert!(explained.contains("docker config"), "{explained}");
    assert!(!explained.contains(ADMIN_PASSWORD), "{explained}");
    let report: serde_json::Value = serde_json::from_str(&ok(
        home,
        &["auth", "explain", &tagged, "--output", "json"],
        "",
    ))
    .unwrap();
    assert_eq!(report["credential"]["kind"], "password");
    assert_eq!(report["credential"]["username"], "admin");
    let keys = ok(home, &admin, "");
    assert!(keys.contains("BEGIN CERTIFICATE"), "{keys}");
    assert!(ok(home, &["logout", host], "").contains("removed"));
}

/// Pushes the layout's image to `host/repo:tag` for each tag, with skopeo.
fn push(layout: &crate::support::Layout, host: &str, repo: &str, tags: &[&str]) {
    for tag in tags {
        run(Command::new(peer("skopeo"))
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
            .args(["--dest-creds", &admin_creds()])
            .arg(format!("oci:{}:v1", layout.dir.display()))
            .arg(format!("docker://{host}/{repo}:{tag}")));
    }
}

/// Runs `berth <args>`; its exit code and stderr.
fn status(home: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = output(berth(home, args), "");
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn untag_then_delete_and_refused_deletion() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let login = ["login", host, "-u", "admin", "--password-stdin"];
    ok(home, &login, &format!("{ADMIN_PASSWORD}\n"));

    let layout = write_layout(&work.path().join("src"), "v1", 2048, 21);
    push(&layout, host, "e2e/del", &["a", "b"]);
    let image = format!("{host}/e2e/del");
    let digest = layout.manifest.to_string();
    let pinned = format!("{image}@{digest}");

    // Usage errors (exit 2): untag needs a tag; delete needs a tag or digest.
    let (code, err) = status(home, &["untag", &pinned]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("berth delete"), "{err}");
    let (code, err) = status(home, &["delete", &image]);
    assert_eq!(code, Some(2), "{err}");

    // untag a: the tag goes, b and the manifest stay.
    let said = ok(home, &["untag", &format!("{image}:a"), "-v"], "");
    assert_eq!(said, format!("untagged {image}:a\n"));
    assert_eq!(ok(home, &["tags", &image], ""), "b\n");
    assert_eq!(
        ok(home, &["digest", &format!("{image}:b")], ""),
        format!("{digest}\n")
    );
    let err = fails(home, &["digest", &format!("{image}:a")], "");
    assert!(err.contains("not found"), "{err}");

    // delete b: resolved to the digest, which is deleted with its tags.
    let out = output(berth(home, &["delete", &format!("{image}:b")]), "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("deleted {pinned}\n")
    );
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(note.contains(&digest), "{note}");
    assert!(note.contains("every tag"), "{note}");
    let err = fails(home, &["digest", &pinned], "");
    assert!(err.contains("not found"), "{err}");
    assert_eq!(ok(home, &["tags", &image], ""), "");

    // A registry with deletion turned off: one line, exit 1.
    let data = tempfile::tempdir().unwrap();
    let refusing = Server::start_with(data.path(), &["--delete-enabled", "false"]);
    let host = refusing.addr.as_str();
    let login = ["login", host, "-u", "admin", "--password-stdin"];
    ok(home, &login, &format!("{ADMIN_PASSWORD}\n"));
    push(&layout, host, "e2e/del", &["a"]);
    let line =
        format!("berth: {host} refuses deletion (405 UNSUPPORTED): its operator has disabled it\n");
    for command in ["delete", "untag"] {
        let out = output(berth(home, &[command, &format!("{host}/e2e/del:a")]), "");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err, line, "one line");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(ok(home, &["tags", &format!("{host}/e2e/del")], ""), "a\n");
}
