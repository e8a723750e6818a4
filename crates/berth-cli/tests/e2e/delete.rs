//! `berth delete` says which tags go with the manifest and asks first: on a
//! real terminal (a pty through util-linux `script`) answering y deletes and
//! n keeps; off a terminal it needs --yes; --dry-run only says.

use std::path::Path;

use crate::support::{Cli, Server, feed};

/// Pushes a one-file artifact with `content` to `reference`.
fn push(cli: &Cli, work: &Path, reference: &str, content: &[u8]) {
    let file = work.join("file.txt");
    std::fs::write(&file, content).unwrap();
    cli.ok(&["push", reference, &file.display().to_string(), "-q"], b"");
}

#[test]
fn delete_names_the_tags_that_go_and_asks_on_a_terminal() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let work = work.path();
    let server = Server::start(data.path());
    let host = server.addr.as_str();
    let cli = Cli::admin(home.path());
    let repo = format!("{host}/admin/del");
    push(&cli, work, &format!("{repo}:a"), b"one");
    push(&cli, work, &format!("{repo}:b"), b"one");
    push(&cli, work, &format!("{repo}:c"), b"two");
    let digest = cli
        .ok_text(&["digest", &format!("{repo}:a")], b"")
        .trim()
        .to_owned();
    let target = format!("{repo}@{digest}");
    let tags = || cli.ok_text(&["tags", &repo], b"");

    // --dry-run: what would go, nothing deleted.
    let out = cli.ok(&["delete", &format!("{repo}:a"), "--dry-run"], b"");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("would delete {target} (tags a, b)\n")
    );
    let said = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        said,
        format!(
            "{target}: the manifest will go with 2 tags: a, b (checked all 3 tags of the repository)\n"
        )
    );
    assert_eq!(tags(), "a\nb\nc\n");

    // Not a terminal and no --yes: refused, saying to pass --yes.
    let out = cli.run(&["delete", &target], b"y\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("berth: refusing to delete "), "{err}");
    assert!(last.contains("pass --yes"), "{err}");
    assert_eq!(tags(), "a\nb\nc\n");

    // On a terminal, n keeps it.
    let out = feed(&mut cli.pty(&["delete", &target]), b"n\n");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{screen}");
    assert!(screen.contains("2 tags: a, b"), "{screen}");
    assert!(screen.contains("Delete it? [y/N]"), "{screen}");
    assert!(screen.contains("nothing deleted"), "{screen}");
    assert_eq!(tags(), "a\nb\nc\n");

    // On a terminal, y deletes the manifest with both tags.
    let out = feed(&mut cli.pty(&["delete", &target]), b"y\n");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("Delete it? [y/N]"), "{screen}");
    assert!(
        screen.contains(&format!("deleted {target} (tags a, b)")),
        "{screen}"
    );
    assert_eq!(tags(), "c\n");

    // --yes: no question.
    let out = cli.ok(&["delete", &format!("{repo}:c"), "--yes"], b"");
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("deleted ")
    );
    assert_eq!(tags(), "");
}
