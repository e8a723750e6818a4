//! `berth migrate`: the binary copies a registry `berth serve` ran on, says
//! what it copied (lines, or `--output json`), says it again with nothing
//! to copy, and a server on the target serves what was pushed to the source
//! with the source's logins; failures are one line naming what to give.

use crate::support::{Cli, Server, random_bytes};

/// The summary lines of `berth migrate`, without the time (which varies).
fn summary(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| !line.starts_with("  time:"))
        .collect()
}

#[test]
fn migrate_copies_a_registry_and_says_what_it_did() {
    let source = tempfile::tempdir().unwrap();
    let target = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (source, work) = (source.path(), work.path());
    let target = target.path().join("data");
    let cli = Cli::admin(home.path());

    // Two artifacts pushed by `berth push` to a registry `berth serve` ran.
    let small = work.join("small.txt");
    let large = work.join("large.bin");
    std::fs::write(&small, b"hello from the embedded registry\n").unwrap();
    std::fs::write(&large, random_bytes(3 << 20, 7)).unwrap();
    let mut server = Server::start(source);
    let host = server.addr.clone();
    for (tag, file) in [("1", &small), ("2", &large)] {
        let reference = format!("{host}/admin/files:{tag}");
        cli.ok(&["push", &reference, &file.display().to_string()], b"");
    }
    // A dry run while it serves: everything to copy, nothing written.
    let args = |more: &[&str]| -> Vec<String> {
        let mut args = vec![
            "migrate".to_owned(),
            "--from".to_owned(),
            source.display().to_string(),
            "--data-dir".to_owned(),
            target.display().to_string(),
        ];
        args.extend(more.iter().map(|s| (*s).to_owned()));
        args
    };
    let run = |more: &[&str]| {
        let args = args(more);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.ok(&args, b"")
    };
    let dry = String::from_utf8(run(&["--dry-run"]).stdout).unwrap();
    assert_eq!(
        summary(&dry),
        [
            format!(
                "dry run: would migrate {} to SQLite {}, blobs in {}",
                source.display(),
                target.join("berth.db").display(),
                target.join("blobs").display()
            )
            .as_str(),
            "  identities:   1 user (robots included), 0 organisations, 0 memberships, \
             0 access tokens, 0 refresh tokens, 0 revocations",
            "  content:      1 repository, 2 manifests, 2 tags",
            "  blobs:        3 (3.0 MiB): 3 to copy (3.0 MiB), 0 already there, 0 failed",
            // 16 of content and identities, and the garbage collector's review
            // of each of the 3 blob links (queued when each blob was linked).
            "  rows:         19 to copy, 0 already there, 0 to update, 0 to remove",
            "  signing keys: to copy",
        ]
    );
    assert!(!target.exists(), "a dry run creates nothing");
    server.terminate();

    // The copy, progress as lines on stderr (no terminal), a summary.
    let out = run(&["--progress-interval", "1"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        summary(&stdout),
        [
            format!(
                "migrated {} to SQLite {}, blobs in {}",
                source.display(),
                target.join("berth.db").display(),
                target.join("blobs").display()
            )
            .as_str(),
            "  identities:   1 user (robots included), 0 organisations, 0 memberships, \
             0 access tokens, 0 refresh tokens, 0 revocations",
            "  content:      1 repository, 2 manifests, 2 tags",
            "  blobs:        3 (3.0 MiB): 3 copied (3.0 MiB), 0 already there, 0 failed",
            "  rows:         19 copied, 0 already there, 0 updated, 0 removed",
            "  signing keys: copied",
        ]
    );
    assert!(stdout.contains("  time:  "), "{stdout}");
    for line in [
        "migrate: users: 1 copied, 0 already there, 0 updated, 0 removed",
        "migrate: 0 blobs already in the target",
        "migrate: 3 blobs (3.0 MiB)",
        "migrate: tags: 2 copied, 0 already there, 0 updated, 0 removed",
    ] {
        assert!(stderr.lines().any(|l| l == line), "{line:?} in:\n{stderr}");
    }
    assert_eq!(
        stderr.lines().filter(|l| l.ends_with(") copied")).count(),
        3,
        "a line per blob:\n{stderr}"
    );

    // Again, as JSON: nothing left to copy.
    let again: serde_json::Value =
        serde_json::from_slice(&run(&["--output", "json", "--quiet"]).stdout).unwrap();
    assert_eq!(again["complete"], true, "{again}");
    assert_eq!(again["dryRun"], false);
    assert_eq!(again["blobs"]["total"], 3);
    assert_eq!(again["blobs"]["copied"], 0);
    assert_eq!(again["blobs"]["present"], 3);
    assert_eq!(again["bytesCopied"], 0);
    assert_eq!(again["keys"], "present");
    assert_eq!(again["tables"]["tags"]["present"], 2);
    assert_eq!(again["tables"]["users"]["copied"], 0);
    assert_eq!(again["failures"], serde_json::json!([]));
    assert_eq!(again["source"], source.display().to_string());

    // The target serves it, to the source's admin password.
    let server = Server::start(&target);
    let pulled = work.join("pulled");
    let reference = format!("{}/admin/files:2", server.addr);
    cli.ok(&["pull", &reference, &pulled.display().to_string()], b"");
    assert!(std::fs::read(pulled.join("large.bin")).unwrap() == std::fs::read(&large).unwrap());
}

#[test]
fn migrate_failures_are_one_line_saying_what_to_give() {
    let home = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let cli = Cli::new(home.path());
    let from = empty.path().display().to_string();
    let stderr = cli.fails_with_empty_stdout(&["migrate", "--from", &from], b"");
    assert_eq!(
        stderr,
        format!(
            "berth: cannot migrate {from}: {from} is not a berth data directory (it has no \
             berth.db); give the directory the embedded registry's `berth serve --data-dir` uses\n"
        )
    );
    // A source, but no target: where the metadata goes is asked for first.
    let source = tempfile::tempdir().unwrap();
    drop(Server::start(source.path()));
    let from = source.path().display().to_string();
    let stderr = cli.fails_with_empty_stdout(&["migrate", "--from", &from], b"");
    assert_eq!(
        stderr,
        format!(
            "berth: cannot migrate {from}: the target needs a data directory (the metadata stays \
             in SQLite); give it with --data-dir, or move the metadata to PostgreSQL with \
             --database-url\n"
        )
    );
    // A password on the command line is refused before anything is read.
    let stderr = cli.fails_with_empty_stdout(
        &[
            "migrate",
            "--from",
            &from,
            "--database-url",
            "postgres://berth:secret@127.0.0.1/berth",
        ],
        b"",
    );
    assert!(stderr.contains("carries a password"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}
