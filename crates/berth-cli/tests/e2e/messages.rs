//! Every command ends a failure with one line on stderr, `berth: ...`,
//! also with `RUST_BACKTRACE` set; a network error names its URL once; `-v`
//! adds the backtrace.

use std::net::TcpListener;

use crate::support::Cli;

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs `berth <args>` with RUST_BACKTRACE=1: it must exit 1 with exactly
/// one line on stderr, starting `berth: `; that line.
fn one_line(cli: &Cli, args: &[&str]) -> String {
    let out = cli
        .command(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "berth {args:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "berth {args:?}: one line:\n{stderr}"
    );
    assert!(stderr.starts_with("berth: "), "berth {args:?}: {stderr}");
    assert!(!stderr.contains("Caused by"), "{stderr}");
    stderr
}

#[test]
fn failures_are_one_line_with_the_url_once() {
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::new(home.path());
    let port = closed_port();

    // A network error: what failed, the cause, the URL once, what to do.
    let line = one_line(&cli, &["tags", &format!("127.0.0.1:{port}/e2e/x")]);
    assert!(
        line.starts_with(&format!(
            "berth: cannot list the tags of 127.0.0.1:{port}/e2e/x: "
        )),
        "{line}"
    );
    assert_eq!(
        line.matches(&format!("http://127.0.0.1:{port}")).count(),
        1,
        "the URL once: {line}"
    );
    assert!(line.contains("Connection refused"), "{line}");
    assert!(
        line.trim_end()
            .ends_with("check the network, proxy settings and the registry's address"),
        "{line}"
    );

    // Others: a bad reference, admin without credentials, push of a missing
    // file, a pull from nowhere, inspect and delete against nothing.
    one_line(&cli, &["digest", "Not A Reference"]);
    let line = one_line(
        &cli,
        &[
            "admin",
            "--registry",
            &format!("http://127.0.0.1:{port}"),
            "keys",
            "rotate",
        ],
    );
    assert!(line.contains("BERTH_USERNAME"), "{line}");
    let line = one_line(
        &cli,
        &[
            "push",
            &format!("127.0.0.1:{port}/e2e/x:1"),
            "/nonexistent/file.txt",
        ],
    );
    assert!(line.contains("/nonexistent/file.txt"), "{line}");
    one_line(&cli, &["pull", &format!("127.0.0.1:{port}/e2e/x:1"), "out"]);
    one_line(&cli, &["inspect", &format!("127.0.0.1:{port}/e2e/x:1")]);
    one_line(
        &cli,
        &["delete", &format!("127.0.0.1:{port}/e2e/x:1"), "--yes"],
    );

    // -v: the same line, then the backtrace (RUST_BACKTRACE=1 captures it).
    let out = cli
        .command(&["inspect", &format!("127.0.0.1:{port}/e2e/x:1"), "-v"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("\nberth: cannot inspect "), "{stderr}");
    assert!(stderr.contains("berth::main"), "a backtrace: {stderr}");
}

#[test]
fn serve_on_a_port_in_use_is_one_line() {
    let home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cli = Cli::new(home.path());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = one_line(
        &cli,
        &[
            "serve",
            "--listen",
            &addr,
            "--data-dir",
            &data.path().display().to_string(),
        ],
    );
    assert!(line.contains(&addr), "{line}");
    assert!(line.contains("in use"), "{line}");
    assert!(
        line.contains("--listen"),
        "the message says how to pick another address: {line}"
    );
}

/// A PostgreSQL pool of no connection is refused before anything starts,
/// saying what the least is.
#[test]
fn a_database_pool_of_zero_connections_is_refused_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let cli = Cli::new(home.path());
    let data = tempfile::tempdir().unwrap();
    let line = one_line(
        &cli,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data.path().display().to_string(),
            "--database-max-connections",
            "0",
        ],
    );
    assert_eq!(
        line.trim_end(),
        "berth: database_max_connections must be at least 1 (a node needs a connection to PostgreSQL)"
    );
}

/// The first start prints commands that work for the administrator it just
/// created: log in, then push into the administrator's own namespace.
#[test]
fn the_first_start_shows_commands_that_work_for_the_new_admin() {
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env_remove("BERTH_ADMIN_PASSWORD")
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        let done = line.contains("berth pull");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    let host = text
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        text.contains("created user `admin` with password "),
        "{text}"
    );
    assert!(
        text.contains(&format!("berth login {host} -u admin")),
        "{text}"
    );
    assert!(
        text.contains(&format!("berth push {host}/admin/hello:1.0 ")),
        "{text}"
    );
    assert!(
        !text.contains("/me/"),
        "no namespace the admin does not own: {text}"
    );
}
