//! podman (Debian, as root with the vfs storage driver) against berth.

use crate::support::{Server, admin_creds, podman, run, skopeo_push, write_layout};

/// podman pulls an image that skopeo pushed, re-tags it into another
/// repository and pushes it back; berth then lists both repositories.
#[test]
fn podman_pulls_and_pushes() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let layout = write_layout(&work.path().join("src"), "v1", 2 * 1024 * 1024, 11);
    let image = format!("{}/e2e/podman:v1", server.addr);
    skopeo_push(&layout.dir, "v1", &image);

    let podman = || podman(work.path());
    run(podman().args([
        "pull",
        "--tls-verify=false",
        "--creds",
        &admin_creds(),
        &image,
    ]));
    let copy = format!("{}/e2e/podman-copy:v2", server.addr);
    run(podman().args(["tag", &image, &copy]));
    run(podman().args([
        "push",
        "--tls-verify=false",
        "--creds",
        &admin_creds(),
        &copy,
    ]));

    let catalog = server.get_json("/v2/_catalog", "registry:catalog:*");
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["e2e/podman", "e2e/podman-copy"])
    );
    let tags = server.get_json(
        "/v2/e2e/podman-copy/tags/list",
        "repository:e2e/podman-copy:pull",
    );
    assert_eq!(tags["tags"], serde_json::json!(["v2"]));
}
