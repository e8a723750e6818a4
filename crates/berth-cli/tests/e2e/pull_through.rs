//! The pull-through cache with real clients and a real upstream: stock CNCF
//! distribution 2.8.2 (Debian `docker-registry`, htpasswd, so berth presents
//! an upstream account) cached under a `[[proxy]]` namespace, pulled through
//! by skopeo and podman; what is cached keeps being served once the
//! upstream is gone, what is not answers 503; pushes are refused.

use crate::distribution::{Auth, Distribution};
use crate::support::{
    Cli, Server, admin_creds, podman, refused_start, run, skopeo, skopeo_pull, start_lines,
    write_layout,
};

const UPSTREAM_USER: &str = "upstream";
const UPSTREAM_PASSWORD: &str = "upstream-htpasswd-password";

/// A distribution with an htpasswd account, holding `e2e/cached:v1` (a
/// 20 MB layer); the berth TOML config that caches it as `dist/` with a
/// one-second tag TTL, the password in a file.
fn upstream_and_config(
    work: &std::path::Path,
) -> (Distribution, crate::support::Layout, std::path::PathBuf) {
    let hash = bcrypt::hash_with_result(UPSTREAM_PASSWORD, 4)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let htpasswd = work.join("htpasswd");
    std::fs::write(&htpasswd, format!("{UPSTREAM_USER}:{hash}\n")).unwrap();
    let upstream = Distribution::start(work, Auth::Htpasswd { file: &htpasswd });
    let layout = write_layout(&work.join("src"), "v1", 20 * 1024 * 1024, 23);
    run(skopeo()
        .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}"))
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(format!("docker://{}/e2e/cached:v1", upstream.addr)));
    let password_file = work.join("upstream.password");
    std::fs::write(&password_file, format!("{UPSTREAM_PASSWORD}\n")).unwrap();
    let config = work.join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "[[proxy]]\nname = \"dist\"\nurl = \"http://{}\"\nusername = \"{UPSTREAM_USER}\"\n\
             password_file = \"{}\"\ntag_ttl_secs = 1\n",
            upstream.addr,
            password_file.display()
        ),
    )
    .unwrap();
    (upstream, layout, config)
}

/// skopeo and podman pull an image of distribution through berth: the same
/// manifest digest and blobs as pushed upstream; `skopeo list-tags` lists
/// the upstream's tags. With the upstream stopped and the tag's TTL past,
/// the cached tag still pulls (berth logs that it served the last good
/// answer) and `list-tags` lists the cached tags; an uncached tag answers
/// 503 `UNAVAILABLE` naming the upstream; a push into the cache is refused
/// with a message.
#[test]
fn skopeo_and_podman_pull_distribution_through_the_cache() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (upstream, layout, config) = upstream_and_config(work.path());
    let config_arg = config.to_str().unwrap();
    let server = Server::start_with(data.path(), &["--config", config_arg]);
    let image = format!("{}/dist/e2e/cached:v1", server.addr);

    let back = work.path().join("back");
    skopeo_pull(&image, &back, "v1");
    layout.assert_pulled_into(&back);

    let podman = || podman(work.path());
    run(podman().args([
        "pull",
        "--tls-verify=false",
        "--creds",
        &admin_creds(),
        &image,
    ]));
    let id = run(podman().args(["image", "inspect", "--format", "{{.Digest}}", &image]));
    assert_eq!(id.trim(), layout.manifest.to_string());

    // The tag list is the upstream's, `v2` never pulled through the cache.
    run(skopeo()
        .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("{UPSTREAM_USER}:{UPSTREAM_PASSWORD}"))
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(format!("docker://{}/e2e/cached:v2", upstream.addr)));
    let list_tags = || {
        let out = run(skopeo()
            .args(["list-tags", "--tls-verify=false", "--creds"])
            .arg(admin_creds())
            .arg(format!("docker://{}/dist/e2e/cached", server.addr)));
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["Tags"].clone()
    };
    assert_eq!(list_tags(), serde_json::json!(["v1", "v2"]));

    let refused = skopeo()
        .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
        .arg(admin_creds())
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(format!("docker://{}/dist/e2e/pushed:v1", server.addr))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("pull-through cache"), "{stderr}");

    // The upstream goes away; the tag's answer is older than its TTL.
    drop(upstream);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let again = work.path().join("again");
    skopeo_pull(&image, &again, "v1");
    assert_eq!(list_tags(), serde_json::json!(["v1"]), "the cached tags");
    assert!(
        server
            .log()
            .iter()
            .any(|line| line.contains("serving the last good answer")),
        "berth says it served a stale tag: {:#?}",
        server.log()
    );

    let token = server.admin_token("repository:dist/e2e/cached:pull");
    let missing = reqwest::blocking::Client::new()
        .get(server.url("/v2/dist/e2e/cached/manifests/v2"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(missing.status(), 503);
    assert_eq!(
        missing
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("30")
    );
    let body: serde_json::Value = missing.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("not cached yet") && message.contains("cannot be reached"),
        "{message}"
    );
}

/// The start lines name each proxy namespace, its upstream's origin, the
/// account and the access; never the password read from `password_file`.
#[test]
fn start_lines_name_the_proxy_but_never_its_password() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (upstream, _layout, config) = upstream_and_config(work.path());
    let lines = start_lines(data.path(), &config);
    let expected = format!(
        "  proxy:      dist/... -> http://{} as {UPSTREAM_USER} (authenticated pulls, tags checked every 1 s)",
        upstream.addr
    );
    assert!(lines.contains(&expected), "{lines:#?}");
    assert!(
        !lines.iter().any(|line| line.contains(UPSTREAM_PASSWORD)),
        "{lines:#?}"
    );
}

/// A `[[proxy]]` the server cannot use stops the start with one line naming
/// the namespace and the key, before anything listens.
#[test]
fn a_bad_proxy_table_is_refused_in_one_line() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("berth.toml");
    std::fs::write(
        &config,
        "[[proxy]]\nname = \"hub\"\nurl = \"https://registry-1.docker.io/v2/\"\n",
    )
    .unwrap();
    let stderr = refused_start(&config, data.path());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("berth: ")
            && lines[0].contains("proxy hub: url")
            && lines[0].contains("has a path"),
        "{stderr}"
    );
}

/// `berth admin proxy add|list|remove` with the real binary: a namespace
/// added at run time is in force without a restart (skopeo pulls the
/// upstream's image through it, with the upstream account of the password
/// file), listed with its source, and gone after `remove`.
#[test]
fn admin_proxy_commands_add_a_namespace_at_run_time() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (upstream, layout, _config) = upstream_and_config(work.path());
    let server = Server::start(data.path());
    let admin = Cli::admin(home.path()).env("BERTH_REGISTRY", server.url(""));
    let password_file = work.path().join("upstream.password");
    let added = admin.ok_text(
        &[
            "admin",
            "proxy",
            "add",
            "dist",
            &format!("http://{}", upstream.addr),
            "--username",
            UPSTREAM_USER,
            "--password-file",
            password_file.to_str().unwrap(),
            "--tag-ttl-secs",
            "60",
        ],
        b"",
    );
    assert_eq!(
        added,
        format!(
            "added proxy dist: dist/<repository> pulls from http://{} (authenticated pulls)\n",
            upstream.addr
        )
    );
    let listed = admin.ok_text(&["admin", "proxy", "list"], b"");
    let row = listed
        .lines()
        .find(|line| line.starts_with("dist "))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        row.contains(UPSTREAM_USER) && row.contains("60 s") && row.contains(" api "),
        "{listed}"
    );

    let back = work.path().join("back");
    skopeo_pull(&format!("{}/dist/e2e/cached:v1", server.addr), &back, "v1");
    layout.assert_pulled_into(&back);
    let json = admin.ok_json(&["admin", "proxy", "list", "--output", "json"], b"");
    assert_eq!(json[0]["name"], "dist");
    assert!(
        json[0]["fetched_bytes"].as_u64().unwrap() > 20 * 1024 * 1024,
        "{json}"
    );

    assert_eq!(
        admin.ok_text(&["admin", "proxy", "remove", "dist"], b""),
        "removed proxy dist\n"
    );
    assert_eq!(
        admin.ok_text(&["admin", "proxy", "list"], b""),
        "no proxy namespaces (berth serve --proxy NAME=URL, or berth admin proxy add)\n"
    );
    let again = admin.fails(&["admin", "proxy", "remove", "dist"], b"");
    assert!(
        again.contains("no proxy namespace is named `dist`"),
        "{again}"
    );
}
