//! The ORAS Python SDK (PyPI `oras`) against berth: push and pull an
//! artifact, then push a second one whose `subject` is the first and find it
//! through the referrers API.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Server, run};

/// The virtualenv interpreter that `.ci/install-deps` creates, or `BERTH_TEST_PYTHON`.
pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("BERTH_TEST_PYTHON") {
        return python.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.is_file(),
        "{} is missing; run `bash .ci/install-deps` (it creates the virtualenv with oras)",
        venv.display()
    );
    venv
}

#[test]
fn oras_pushes_pulls_and_finds_referrers() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/oras_roundtrip.py");
    let out = run(Command::new(python())
        .arg(script)
        .arg(&server.addr)
        .env(
            "BERTH_TOKEN",
            server.admin_token("repository:e2e/oras:pull,push"),
        )
        .current_dir(work.path()));
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("")).unwrap();
    assert_eq!(report["pulled_equal"], true, "{report}");
    let subject = report["subject"].as_str().unwrap();
    let referrer = report["referrer"].as_str().unwrap();

    // The referrers API, checked here rather than in Python: exact status,
    // content type, and the referrer with its artifact type.
    let response = reqwest::blocking::Client::new()
        .get(server.url(&format!("/v2/e2e/oras/referrers/{subject}")))
        .bearer_auth(server.admin_token("repository:e2e/oras:pull"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.headers());
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index: serde_json::Value = response.json().unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(manifests[0]["digest"], referrer);
}
