//! ID token claims shaped like the two CI platforms' tokens: the same claim
//! names and the same value shapes (numeric identifiers as decimal strings,
//! booleans as `"true"`/`"false"` strings, as both platforms send them;
//! GitLab's `runner_id` is a JSON number).
//!
//! - GitHub Actions: "OpenID Connect reference", OIDC token claims
//!   (docs.github.com/en/actions/reference/security/oidc). `sub` is
//!   `repo:<owner>/<repo>:ref:<ref>`; a job with an environment has
//!   `repo:<owner>/<repo>:environment:<name>` and an `environment` claim.
//! - GitLab CI: "OpenID Connect (OIDC) Authentication Using ID Tokens", token
//!   payload (docs.gitlab.com/ci/secrets/id_token_authentication). `sub` is
//!   `project_path:<group>/<project>:ref_type:<branch|tag>:ref:<name>`; `ref`
//!   is the bare branch or tag name and `ref_path` the full one.
//!
//! Identifiers derived from names (`repository_id`, `project_id`, ...) and
//! commit SHAs derived from the repository and ref are stable, so a test may
//! pin them; run, pipeline and job ids and `jti` differ on every call, as
//! they do between two jobs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Lifetime of a GitHub Actions ID token (`exp - iat`).
pub const GITHUB_LIFETIME_SECS: u64 = 300;

/// Lifetime of a GitLab CI ID token as this issuer mints it (`exp - iat`).
pub const GITLAB_LIFETIME_SECS: u64 = 300;

/// Seconds since the Unix epoch, from the system clock.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Run, pipeline and job ids: distinct per call and per process.
static SERIAL: AtomicU64 = AtomicU64::new(0);

fn next_id() -> String {
    let base = now() % 1_000_000 * 1_000;
    (10_000_000_000 + base + SERIAL.fetch_add(1, Ordering::Relaxed)).to_string()
}

/// FNV-1a: a stable number for a name (no secret involved).
fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// A stable decimal id for `name`, in the range platforms' ids have.
fn stable_id(kind: &str, name: &str) -> String {
    (stable_hash(&[kind, name]) % 900_000_000 + 100_000_000).to_string()
}

/// A stable 40-hex commit SHA for `repository` at `git_ref`.
fn stable_sha(repository: &str, git_ref: &str) -> String {
    let a = stable_hash(&["sha-a", repository, git_ref]);
    let b = stable_hash(&["sha-b", repository, git_ref]);
    let c = stable_hash(&["sha-c", repository, git_ref]);
    format!("{a:016x}{b:016x}{:08x}", c >> 32)
}

/// Claims of a GitHub Actions ID token for a `push` run of the workflow
/// `.github/workflows/release.yml` of `repository` (`owner/repo`) at
/// `git_ref` (`refs/heads/main`, `refs/tags/v1.2.3`), for `audience`,
/// issued by `issuer`, valid from now for [`GITHUB_LIFETIME_SECS`].
pub fn github(issuer: &str, repository: &str, git_ref: &str, audience: &str) -> Value {
    let owner = repository.split('/').next().unwrap_or(repository);
    let ref_type = if git_ref.starts_with("refs/tags/") {
        "tag"
    } else {
        "branch"
    };
    let sha = stable_sha(repository, git_ref);
    let workflow_ref = format!("{repository}/.github/workflows/release.yml@{git_ref}");
    let now = now();
    json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "sub": format!("repo:{repository}:ref:{git_ref}"),
        "aud": audience,
        "ref": git_ref,
        "ref_type": ref_type,
        "ref_protected": "true",
        "sha": sha,
        "repository": repository,
        "repository_id": stable_id("repository", repository),
        "repository_owner": owner,
        "repository_owner_id": stable_id("owner", owner),
        "repository_visibility": "private",
        "run_id": next_id(),
        "run_number": "7",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "actor_id": "583231",
        "workflow": "release",
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": sha,
        "event_name": "push",
        "head_ref": "",
        "base_ref": "",
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + GITHUB_LIFETIME_SECS,
    })
}

/// Claims of a GitLab CI ID token for a `push` pipeline of `project_path`
/// (`group/project`, subgroups allowed) at `git_ref` (a branch name `main`,
/// or `refs/heads/main`, or `refs/tags/v1.2.3` for a tag), for `audience`,
/// issued by `issuer` (whose host also names the pipeline configuration in
/// `ci_config_ref_uri`), valid from now for [`GITLAB_LIFETIME_SECS`].
pub fn gitlab(issuer: &str, project_path: &str, git_ref: &str, audience: &str) -> Value {
    let (ref_type, name) = if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        ("tag", tag)
    } else {
        (
            "branch",
            git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref),
        )
    };
    let ref_path = format!(
        "refs/{}/{name}",
        if ref_type == "tag" { "tags" } else { "heads" }
    );
    let namespace_path = project_path
        .rsplit_once('/')
        .map_or(project_path, |(namespace, _)| namespace);
    let host = issuer
        .split_once("://")
        .map_or(issuer, |(_, rest)| rest)
        .trim_end_matches('/');
    let sha = stable_sha(project_path, &ref_path);
    let now = now();
    json!({
        "namespace_id": stable_id("namespace", namespace_path),
        "namespace_path": namespace_path,
        "project_id": stable_id("project", project_path),
        "project_path": project_path,
        "user_id": "4242",
        "user_login": "alice",
        "user_email": "alice@example.com",
        "user_access_level": "maintainer",
        "pipeline_id": next_id(),
        "pipeline_source": "push",
        "job_id": next_id(),
        "ref": name,
        "ref_type": ref_type,
        "ref_path": ref_path,
        "ref_protected": "true",
        "runner_id": 12_270_840,
        "runner_environment": "gitlab-hosted",
        "sha": sha,
        "project_visibility": "private",
        "ci_config_ref_uri": format!("{host}/{project_path}//.gitlab-ci.yml@{ref_path}"),
        "ci_config_sha": sha,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + GITLAB_LIFETIME_SECS,
        "sub": format!("project_path:{project_path}:ref_type:{ref_type}:ref:{name}"),
        "aud": audience,
    })
}
