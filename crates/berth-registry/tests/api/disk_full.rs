//! A full disk, on a real (small) tmpfs: what a client is told, what keeps
//! working, and that the registry recovers on its own once space returns.

use std::time::{Duration, Instant};

use berth_core::digest::Digest;
use berth_core::media_type;
use berth_registry::{Config, Registry};

use crate::support::{TestApp, Tmpfs, random_bytes};

/// Regression: after one failed write on a full disk, every user creation
/// failed ("attempted to call begin_with at non-zero transaction depth")
/// until a restart, because a pooled connection went back to the pool still
/// counting a transaction that SQLite had already rolled back.
#[tokio::test]
async fn the_identity_store_works_again_once_space_returns() {
    let Some(tmpfs) = Tmpfs::mount(64 << 20) else {
        return;
    };
    let data = tmpfs.data_dir();
    let registry = Registry::open_embedded(data.path(), Config::new("http://127.0.0.1:1"))
        .await
        .unwrap();
    registry
        .identity
        .create_user("before", None, false)
        .await
        .unwrap();

    let filler = tmpfs.fill();
    let mut failed = 0;
    for i in 0..20 {
        if registry
            .identity
            .create_user(&format!("full{i}"), None, false)
            .await
            .is_err()
        {
            failed += 1;
        }
    }
    assert!(
        failed > 0,
        "creating users on a full disk failed at least once"
    );

    std::fs::remove_file(filler).unwrap();
    // More creations than the pool has connections, so that every pooled
    // connection is used again.
    for i in 0..20 {
        let name = format!("after{i}");
        let created = tokio::time::timeout(
            Duration::from_secs(30),
            registry.identity.create_user(&name, None, false),
        )
        .await
        .expect("no hang");
        if let Err(e) = created {
            panic!("creating {name} once space returned: {e}");
        }
        let org = format!("org{i}");
        let owner = registry
            .identity
            .user_by_name(&name)
            .await
            .unwrap()
            .unwrap();
        registry.identity.create_org(&org, owner.id).await.unwrap();
    }
    drop(registry);
}

/// Regression: a full disk answered 500 `UNKNOWN`, then 503 "retry shortly"
/// to every write, DELETE included. Now a push is 507 Insufficient Storage
/// with an OCI error body naming the full disk; pulls keep working; deletes
/// keep working (the reserve is given back for them); and once space is freed
/// the registry takes pushes again on its own, its reserve written anew.
#[tokio::test]
async fn a_full_disk_answers_507_to_pushes_and_keeps_pulls_and_deletes_working() {
    let Some(tmpfs) = Tmpfs::mount(64 << 20) else {
        return;
    };
    let data = tmpfs.data_dir();
    let reserve = data.path().join("reserve");
    let app = TestApp::start_in(data).await;
    assert!(reserve.exists(), "the reserve is written at start");
    let kept = app.push_image("lib/kept", "v1").await;
    let doomed = app.push_image("lib/doomed", "v1").await;
    app.push_image("lib/doomed", "v2").await;
    let upload = app.start_upload("lib/doomed").await;

    let filler = tmpfs.fill();

    // A push: 507, said plainly, whether it fails writing or is refused.
    for _ in 0..3 {
        let bytes = random_bytes(256 * 1024);
        let resp = app
            .post(
                &format!(
                    "/v2/lib/new/blobs/uploads/?digest={}",
                    Digest::sha256_of(&bytes)
                ),
                &bytes,
            )
            .await;
        let message = resp.assert_error(507, "UNKNOWN");
        assert!(message.contains("disk is full"), "{message}");
    }
    let resp = app
        .put_manifest(
            "lib/kept",
            "v2",
            media_type::OCI_IMAGE_MANIFEST,
            &kept.bytes,
        )
        .await;
    resp.assert_error(507, "UNKNOWN");

    // Pulls work.
    let resp = app.get("/v2/lib/kept/manifests/v1").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, kept.bytes);
    let resp = app.get(&format!("/v2/lib/kept/blobs/{}", kept.layer)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(app.get("/v2/lib/kept/tags/list").await.status, 200);
    assert_eq!(app.get("/v2/_catalog").await.status, 200);

    // Deletes work: a tag, a manifest, a blob link, an upload session.
    assert_eq!(app.delete("/v2/lib/doomed/manifests/v2").await.status, 202);
    let resp = app
        .delete(&format!("/v2/lib/doomed/manifests/{}", doomed.digest))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    let resp = app
        .delete(&format!("/v2/lib/doomed/blobs/{}", doomed.layer))
        .await;
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(app.delete(&upload).await.status, 204);
    app.get("/v2/lib/doomed/manifests/v1")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    // The reserve is for the database's own writes: on PostgreSQL the
    // deletes did not need the data disk.
    if app.database_url().is_none() {
        assert!(
            !reserve.exists(),
            "the reserve was given back for the deletes"
        );
    }

    // Space returns: pushes work again within a few seconds, on their own.
    std::fs::remove_file(filler).unwrap();
    let bytes = random_bytes(256 * 1024);
    let path = format!(
        "/v2/lib/new/blobs/uploads/?digest={}",
        Digest::sha256_of(&bytes)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = app.post(&path, &bytes).await;
        if resp.status == 201 {
            break;
        }
        resp.assert_error(507, "UNKNOWN");
        assert!(
            Instant::now() < deadline,
            "pushes still refused 30 s after space returned"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(reserve.exists(), "the reserve is written again");
    assert_eq!(
        std::fs::metadata(&reserve).unwrap().len(),
        Config::new("http://x").disk_reserve_bytes
    );
    app.push_image("lib/new", "v1").await;
}
