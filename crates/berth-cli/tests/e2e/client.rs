//! The client commands (`login`, `logout`, `catalog`, `tags`, `digest`,
//! `delete`, `untag`, `auth explain`, and `admin` on the stored login) against a real
//! `berth serve`, with every credentials file in a temporary directory. A
//! plain login stores a refresh token in berth's own login file (used by
//! berth); one with `--store-password` stores the password in docker's
//! config (used by skopeo too).

use base64::Engine;
use serde_json::json;

use crate::support::{ADMIN_PASSWORD, Cli, Layout, Server, run, skopeo, skopeo_push, write_layout};

#[test]
fn login_list_inspect_explain_logout() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let cli = Cli::new(home);
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let config = home.join("docker/config.json");

    // A wrong password: refused by the token service, nothing written.
    let err = cli.fails(
        &["login", host, "-u", "admin", "--password-stdin"],
        b"not-the-password\n",
    );
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("nothing stored"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!config.exists(), "nothing written after a refused login");

    // The right one: verified; berth then offers a refresh token, which is
    // stored instead of the password (as docker does), in berth's own login
    // file (0600), not in docker's config, where podman and skopeo would
    // refuse to log in because of it.
    let login = ["login", host, "-u", "admin", "--password-stdin"];
    let out = cli.run(&login, format!("{ADMIN_PASSWORD}\n").as_bytes());
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8(out.stdout).unwrap();
    let berth_file = home.join("config/berth/auth.json");
    assert!(said.contains(&berth_file.display().to_string()), "{said}");
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(
        note.contains("stored a refresh token, not the password"),
        "{note}"
    );
    assert!(note.contains("--store-password"), "{note}");
    assert!(!config.exists(), "docker's config untouched");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&berth_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&berth_file).unwrap();
    assert!(!text.contains(ADMIN_PASSWORD), "no password stored: {text}");
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    let refresh = stored["auths"][host]["identitytoken"]
        .as_str()
        .unwrap_or_else(|| panic!("an identitytoken: {stored}"))
        .to_owned();
    assert!(!refresh.is_empty());
    assert_eq!(
        stored["auths"][host]["auth"],
        base64::engine::general_purpose::STANDARD.encode("<token>:"),
        "{stored}"
    );

    // An image, pushed with skopeo.
    let layout = write_layout(&work.path().join("src"), "v1", 4096, 11);
    skopeo_push(&layout.dir, "v1", &format!("{host}/e2e/client:v1"));
    let image = format!("{host}/e2e/client");
    let digest = layout.manifest.to_string();

    assert_eq!(cli.ok_text(&["tags", &image], b""), "v1\n");
    let tags = cli.ok_json(&["tags", &image, "--output", "json"], b"");
    assert_eq!(tags, json!({"name": "e2e/client", "tags": ["v1"]}));
    assert_eq!(
        cli.ok_text(&["catalog", host, "--limit", "1", "--page-size", "1"], b""),
        "e2e/client\n"
    );
    let catalog = cli.ok_json(&["catalog", host, "--output", "json"], b"");
    assert_eq!(catalog, json!({"repositories": ["e2e/client"]}));

    let tagged = format!("{image}:v1");
    assert_eq!(
        cli.ok_text(&["digest", &tagged], b""),
        format!("{digest}\n")
    );
    assert_eq!(
        cli.ok_text(&["digest", &tagged, "--full-ref"], b""),
        format!("{tagged}@{digest}\n")
    );
    assert_eq!(
        cli.ok_text(&["digest", &tagged, "--config"], b""),
        format!("{}\n", layout.blobs[0])
    );
    let inspected = cli.ok_json(&["digest", &tagged, "--output", "json"], b"");
    assert_eq!(inspected["digest"], digest.as_str());
    assert_eq!(inspected["reference"], format!("{tagged}@{digest}"));
    assert_eq!(
        inspected["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    // -v traces to stderr without secrets: the refresh-token grant by POST.
    let out = cli.run(&["tags", &image, "-v"], b"");
    assert!(out.status.success());
    let trace = String::from_utf8(out.stderr).unwrap();
    assert!(trace.contains("Bearer <redacted>"), "{trace}");
    assert!(trace.contains("OAuth2 refresh-token grant"), "{trace}");
    assert!(!trace.contains(ADMIN_PASSWORD), "{trace}");
    assert!(!trace.contains(&refresh), "{trace}");

    // auth explain: realm, scope, grant, expiry source; no secret.
    let explained = cli.ok_text(&["auth", "explain", &tagged], b"");
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
    assert!(explained.contains("berth login file"), "{explained}");
    assert!(!explained.contains(ADMIN_PASSWORD), "{explained}");
    assert!(!explained.contains(&refresh), "{explained}");
    assert!(!explained.contains("eyJ"), "no JWT printed: {explained}");

    // The same facts as JSON, for scripts.
    let json_text = cli.ok_text(&["auth", "explain", &tagged, "--output", "json"], b"");
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

    // berth admin works from the stored refresh token too (the API takes it
    // as a bearer token), so the password need not be stored.
    let admin = [
        "admin",
        "--registry",
        &server.url(""),
        "keys",
        "export-root",
    ];
    let pem = cli.ok_text(&admin, b"");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");

    // logout removes the refresh token; the private repository is then out of reach.
    let said = cli.ok_text(&["logout", host], b"");
    assert!(said.contains("removed"), "{said}");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&berth_file).unwrap()).unwrap();
    assert!(stored["auths"].get(host).is_none(), "{stored}");
    let err = cli.fails(&["tags", &image], b"");
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
    let out = cli.run(&login, format!("{ADMIN_PASSWORD}\n").as_bytes());
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
    let explained = cli.ok_text(&["auth", "explain", &tagged], b"");
    assert!(explained.contains("HTTP Basic"), "{explained}");
    assert!(explained.contains("docker config"), "{explained}");
    assert!(!explained.contains(ADMIN_PASSWORD), "{explained}");
    let report = cli.ok_json(&["auth", "explain", &tagged, "--output", "json"], b"");
    assert_eq!(report["credential"]["kind"], "password");
    assert_eq!(report["credential"]["username"], "admin");
    let keys = cli.ok_text(&admin, b"");
    assert!(keys.contains("BEGIN CERTIFICATE"), "{keys}");

    // skopeo (containers/image) uses the password berth stored in
    // $DOCKER_CONFIG/config.json for a private repository.
    let inspect = run(cli.confine(
        skopeo()
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{tagged}")),
    ));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert!(cli.ok_text(&["logout", host], b"").contains("removed"));
}

/// Pushes the layout's image to `host/repo:tag` for each tag, with skopeo.
fn push(layout: &Layout, host: &str, repo: &str, tags: &[&str]) {
    for tag in tags {
        skopeo_push(&layout.dir, "v1", &format!("{host}/{repo}:{tag}"));
    }
}

/// Runs `berth <args>`; its exit code and stderr.
fn status(cli: &Cli, args: &[&str]) -> (Option<i32>, String) {
    let out = cli.run(args, b"");
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn untag_then_delete_and_refused_deletion() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::new(home.path());
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let login = ["login", host, "-u", "admin", "--password-stdin"];
    cli.ok_text(&login, format!("{ADMIN_PASSWORD}\n").as_bytes());

    let layout = write_layout(&work.path().join("src"), "v1", 2048, 21);
    push(&layout, host, "e2e/del", &["a", "b"]);
    let image = format!("{host}/e2e/del");
    let digest = layout.manifest.to_string();
    let pinned = format!("{image}@{digest}");

    // Usage errors (exit 2): untag needs a tag; delete needs a tag or digest.
    let (code, err) = status(&cli, &["untag", &pinned]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("berth delete"), "{err}");
    let (code, err) = status(&cli, &["delete", &image]);
    assert_eq!(code, Some(2), "{err}");

    // untag a: the tag goes, b and the manifest stay.
    let said = cli.ok_text(&["untag", &format!("{image}:a"), "-v"], b"");
    assert_eq!(said, format!("untagged {image}:a\n"));
    assert_eq!(cli.ok_text(&["tags", &image], b""), "b\n");
    assert_eq!(
        cli.ok_text(&["digest", &format!("{image}:b")], b""),
        format!("{digest}\n")
    );
    let err = cli.fails(&["digest", &format!("{image}:a")], b"");
    assert!(err.contains("not found"), "{err}");

    // delete b: resolved to the digest, which is deleted with its tags.
    let out = cli.run(&["delete", &format!("{image}:b"), "--yes"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("deleted {pinned} (tag b)\n")
    );
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(note.contains(&digest), "{note}");
    assert!(note.contains("every tag"), "{note}");
    let err = cli.fails(&["digest", &pinned], b"");
    assert!(err.contains("not found"), "{err}");
    assert_eq!(cli.ok_text(&["tags", &image], b""), "");

    // A registry with deletion turned off: one line, exit 1.
    let data = tempfile::tempdir().unwrap();
    let refusing = Server::start_with(data.path(), &["--delete-enabled", "false"]);
    let host = refusing.addr.as_str();
    let login = ["login", host, "-u", "admin", "--password-stdin"];
    cli.ok_text(&login, format!("{ADMIN_PASSWORD}\n").as_bytes());
    push(&layout, host, "e2e/del", &["a"]);
    let line =
        format!("berth: {host} refuses deletion (405 UNSUPPORTED): its operator has disabled it\n");
    for command in [&["delete", "--yes"][..], &["untag"]] {
        let target = format!("{host}/e2e/del:a");
        let args: Vec<&str> = command.iter().copied().chain([target.as_str()]).collect();
        let out = cli.run(&args, b"");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        // delete says first which tags would go, then fails.
        let err = err
            .lines()
            .last()
            .map(|l| format!("{l}\n"))
            .unwrap_or_default();
        assert_eq!(err, line, "one line");
    }
    assert_eq!(
        cli.ok_text(&["tags", &format!("{host}/e2e/del")], b""),
        "a\n"
    );
}
