//! Logins shared with podman and skopeo: berth reads their default auth
//! file when XDG_RUNTIME_DIR is unset, and berth's own login never stops
//! `podman login` or `skopeo login` from working, while a password berth
//! stores is used by skopeo and podman pulls.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{ADMIN_PASSWORD, Cli, Server, feed, run, skopeo, skopeo_push, write_layout};

/// The real user id, as skopeo names its per-user directory.
fn uid() -> String {
    run(Command::new("id").arg("-u")).trim().to_owned()
}

/// `skopeo login` of admin to `host`, with `command`'s environment.
fn skopeo_login(mut command: Command, host: &str) -> std::process::Output {
    command.args([
        "login",
        "--tls-verify=false",
        "-u",
        "admin",
        "--password-stdin",
        host,
    ]);
    feed(&mut command, ADMIN_PASSWORD.as_bytes())
}

/// `skopeo logout host` when dropped: the per-user file is the machine's.
struct Logout {
    host: String,
    home: PathBuf,
}

impl Drop for Logout {
    fn drop(&mut self) {
        let _ = skopeo()
            .args(["logout", "--tls-verify=false", &self.host])
            .env("HOME", &self.home)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .output();
    }
}

/// Regression: after `skopeo login` with XDG_RUNTIME_DIR unset (skopeo then
/// writes /run/containers/$UID/auth.json), `berth tags` was unauthorized.
#[test]
fn skopeo_login_without_xdg_runtime_dir_is_used_by_berth() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let host = server.addr.clone();
    let layout = write_layout(&work.path().join("src"), "v1", 1024, 31);
    skopeo_push(&layout.dir, "v1", &format!("{host}/admin/shared:v1"));
    let cli = Cli::new(home.path());
    // Neither REGISTRY_AUTH_FILE nor DOCKER_CONFIG: either would be
    // skopeo's auth file instead (containers/common's default --authfile).
    let without_runtime_dir = |mut command: Command| {
        cli.confine(&mut command)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
        command
    };

    let _logout = Logout {
        host: host.clone(),
        home: home.path().join("home"),
    };
    let out = skopeo_login(without_runtime_dir(skopeo()), &host);
    assert!(out.status.success(), "skopeo login: {out:?}");
    let file = PathBuf::from(format!("/run/containers/{}/auth.json", uid()));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&host),
        "skopeo wrote {}: {text}",
        file.display()
    );

    let mut tags = cli.command(&["tags", &format!("{host}/admin/shared")]);
    tags.env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE");
    let out = tags.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "v1\n");
    let mut explain = cli.command(&["auth", "explain", &format!("{host}/admin/shared:v1")]);
    explain
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE");
    let said = String::from_utf8(explain.output().unwrap().stdout).unwrap();
    assert!(
        said.contains(&format!("podman auth file {}", file.display())),
        "{said}"
    );
}

/// podman with a private storage root, confined like `cli`, without
/// REGISTRY_AUTH_FILE: its auth file is then $DOCKER_CONFIG/config.json
/// (containers/common's default --authfile), where berth once kept its
/// refresh token.
fn podman(cli: &Cli, work: &Path) -> Command {
    let mut command = crate::support::podman(work);
    cli.confine(&mut command).env_remove("REGISTRY_AUTH_FILE");
    command
}

/// Regression: with berth's refresh token in docker's config.json,
/// `podman login` and `skopeo login` failed ("auth file contains an Identity
/// token") until `berth logout`.
#[test]
fn podman_and_skopeo_log_in_after_berth_login() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let work = work.path();
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let layout = write_layout(&work.join("src"), "v1", 1024, 32);
    let image = format!("{host}/admin/shared:v1");
    skopeo_push(&layout.dir, "v1", &image);
    let cli = Cli::new(home.path());
    let login = ["login", host, "-u", "admin", "--password-stdin"];
    cli.ok(&login, format!("{ADMIN_PASSWORD}\n").as_bytes());
    let skopeo_env = || {
        let mut command = skopeo();
        cli.confine(&mut command).env_remove("REGISTRY_AUTH_FILE");
        command
    };

    // Both tools log in (their auth file is docker's config, as DOCKER_CONFIG
    // is set).
    let out = skopeo_login(skopeo_env(), host);
    assert!(
        out.status.success(),
        "skopeo login after berth login: {out:?}"
    );
    let out = feed(
        podman(&cli, work).args([
            "login",
            "--tls-verify=false",
            "-u",
            "admin",
            "--password-stdin",
            host,
        ]),
        ADMIN_PASSWORD.as_bytes(),
    );
    assert!(
        out.status.success(),
        "podman login after berth login: {out:?}"
    );

    // berth keeps using its own login (the refresh token).
    let shared = format!("{host}/admin/shared");
    assert_eq!(cli.ok_text(&["tags", &shared], b""), "v1\n");
    let report = cli.ok_json(&["auth", "explain", &image, "--output", "json"], b"");
    assert_eq!(report["credential"]["kind"], "identity-token", "{report}");

    // Their logins gone, a password berth stores is what skopeo and podman
    // pull with, and their login still works beside it.
    run(skopeo_env().args(["logout", "--all"]));
    let login = [
        "login",
        host,
        "-u",
        "admin",
        "--password-stdin",
        "--store-password",
    ];
    cli.ok(&login, format!("{ADMIN_PASSWORD}\n").as_bytes());
    let inspect = run(skopeo_env()
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{image}")));
    assert!(inspect.contains(&layout.manifest.to_string()), "{inspect}");
    run(podman(&cli, work).args(["pull", "--tls-verify=false", &image]));
    let out = skopeo_login(skopeo_env(), host);
    assert!(
        out.status.success(),
        "skopeo login beside a stored password: {out:?}"
    );
    assert_eq!(cli.ok_text(&["tags", &shared], b""), "v1\n");
}
