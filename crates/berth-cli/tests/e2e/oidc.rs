//! Workload identity end to end: `berth serve` trusting two local OIDC
//! issuers (berth-test-issuer, one shaped like GitHub Actions, one like
//! GitLab CI), an organisation owner's `berth trust` rules, and CI jobs
//! logging in with their ID token: `berth login --oidc` from GitHub Actions'
//! ID token request, from BERTH_ID_TOKEN (GitLab's `id_tokens:`) and from a
//! file; and skopeo with `-u oidc -p $ID_TOKEN`.

use std::path::{Path, PathBuf};

use base64::Engine;
use berth_test_issuer::Issuer;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{Cli, Server, run, skopeo, write_layout};

/// A registry trusting two issuers, with the organisation `acme` (owned by
/// alice, logged in) and no rule yet.
struct Setup {
    // Dropped before the runtime that serves them.
    github: Issuer,
    gitlab: Issuer,
    server: Server,
    homes: TempDir,
    _data: TempDir,
    _runtime: tokio::runtime::Runtime,
}

impl Setup {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let github = runtime.block_on(Issuer::start());
        let gitlab = runtime.block_on(Issuer::start());
        let data = tempfile::tempdir().unwrap();
        let server = Server::start_with(
            data.path(),
            &[
                "--oidc-issuer",
                &format!("github={}", github.url()),
                "--oidc-issuer",
                &format!("gitlab={}", gitlab.url()),
                "--oidc-allow-loopback-issuers",
                "--oidc-jwks-refresh-secs",
                "1",
            ],
        );
        let homes = tempfile::tempdir().unwrap();
        let setup = Self {
            github,
            gitlab,
            server,
            homes,
            _data: data,
            _runtime: runtime,
        };
        let admin = Cli::admin(&setup.home("admin")).env("BERTH_REGISTRY", setup.server.url(""));
        for (name, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
            admin.ok(
                &["admin", "user", "create", name, "--password-stdin"],
                format!("{password}\n").as_bytes(),
            );
        }
        admin.ok(&["admin", "org", "create", "acme", "--owner", "alice"], b"");
        setup.alice().ok(
            &[
                "login",
                &setup.server.addr,
                "-u",
                "alice",
                "--password-stdin",
            ],
            b"alice-password\n",
        );
        setup
    }

    fn home(&self, name: &str) -> PathBuf {
        self.homes.path().join(name)
    }

    /// alice, the owner of acme, with the login she stored.
    fn alice(&self) -> Cli {
        Cli::new(&self.home("alice")).env("BERTH_REGISTRY", self.server.url(""))
    }

    /// A CI job in its own home, with none of the workload variables of the
    /// machine running the tests (an empty value counts as unset).
    fn job(&self, name: &str) -> Cli {
        let mut cli = Cli::new(&self.home(name));
        for var in [
            "BERTH_ID_TOKEN",
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "GITHUB_ACTIONS",
        ] {
            cli = cli.env(var, "");
        }
        cli
    }

    /// A GitHub Actions job: the ID token request variables point at the
    /// fake Actions endpoint.
    fn actions_job(&self, name: &str) -> Cli {
        self.job(name)
            .env(
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                self.github.actions_request_url(),
            )
            .env(
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                self.github.actions_request_token(),
            )
    }

    /// alice's rule `release`: GitHub jobs of acme/app on main may pull and
    /// push acme/app.
    fn add_release_rule(&self) -> (String, String) {
        let out = self.alice().ok(
            &[
                "trust",
                "add",
                "acme",
                "--name",
                "release",
                "--issuer",
                self.github.url(),
                "--claim",
                "repository=acme/app",
                "ref=refs/heads/main",
                "--repo",
                "acme/app",
            ],
            b"",
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// A GitHub-shaped ID token of `repository` at `git_ref` for `audience`.
    fn github_token(&self, repository: &str, git_ref: &str, audience: &str) -> String {
        self.github
            .mint(self.github.github_claims(repository, git_ref, audience))
    }

    /// `host:port/<path>`.
    fn image(&self, path: &str) -> String {
        format!("{}/{path}", self.server.addr)
    }
}

/// The password docker's config in `home` holds for `registry`, with its
/// user name.
fn stored_login(home: &Path, registry: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(home.join("docker/config.json")).ok()?;
    let config: Value = serde_json::from_str(&text).unwrap();
    let auth = config["auths"][registry]["auth"].as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .unwrap();
    let (user, password) = String::from_utf8(decoded)
        .unwrap()
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))?;
    Some((user, password))
}

/// A small file to push as an artifact.
fn note(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("note.txt");
    std::fs::write(&file, b"built by CI").unwrap();
    file.to_str().unwrap().to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_github_actions_job_logs_in_with_its_id_token_and_pushes_where_the_rule_allows() {
    let s = Setup::start();
    let (rule, how) = s.add_release_rule();
    assert!(rule.starts_with("trust rule acme/release\n"), "{rule}");
    assert!(rule.contains("repository=acme/app"), "{rule}");
    assert!(
        rule.contains(&format!("  audience:     {}\n", s.server.addr)),
        "the audience defaults to the registry's service: {rule}"
    );
    assert!(
        how.contains(&format!("berth login --oidc {}", s.server.addr))
            && how.contains("docker login -u oidc -p \"$ID_TOKEN\""),
        "{how}"
    );

    // The job asks GitHub Actions for an ID token for the registry given,
    // trades it, and stores it as the password of `oidc`. The login's check
    // names no repository: the registry token names no rule and grants
    // nothing; the pushes below are granted through acme/release.
    let job = s.actions_job("job");
    let out = job.ok(&["login", "--oidc", &s.server.addr], b"");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.starts_with(&format!(
            "logged in to {} as trust:repo:acme/app:ref:refs/heads/main@run:",
            s.server.addr
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("registry token valid until 20") && stdout.contains("docker config"),
        "{stdout}"
    );
    let (user, id_token) = stored_login(&s.home("job"), &s.server.addr).expect("stored");
    assert_eq!(user, "oidc");
    assert_eq!(id_token.split('.').count(), 3, "a JWT");
    assert!(
        !stdout.contains(&id_token) && !stderr.contains(&id_token),
        "the ID token is never printed"
    );

    // -v traces every request, never the ID token nor the request token.
    let out = job.ok(&["login", "--oidc", &s.server.addr, "-v"], b"");
    let (_, id_token) = stored_login(&s.home("job"), &s.server.addr).unwrap();
    let trace = text(&out.stderr);
    assert!(
        trace.contains("/actions/token (Authorization: Bearer <redacted>)")
            && trace.contains("RFC 8693 token exchange"),
        "{trace}"
    );
    for secret in [id_token.as_str(), s.github.actions_request_token()] {
        assert!(!trace.contains(secret) && !text(&out.stdout).contains(secret));
    }

    // What the rule allows: acme/app, by berth push and berth copy.
    let file = note(&s.home("files"));
    job.ok(&["push", &s.image("acme/app:v1"), &file], b"");
    let layout = write_layout(&s.home("layout"), "v1", 4096, 11);
    job.ok(
        &[
            "copy",
            &format!("oci:{}:v1", layout.dir.display()),
            &s.image("acme/app:v2"),
        ],
        b"",
    );
    let tags = job.ok_text(&["tags", &s.image("acme/app")], b"");
    assert_eq!(tags, "v1\nv2\n");
    // Not another repository of the organisation.
    let refused = job.fails(&["push", &s.image("acme/other:v1"), &file], b"");
    assert!(refused.contains("acme/other"), "{refused}");

    // A job of another repository, or of another branch, is refused by the
    // registry, and nothing is stored.
    for (name, repository, git_ref) in [
        ("tools-job", "acme/tools", "refs/heads/main"),
        ("dev-job", "acme/app", "refs/heads/dev"),
    ] {
        s.github.set_actions_repository(repository, git_ref);
        let job = s.actions_job(name);
        let refused = job.fails_with_empty_stdout(&["login", "--oidc", &s.server.addr], b"");
        assert!(
            refused.contains("no trust rule")
                && refused.contains("nothing stored")
                && refused.contains(&format!("repo:{repository}:ref:{git_ref}")),
            "{refused}"
        );
        assert_eq!(stored_login(&s.home(name), &s.server.addr), None);
    }

    // The Actions endpoint refuses a request token that is not the job's.
    let stranger = s
        .job("stranger")
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            s.github.actions_request_url(),
        )
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-this-jobs-token");
    let refused = stranger.fails(&["login", "--oidc", &s.server.addr], b"");
    assert!(
        refused.contains("cannot get this job's ID token") && refused.contains("HTTP 401"),
        "{refused}"
    );
    assert!(!refused.contains("not-this-jobs-token"), "{refused}");
}

#[test]
fn skopeo_logs_in_as_oidc_with_the_id_token_and_uses_berths_login_too() {
    let s = Setup::start();
    s.add_release_rule();
    let layout = write_layout(&s.home("layout"), "v1", 64 * 1024, 5);
    let source = format!("oci:{}:v1", layout.dir.display());

    // `skopeo login -u oidc -p $ID_TOKEN`, then a copy, as a job would.
    let id_token = s.github_token("acme/app", "refs/heads/main", &s.server.addr);
    let job = s.job("skopeo-job");
    let skopeo_in = |cli: &Cli, args: &[&str]| {
        let mut command = skopeo();
        command.args(args);
        cli.confine(&mut command);
        command.output().unwrap()
    };
    let login = skopeo_in(
        &job,
        &[
            "login",
            "--tls-verify=false",
            "-u",
            "oidc",
            "-p",
            &id_token,
            &s.server.addr,
        ],
    );
    assert!(login.status.success(), "{}", text(&login.stderr));
    let copy = skopeo_in(
        &job,
        &[
            "copy",
            "--dest-tls-verify=false",
            &source,
            &format!("docker://{}", s.image("acme/app:skopeo")),
        ],
    );
    assert!(copy.status.success(), "{}", text(&copy.stderr));
    let denied = skopeo_in(
        &job,
        &[
            "copy",
            "--dest-tls-verify=false",
            &source,
            &format!("docker://{}", s.image("acme/other:skopeo")),
        ],
    );
    assert!(!denied.status.success(), "the rule covers acme/app only");

    // skopeo without a login of its own uses what `berth login --oidc`
    // stored (docker's config.json, which skopeo reads when no
    // REGISTRY_AUTH_FILE is named).
    let job = s.job("berth-job").env("BERTH_ID_TOKEN", &id_token);
    job.ok(&["login", "--oidc", &s.server.addr], b"");
    let mut inspect = skopeo();
    job.confine(&mut inspect).env_remove("REGISTRY_AUTH_FILE");
    inspect.args(["inspect", "--tls-verify=false"]);
    inspect.arg(format!("docker://{}", s.image("acme/app:skopeo")));
    let inspected: Value = serde_json::from_str(&run(&mut inspect)).unwrap();
    assert_eq!(
        inspected["Digest"].as_str(),
        Some(layout.manifest.to_string().as_str())
    );
}

#[test]
fn trust_rules_are_listed_and_removed_and_a_removed_rule_admits_no_one() {
    let s = Setup::start();
    s.add_release_rule();
    let alice = s.alice();

    let listed = alice.ok_json(&["trust", "list", "acme", "--output", "json"], b"");
    let rule = &listed["rules"][0];
    assert_eq!(
        listed["rules"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(rule["namespace"], "acme");
    assert_eq!(rule["name"], "release");
    assert_eq!(rule["issuer"], s.github.url());
    assert_eq!(rule["audience"], s.server.addr.as_str());
    assert_eq!(
        rule["claims"],
        json!({"repository": "acme/app", "ref": "refs/heads/main"})
    );
    assert_eq!(rule["actions"], json!(["pull", "push"]));
    assert_eq!(rule["repositories"], json!(["acme/app"]));
    assert_eq!(rule["created_by"], "alice");
    let table = alice.ok_text(&["trust", "list", "acme"], b"");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "ISSUER", "CLAIMS", "ACTIONS", "REPOSITORIES"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], "release");
    assert_eq!(row[1], s.github.url());
    assert!(row[2].contains("repository=acme/app") && row[2].contains("ref=refs/heads/main"));
    assert_eq!(&row[3..], ["pull,push", "acme/app"]);

    // A job logs in and pushes...
    let id_token = s.github_token("acme/app", "refs/heads/main", &s.server.addr);
    let job = s.job("job").env("BERTH_ID_TOKEN", &id_token);
    job.ok(&["login", "--oidc", &s.server.addr], b"");
    let file = note(&s.home("files"));
    job.ok(&["push", &s.image("acme/app:v1"), &file], b"");

    // ...until the rule is removed: at once, and for good.
    assert_eq!(
        alice.ok_text(&["trust", "remove", "acme", "release"], b""),
        "removed trust rule release of acme\n"
    );
    assert_eq!(
        alice.ok_json(&["trust", "list", "acme", "--output", "json"], b""),
        json!({"namespace": "acme", "rules": []})
    );
    let refused = job.fails(&["push", &s.image("acme/app:v2"), &file], b"");
    assert!(
        refused.contains("berth login --oidc") && refused.contains("oidc"),
        "the stored ID token is refused: {refused}"
    );
    let refused = job.fails_with_empty_stdout(&["login", "--oidc", &s.server.addr], b"");
    assert!(
        refused.contains("no trust rule") && refused.contains("nothing stored"),
        "{refused}"
    );
    let gone = alice.fails(&["trust", "remove", "acme", "release"], b"");
    assert!(
        gone.contains("cannot remove trust rule `release` of `acme`"),
        "{gone}"
    );

    // Refused before anything is sent: a claim without `=` (usage: exit 2).
    let out = alice.run(
        &[
            "trust",
            "add",
            "acme",
            "--github",
            "--claim",
            "repository",
            "--repo",
            "acme/app",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("KEY=VALUE"));
    // One issuer, exactly.
    let out = alice.run(
        &[
            "trust",
            "add",
            "acme",
            "--claim",
            "repository=a/b",
            "--repo",
            "acme/app",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = alice.run(
        &[
            "trust",
            "add",
            "acme",
            "--github",
            "--gitlab",
            "--claim",
            "repository=a/b",
            "--repo",
            "acme/app",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // The registry's own refusals, worded by the command.
    let outside = alice.fails(
        &[
            "trust",
            "add",
            "acme",
            "--issuer",
            s.github.url(),
            "--claim",
            "repository=acme/app",
            "--repo",
            "alice/app",
        ],
        b"",
    );
    assert!(
        outside.contains("cannot add a trust rule to `acme`") && outside.contains("400"),
        "{outside}"
    );
    let bob =
        Cli::user(&s.home("bob"), "bob", "bob-password").env("BERTH_REGISTRY", s.server.url(""));
    let not_owner = bob.fails(
        &[
            "trust",
            "add",
            "acme",
            "--name",
            "mine",
            "--issuer",
            s.github.url(),
            "--claim",
            "repository=acme/app",
            "--repo",
            "acme/app",
        ],
        b"",
    );
    assert!(
        not_owner.contains("cannot add trust rule `mine` to `acme`") && not_owner.contains("403"),
        "{not_owner}"
    );
}

#[test]
fn a_gitlab_job_logs_in_from_berth_id_token_and_any_job_from_a_file() {
    let s = Setup::start();
    s.alice().ok(
        &[
            "trust",
            "add",
            "acme",
            "--name",
            "gitlab",
            "--issuer",
            s.gitlab.url(),
            "--claim",
            "project_path=acme/app",
            "ref_type=branch",
            "--actions",
            "pull,push",
            "--repo",
            "acme/app",
            "acme/app/*",
        ],
        b"",
    );

    // GitLab's `id_tokens: BERTH_ID_TOKEN: aud: <registry>`.
    let id_token = s
        .gitlab
        .mint(s.gitlab.gitlab_claims("acme/app", "main", &s.server.addr));
    let job = s.job("gitlab-job").env("BERTH_ID_TOKEN", &id_token);
    let stdout = job.ok_text(&["login", "--oidc", &s.server.addr], b"");
    assert!(
        stdout.contains(" as trust:project_path:acme/app:ref_type:branch:ref:main@job:"),
        "{stdout}"
    );
    assert!(!stdout.contains(&id_token));
    let file = note(&s.home("files"));
    job.ok(&["push", &s.image("acme/app/web:v1"), &file], b"");
    job.fails(&["push", &s.image("acme/tools:v1"), &file], b"");

    // A file, as any CI can write one; white space around it is dropped.
    let path = s.home("id-token");
    std::fs::write(&path, format!("{id_token}\n")).unwrap();
    let path = path.to_str().unwrap();
    let job = s.job("file-job");
    job.ok(
        &["login", "--oidc", "--id-token-file", path, &s.server.addr],
        b"",
    );
    assert_eq!(
        stored_login(&s.home("file-job"), &s.server.addr),
        Some(("oidc".to_owned(), id_token.clone()))
    );
    // The file comes before BERTH_ID_TOKEN.
    let job = s.job("both-job").env("BERTH_ID_TOKEN", "not.a-token");
    job.ok(
        &["login", "--oidc", "--id-token-file", path, &s.server.addr],
        b"",
    );

    // An ID token for another audience is refused by the registry, which
    // says why, with what the token says of itself.
    let elsewhere = s.gitlab.mint(s.gitlab.gitlab_claims(
        "acme/app",
        "main",
        "registry.elsewhere.example",
    ));
    let job = s.job("other-aud").env("BERTH_ID_TOKEN", &elsewhere);
    let refused = job.fails_with_empty_stdout(&["login", "--oidc", &s.server.addr], b"");
    assert!(
        refused.contains("no trust rule")
            && refused.contains("registry.elsewhere.example")
            && !refused.contains(&elsewhere),
        "{refused}"
    );

    // What berth refuses itself.
    let job = s.job("bad").env("BERTH_ID_TOKEN", "hunter2");
    let refused = job.fails(&["login", "--oidc", &s.server.addr], b"");
    assert!(
        refused.contains("BERTH_ID_TOKEN does not hold an ID token")
            && refused.contains("not a JWT")
            && !refused.contains("hunter2"),
        "{refused}"
    );
    let none = s
        .job("none")
        .fails(&["login", "--oidc", &s.server.addr], b"");
    assert!(
        none.contains("no ID token to log in with") && none.contains("BERTH_ID_TOKEN"),
        "{none}"
    );
    let out = s
        .job("usage")
        .run(&["login", "--oidc", "-u", "alice", &s.server.addr], b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = s.job("usage").run(
        &["login", "--oidc", "--password-stdin", &s.server.addr],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = s
        .job("usage")
        .run(&["login", "--id-token-file", path, &s.server.addr], b"");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// `berth login --oidc` asks GitHub Actions for an ID token for the registry
/// it was given, not for whatever service the registry's challenge names (a
/// registry naming another's service would be handed a token that works
/// there): a registry whose service differs needs `--audience`.
#[test]
fn the_audience_is_the_registry_given_unless_said_otherwise() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let github = runtime.block_on(Issuer::start());
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            "--service",
            "registry.test",
            "--oidc-issuer",
            &format!("github={}", github.url()),
            "--oidc-allow-loopback-issuers",
        ],
    );
    let homes = tempfile::tempdir().unwrap();
    let admin = Cli::admin(&homes.path().join("admin")).env("BERTH_REGISTRY", server.url(""));
    admin.ok(
        &[
            "trust",
            "add",
            "admin",
            "--name",
            "ci",
            "--issuer",
            github.url(),
            "--claim",
            "repository=admin/app",
            "--repo",
            "admin/app",
        ],
        b"",
    );
    github.set_actions_repository("admin/app", "refs/heads/main");
    let job = Cli::new(&homes.path().join("job"))
        .env("BERTH_ID_TOKEN", "")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", github.actions_request_url())
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            github.actions_request_token(),
        );

    let refused = job.fails_with_empty_stdout(&["login", "--oidc", &server.addr], b"");
    assert!(
        refused.contains("names its service `registry.test`")
            && refused.contains("--audience registry.test"),
        "{refused}"
    );
    let stdout = job.ok_text(
        &[
            "login",
            "--oidc",
            &server.addr,
            "--audience",
            "registry.test",
        ],
        b"",
    );
    assert!(
        stdout.starts_with(&format!(
            "logged in to {} as trust:repo:admin/app:",
            server.addr
        )),
        "{stdout}"
    );
    drop(server);
    drop(github);
}
