//! A full disk, on a real (small) tmpfs: what a client is told, what keeps
//! working, and that the registry recovers on its own once space returns.

use std::time::Duration;

use berth_registry::{Config, Registry};

use crate::support::Tmpfs;

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
