//! The operator files in `deploy/` and what they rely on: the example
//! `berth.toml` names every setting and starts a server (as it is, and with
//! every commented key set), the systemd unit passes `systemd-analyze
//! verify`, `berth serve` announces readiness on `$NOTIFY_SOCKET` (path and
//! abstract sockets), and a SIGHUP (`systemctl reload`) without TLS leaves
//! the server running.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{Server, peer};

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name)
}

/// The settings `berth serve --help` lists, as TOML keys.
fn serve_settings() -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let mut keys: Vec<String> = help
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .filter_map(|rest| rest.split([' ', '=']).next())
        .filter(|flag| !["help", "config"].contains(flag))
        .map(|flag| flag.replace('-', "_"))
        .collect();
    keys.dedup();
    assert!(keys.len() > 10, "flags found in the help: {keys:?}");
    keys
}

/// The key a line of the example sets, active or commented out.
fn key_of(line: &str) -> Option<&str> {
    let line = line.strip_prefix("# ").unwrap_or(line);
    let (key, _) = line.split_once(" = ")?;
    key.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        .then_some(key)
}

/// A self-signed certificate for 127.0.0.1: (certificate file, key file, PEM).
fn certificate(dir: &Path) -> (PathBuf, PathBuf, String) {
    std::fs::create_dir_all(dir).unwrap();
    let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let pem = issued.cert.pem();
    std::fs::write(&cert, &pem).unwrap();
    std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();
    (cert, key, pem)
}

/// Starts `berth serve --config FILE` with the address, data directory and
/// TLS files given by flags (which win over the file); checks that the
/// file's public URL is the token realm.
fn serve_with_config(config: &Path, work: &Path) {
    let (cert, key, pem) = certificate(work);
    let server = Server::start_with(
        &work.join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(server.scheme, "https");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = client.get(server.url("/v2/")).send().unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"realm="https://registry.example.com/token""#),
        "the example's public_url is in force: {challenge}"
    );
}

/// Every setting of `berth serve --help` is in the example (set or
/// commented out with its default), the example starts a server as it is,
/// and again with every commented key set: no key in it is unknown or
/// holds a value berth refuses.
#[test]
fn the_example_config_names_every_setting_and_starts_a_server() {
    let example = std::fs::read_to_string(deploy_file("berth.toml")).unwrap();
    // A key, or an array of tables (`[[proxy]]` for `--proxy`).
    let named: Vec<&str> = example
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            key_of(line).or_else(|| line.strip_prefix("[[")?.strip_suffix("]]"))
        })
        .collect();
    for key in serve_settings() {
        assert!(
            named.contains(&key.as_str()),
            "deploy/berth.toml does not name `{key}`: add it, commented, with its meaning and default"
        );
    }

    let work = tempfile::tempdir().unwrap();
    serve_with_config(&deploy_file("berth.toml"), &work.path().join("as-is"));

    // The example's database is not reachable from here: `database_url`
    // becomes the test database when there is one (BERTH_TEST_DATABASE_URL),
    // and is dropped otherwise.
    let test_database = std::env::var("BERTH_TEST_DATABASE_URL").ok();
    // The example's webhook secret and upstream password files are the
    // operator's: ones made here.
    let secret_file = work.path().join("webhook.secret");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef\n").unwrap();
    let password_file = work.path().join("upstream.password");
    std::fs::write(&password_file, "upstream-password\n").unwrap();
    let every_key: String = example
        .lines()
        .filter_map(|line| match line.strip_prefix("# ") {
            Some(_) if key_of(line) == Some("database_url") => test_database
                .as_ref()
                .map(|url| format!("database_url = {url:?}\n")),
            Some(_) if key_of(line) == Some("secret_file") => Some(format!(
                "secret_file = {:?}\n",
                secret_file.to_str().unwrap()
            )),
            Some(_) if key_of(line) == Some("password_file") => Some(format!(
                "password_file = {:?}\n",
                password_file.to_str().unwrap()
            )),
            Some(rest) if key_of(line).is_some() || rest.starts_with("[[") => {
                Some(format!("{rest}\n"))
            }
            _ => Some(format!("{line}\n")),
        })
        .collect();
    let all = work.path().join("all.toml");
    std::fs::write(&all, &every_key).unwrap();
    assert_eq!(
        every_key.lines().filter(|l| key_of(l).is_some()).count(),
        every_key
            .lines()
            .filter(|l| key_of(l).is_some() && !l.starts_with('#'))
            .count(),
        "every key is set in the uncommented copy"
    );
    serve_with_config(&all, &work.path().join("all"));
}

/// `systemd-analyze verify` finds nothing to say about the unit (it warns
/// on unknown keys and bad values but exits 0, so its output must be
/// empty), and `systemd-analyze security` rates its exposure.
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let analyze = peer("systemd-analyze");
    let unit = std::fs::read_to_string(deploy_file("berth.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/berth serve "));
    // verify checks that the programs exist: point it at the built binary.
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("berth.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/berth", env!("CARGO_BIN_EXE_berth")),
    )
    .unwrap();
    let output = Command::new(&analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let security = Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&copy)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for berth.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    eprintln!("systemd-analyze security: exposure {exposure} (0 safest, 10 unprotected)");
    assert!(
        exposure < 3.0,
        "the unit's hardening was loosened: {report}"
    );
}

/// Receives one datagram, waiting up to 30 s.
fn receive(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buffer = [0u8; 1024];
    let n = socket
        .recv(&mut buffer)
        .expect("a notification within 30 s");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[test]
fn serve_announces_readiness_on_the_notify_socket() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let server = Server::start_with_env(
        &work.path().join("data"),
        &[],
        &[("NOTIFY_SOCKET", path.as_os_str())],
    );
    assert_eq!(
        receive(&socket),
        format!("READY=1\nSTATUS=listening on http://{}", server.addr)
    );

    // An abstract socket (`@name`), as some containers hand out.
    use std::os::linux::net::SocketAddrExt;
    let name = format!("berth-e2e-notify-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&address).unwrap();
    let at_name = format!("@{name}");
    let server = Server::start_with_env(
        &work.path().join("data2"),
        &[],
        &[("NOTIFY_SOCKET", OsStr::new(&at_name))],
    );
    assert!(receive(&socket).starts_with("READY=1\n"));
    drop(server);
}

/// `systemctl reload` sends SIGHUP once the server said it is ready;
/// without TLS there is nothing to reload, and the server must go on
/// (SIGHUP's default action ends a process).
#[test]
fn sighup_without_tls_leaves_the_server_running() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut server = Server::start_with_env(
        &work.path().join("data"),
        &[],
        &[("NOTIFY_SOCKET", path.as_os_str())],
    );
    assert!(receive(&socket).starts_with("READY=1\n"));
    server.signal("HUP");
    assert_eq!(server.wait_for_exit(Duration::from_secs(1)), None);
    let status = reqwest::blocking::get(server.url("/v2/")).unwrap().status();
    assert_eq!(status, 401);
}
