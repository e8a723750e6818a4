//! skopeo (Debian) against berth: copy an OCI layout in and back out, list
//! tags, inspect, delete.

use crate::support::{
    ADMIN_PASSWORD, Layout, Server, admin_creds, feed, run, skopeo, skopeo_pull, skopeo_push,
    write_layout,
};

/// A 20 MB single-layer image copied into berth and back has the same manifest
/// digest and the same blobs; list-tags, inspect and delete answer as the spec says.
#[test]
fn skopeo_copies_an_image_in_and_out_unchanged() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let layout: Layout = write_layout(&work.path().join("src"), "v1", 20 * 1024 * 1024, 7);
    let image = format!("{}/e2e/skopeo:v1", server.addr);
    let dest = format!("docker://{image}");

    skopeo_push(&layout.dir, "v1", &image);

    let back = work.path().join("back");
    skopeo_pull(&image, &back, "v1");
    layout.assert_pulled_into(&back);

    let tags: serde_json::Value = serde_json::from_str(&run(skopeo()
        .args(["list-tags", "--tls-verify=false", "--creds", &admin_creds()])
        .arg(format!("docker://{}/e2e/skopeo", server.addr))))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));

    let inspect: serde_json::Value = serde_json::from_str(&run(skopeo()
        .args(["inspect", "--tls-verify=false", "--creds", &admin_creds()])
        .arg(&dest)))
    .unwrap();
    assert_eq!(
        inspect["Digest"].as_str(),
        Some(layout.manifest.to_string().as_str())
    );
    assert_eq!(inspect["Architecture"], "amd64");

    run(skopeo()
        .args(["delete", "--tls-verify=false", "--creds", &admin_creds()])
        .arg(&dest));
    let gone = reqwest::blocking::Client::new()
        .get(server.url(&format!("/v2/e2e/skopeo/manifests/{}", layout.manifest)))
        .bearer_auth(server.admin_token("repository:e2e/skopeo:pull"))
        .send()
        .unwrap();
    assert_eq!(gone.status(), 404, "skopeo delete removes the manifest");

    // Without credentials the private repository is not readable.
    let denied = skopeo()
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/e2e/skopeo:v1", server.addr))
        .output()
        .unwrap();
    assert!(
        !denied.status.success(),
        "anonymous inspect of a private repository fails"
    );
}

/// `skopeo login` stores credentials that later commands use on their own;
/// a public repository is then pullable with no credentials at all.
#[test]
fn skopeo_login_then_copy_and_anonymous_pull_of_a_public_repository() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let auth_file = work.path().join("auth.json");
    let layout = write_layout(&work.path().join("src"), "v1", 1024 * 1024, 3);
    let image = format!("docker://{}/admin/login:v1", server.addr);
    let with_auth = || {
        let mut command = skopeo();
        command.env("REGISTRY_AUTH_FILE", &auth_file);
        command
    };

    let out = feed(
        with_auth()
            .args([
                "login",
                "--tls-verify=false",
                "-u",
                "admin",
                "--password-stdin",
            ])
            .arg(&server.addr),
        ADMIN_PASSWORD.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    run(with_auth()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", layout.dir.display()))
        .arg(&image));

    // Private by default: an anonymous inspect fails...
    let anonymous = || {
        let mut command = skopeo();
        command.env("REGISTRY_AUTH_FILE", work.path().join("none.json"));
        command
    };
    let denied = anonymous()
        .args(["inspect", "--tls-verify=false"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(!denied.status.success());
    // ...until the repository is made public.
    let made_public = reqwest::blocking::Client::new()
        .put(server.url("/api/v1/repositories/visibility"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&serde_json::json!({"repository": "admin/login", "visibility": "public"}))
        .send()
        .unwrap();
    assert_eq!(made_public.status(), 200);
    let inspect: serde_json::Value = serde_json::from_str(&run(anonymous()
        .args(["inspect", "--tls-verify=false"])
        .arg(&image)))
    .unwrap();
    assert_eq!(
        inspect["Digest"].as_str(),
        Some(layout.manifest.to_string().as_str())
    );
}
