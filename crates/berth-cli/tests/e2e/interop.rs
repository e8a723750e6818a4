//! Stock CNCF distribution 2.8.2 (Debian `docker-registry`) as a peer:
//!
//! - trusting berth's token service: berth is the `auth.token` server of a
//!   registry it does not run, as PROTOCOL.md section 4 promises; berth's
//!   client then works against it end to end;
//! - with htpasswd (Basic on every request, no token service): berth's client
//!   logs in, copies, lists and inspects over Basic.

use crate::distribution::{Auth, Distribution, SERVICE};
use crate::support::{ADMIN_PASSWORD, Cli, Server, admin_creds, run, skopeo, write_layout};

/// A token from berth for `admin` with `scope`, for distribution's service.
fn berth_token(berth: &Server, scope: &str) -> String {
    let response = reqwest::blocking::Client::new()
        .get(berth.url("/token"))
        .query(&[("service", SERVICE), ("scope", scope)])
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .expect("token request");
    assert_eq!(response.status(), 200, "admin gets a token");
    let body: serde_json::Value = response.json().expect("token JSON");
    body["token"].as_str().expect("token field").to_owned()
}

/// skopeo pushes to and pulls from distribution 2.8.2 with berth's admin
/// credentials: distribution's challenge sends it to berth's /token, and
/// distribution accepts the ES256 token through its `x5c` chain to berth's
/// root. Anonymous and wrong-scope tokens open nothing.
#[test]
fn distribution_accepts_berth_tokens() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let berth = Server::start_with(data.path(), &["--service", SERVICE]);
    let root_cert = data.path().join("keys/root.crt.pem");
    assert!(root_cert.is_file(), "berth wrote its root certificate");
    let registry = Distribution::start(
        work.path(),
        Auth::BerthTokens {
            berth: &berth,
            root_cert: &root_cert,
        },
    );

    // /v2/ challenges with berth's realm and our service.
    let client = reqwest::blocking::Client::new();
    let response = client.get(registry.url("/v2/")).send().unwrap();
    assert_eq!(response.status(), 401, "log:\n{}", registry.log());
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            r#"Bearer realm="{}",service="{SERVICE}""#,
            berth.url("/token")
        )
    );

    // Push through distribution with berth's credentials, then pull back.
    let layout = write_layout(&work.path().join("src"), "v1", 4 * 1024 * 1024, 23);
    let image = format!("docker://{}/admin/interop:v1", registry.addr);
    let copied = skopeo()
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &admin_creds(),
        ])
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "skopeo copy to distribution failed:\n{}\ndistribution log:\n{}",
        String::from_utf8_lossy(&copied.stderr),
        registry.log()
    );
    let back = work.path().join("back");
    run(skopeo()
        .args([
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &admin_creds(),
        ])
        .arg(&image)
        .arg(format!("oci:{}:v1", back.display())));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(layout.manifest.to_string().as_str()),
        "the manifest came back from distribution byte for byte"
    );
    let tags: serde_json::Value = serde_json::from_str(&run(skopeo()
        .args(["list-tags", "--tls-verify=false", "--creds", &admin_creds()])
        .arg(format!("docker://{}/admin/interop", registry.addr))))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));

    // Anonymous: berth grants nothing on a private repository.
    let anonymous = skopeo()
        .args(["inspect", "--tls-verify=false"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "anonymous inspect through distribution fails"
    );

    // A valid token for another repository does not open this one...
    let tags_url = registry.url("/v2/admin/interop/tags/list");
    let other = client
        .get(&tags_url)
        .bearer_auth(berth_token(&berth, "repository:admin/other:pull"))
        .send()
        .unwrap();
    assert_eq!(other.status(), 401, "a token for admin/other");
    // ...while one for this repository does: the 401 above is the scope.
    let own = client
        .get(&tags_url)
        .bearer_auth(berth_token(&berth, "repository:admin/interop:pull"))
        .send()
        .unwrap();
    assert_eq!(own.status(), 200, "log:\n{}", registry.log());
    let own: serde_json::Value = own.json().unwrap();
    assert_eq!(own["tags"], serde_json::json!(["v1"]));
}

/// berth's client against distribution whose tokens berth issues: copy in,
/// list, inspect, read a blob, delete; every token request goes to berth
/// with the service distribution names.
#[test]
fn berth_client_against_distribution_with_berth_tokens() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let berth_server = Server::start_with(data.path(), &["--service", SERVICE]);
    let root_cert = data.path().join("keys/root.crt.pem");
    let registry = Distribution::start(
        work.path(),
        Auth::BerthTokens {
            berth: &berth_server,
            root_cert: &root_cert,
        },
    );
    let cli = Cli::admin(work.path());
    let layout = write_layout(&work.path().join("src"), "v1", 3 * 1024 * 1024, 31);
    let image = format!("{}/admin/cli", registry.addr);

    let copied = cli.ok_json(
        &[
            "copy",
            &format!("oci:{}:v1", layout.dir.display()),
            &format!("{image}:v1"),
            "--output",
            "json",
        ],
        b"",
    );
    assert_eq!(copied["digest"], layout.manifest.to_string(), "{copied}");
    assert_eq!(copied["blobs"]["copied"], 2, "{copied}");

    assert_eq!(cli.ok_text(&["tags", &image], b""), "v1\n");
    assert_eq!(
        cli.ok_text(&["digest", &format!("{image}:v1")], b""),
        format!("{}\n", layout.manifest)
    );
    let manifest = cli.ok_text(&["manifest", "get", &format!("{image}:v1")], b"");
    assert_eq!(
        berth_core::Digest::sha256_of(manifest.as_bytes()),
        layout.manifest,
        "the exact manifest bytes"
    );
    let config = work.path().join("config.json");
    cli.ok_text(
        &[
            "blob",
            "get",
            &format!("{image}@{}", layout.blobs[0]),
            "-o",
            config.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(
        berth_core::Digest::sha256_of(&std::fs::read(&config).unwrap()),
        layout.blobs[0]
    );

    // The token flow, as berth explains it: distribution's challenge names
    // berth's realm and the service; the token is berth's JWT.
    let explained = cli.ok_json(
        &[
            "auth",
            "explain",
            &format!("{image}:v1"),
            "--output",
            "json",
        ],
        b"",
    );
    let events = explained["operation"]["events"].as_array().unwrap();
    let challenge = events.iter().find(|e| e["event"] == "challenges").unwrap();
    assert_eq!(
        challenge["challenges"][0]["realm"],
        berth_server.url("/token")
    );
    assert_eq!(challenge["challenges"][0]["service"], SERVICE);
    assert_eq!(explained["operation"]["status"], 200, "{explained}");

    // Delete by tag: resolved to the digest, deleted, the tag gone.
    let deleted = cli.ok_text(&["delete", &format!("{image}:v1"), "--yes"], b"");
    assert!(deleted.contains(&layout.manifest.to_string()), "{deleted}");
    let gone = cli.run(&["digest", &format!("{image}:v1")], b"");
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

/// berth's client against distribution with htpasswd: no token service, Basic
/// on every request. Login checks the password before storing it; a wrong
/// one stores nothing.
#[test]
fn berth_client_against_distribution_with_htpasswd() {
    let work = tempfile::tempdir().unwrap();
    let password = "alice-htpasswd-password";
    let hash = bcrypt::hash_with_result(password, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let htpasswd = work.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let registry = Distribution::start(work.path(), Auth::Htpasswd { file: &htpasswd });
    let home = work.path();
    let cli = Cli::new(home);
    let host = registry.addr.clone();
    let image = format!("{host}/team/app");

    // A wrong password is refused at login, and nothing is stored.
    let login = ["login", &host, "-u", "alice", "--password-stdin"];
    let refused = cli.run(&login, b"not-the-password\n");
    assert_eq!(refused.status.code(), Some(1));
    assert!(!home.join("docker/config.json").exists(), "nothing stored");

    let logged_in = cli.run(&login, format!("{password}\n").as_bytes());
    assert!(
        logged_in.status.success(),
        "{}",
        String::from_utf8_lossy(&logged_in.stderr)
    );

    let layout = write_layout(&work.path().join("src"), "v1", 2 * 1024 * 1024, 37);
    cli.ok_text(
        &[
            "copy",
            &format!("oci:{}:v1", layout.dir.display()),
            &format!("{image}:v1"),
        ],
        b"",
    );
    assert_eq!(cli.ok_text(&["tags", &image], b""), "v1\n");
    assert_eq!(
        cli.ok_text(&["catalog", &host], b""),
        "team/app\n",
        "distribution lists its catalog to any authenticated user"
    );
    let back = work.path().join("back");
    cli.ok_text(
        &[
            "copy",
            &format!("{image}:v1"),
            &format!("oci:{}:v1", back.display()),
        ],
        b"",
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], layout.manifest.to_string());

    // The flow: a Basic challenge, answered with Basic; no token service.
    let explained = cli.ok_text(&["auth", "explain", &format!("{image}:v1")], b"");
    assert!(explained.contains("scheme=Basic"), "{explained}");
    assert!(
        explained.contains("Authorization: Basic <redacted>"),
        "{explained}"
    );
    assert!(!explained.contains(password), "{explained}");

    // Logged out, the registry is out of reach, and the message says so.
    cli.ok_text(&["logout", &host], b"");
    let denied = cli.run(&["tags", &image], b"");
    assert_eq!(denied.status.code(), Some(1));
    let message = String::from_utf8_lossy(&denied.stderr);
    assert!(message.contains("log in"), "{message}");
}
