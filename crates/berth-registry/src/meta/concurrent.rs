//! Several nodes writing the same rows at once (PostgreSQL only: run with
//! `BERTH_TEST_DATABASE_URL`, e.g. `.ci/postgres cargo test -p
//! berth-registry`; on SQLite each test says it was skipped). Each "node" is
//! a [`SqlMeta`] with a connection pool of its own on one scratch database;
//! every test races them on the same repository, tag, upload or cap and then
//! checks the final state from a fresh pool.

use std::sync::Arc;

use berth_core::digest::Digest;
use berth_core::endpoint::UploadId;
use berth_core::name::RepositoryName;
use berth_core::reference::TagOrDigest;
use berth_core::tag::Tag;

use super::scratch::ScratchDatabase;
use super::{
    DescriptorRef, Manifest, MetaError, MetaStore, NewManifest, SqlMeta, UploadLimits,
    UploadSession,
};

/// Nodes per test.
const NODES: usize = 4;
/// Writers per node.
const WRITERS: usize = 8;

/// A scratch database and `NODES` stores on it, each its own pool; `None`
/// (the test is skipped) on SQLite.
async fn nodes(test: &str) -> Option<(ScratchDatabase, Vec<Arc<SqlMeta>>)> {
    let Some(database) = ScratchDatabase::from_env().await.unwrap() else {
        eprintln!("{test}: skipped, PostgreSQL only (set BERTH_TEST_DATABASE_URL)");
        return None;
    };
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let meta = SqlMeta::open_postgres(database.url().expose())
            .await
            .unwrap();
        nodes.push(Arc::new(meta));
    }
    Some((database, nodes))
}

fn name(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

/// An image manifest naming `layer` (its bytes differ by `n`).
fn manifest(n: usize, layer: &Digest) -> NewManifest {
    let content = format!(r#"{{"schemaVersion":2,"n":{n},"layer":"{layer}"}}"#);
    NewManifest {
        manifest: Manifest {
            digest: Digest::sha256_of(content.as_bytes()),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            content: content.into_bytes().into(),
        },
        subject: None,
        artifact_type: None,
        annotations: None,
        blobs: vec![DescriptorRef {
            digest: layer.clone(),
            size: 1,
            field: "layers[0]".to_owned(),
        }],
        children: Vec::new(),
    }
}

/// Runs `work(node, index)` for every writer of every node at once.
async fn race<F, Fut, T>(nodes: &[Arc<SqlMeta>], work: F) -> Vec<T>
where
    F: Fn(Arc<SqlMeta>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut tasks = Vec::new();
    for i in 0..NODES * WRITERS {
        tasks.push(tokio::spawn(work(Arc::clone(&nodes[i % NODES]), i)));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// Every writer moves one tag to its own manifest: each write succeeds, the
/// tag ends on one of them, and every manifest is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tag_moves_end_on_one_of_the_pushed_manifests() {
    let Some((database, nodes)) = nodes("concurrent_tag_moves").await else {
        return;
    };
    let repo = name("acme/app");
    let layer = Digest::sha256_of(b"l");
    nodes[0].link_blob(&repo, &layer, 1).await.unwrap();
    let tag = Tag::parse("latest").unwrap();
    let pushed = race(&nodes, |node, i| {
        let (repo, tag, layer) = (repo.clone(), tag.clone(), layer.clone());
        async move {
            let new = manifest(i, &layer);
            node.put_manifest(&repo, &new, Some(&tag), &crate::events::Actor::system())
                .await
                .unwrap();
            new.manifest.digest
        }
    })
    .await;
    let check = SqlMeta::open_postgres(database.url().expose())
        .await
        .unwrap();
    let current = check
        .get_manifest(&repo, &TagOrDigest::Tag(tag.clone()))
        .await
        .unwrap()
        .unwrap();
    assert!(pushed.contains(&current.digest));
    assert_eq!(
        check.list_tags(&repo, None, 100).await.unwrap(),
        Some(vec!["latest".to_owned()])
    );
    for digest in &pushed {
        let got = check
            .get_manifest(&repo, &TagOrDigest::Digest(digest.clone()))
            .await
            .unwrap();
        assert_eq!(got.map(|m| m.digest).as_ref(), Some(digest));
    }
}

/// Every writer finishes an upload of the same blob into the same new
/// repository: one repository, one blob row, one link, no session left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upload_completions_link_the_blob_once() {
    let Some((database, nodes)) = nodes("concurrent_upload_completions").await else {
        return;
    };
    let repo = name("acme/blobs");
    let blob = Digest::sha256_of(b"same bytes");
    for (i, node) in nodes.iter().cycle().take(NODES * WRITERS).enumerate() {
        node.create_upload(&session(&repo, i), UploadLimits::default())
            .await
            .unwrap();
    }
    race(&nodes, |node, i| {
        let (repo, blob) = (repo.clone(), blob.clone());
        async move {
            node.finish_upload(
                &upload_id(i),
                &repo,
                &blob,
                10,
                Box::pin(async { Ok(true) }),
            )
            .await
            .unwrap();
        }
    })
    .await;
    let check = SqlMeta::open_postgres(database.url().expose())
        .await
        .unwrap();
    assert_eq!(check.linked_blob(&repo, &blob).await.unwrap(), Some(10));
    let db = check.db();
    let count = |sql: &'static str| async move {
        super::db::query_scalar::<i64>(sql)
            .fetch_one(db)
            .await
            .unwrap()
    };
    assert_eq!(count("SELECT count(*) FROM repositories").await, 1);
    assert_eq!(count("SELECT count(*) FROM blobs").await, 1);
    assert_eq!(count("SELECT count(*) FROM repository_blobs").await, 1);
    assert_eq!(count("SELECT count(*) FROM uploads").await, 0);
}

fn upload_id(i: usize) -> UploadId {
    UploadId::parse(&format!("upload-{i}")).unwrap()
}

fn session(repo: &RepositoryName, i: usize) -> UploadSession {
    UploadSession {
        id: upload_id(i),
        repository: repo.clone(),
        subject: Some("alice".to_owned()),
        offset: 0,
        hash_state: Vec::new(),
        staging: format!("staging-{i}"),
        created_at: 0,
        updated_at: 0,
    }
}

/// Every writer opens a session against a cap of 5 per user: exactly 5 open,
/// every other one refused with the cap named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upload_starts_never_overshoot_the_cap() {
    let Some((database, nodes)) = nodes("concurrent_upload_starts").await else {
        return;
    };
    let limits = UploadLimits {
        per_subject: 5,
        per_repository: 0,
    };
    let results = race(&nodes, |node, i| async move {
        // Spread over repositories: only the per-user cap binds.
        let repo = name(&format!("alice/r{}", i % 3));
        node.create_upload(&session(&repo, i), limits).await
    })
    .await;
    let opened = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(opened, 5);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(
                refused,
                MetaError::UploadLimit {
                    open: 5,
                    limit: 5,
                    ..
                }
            ),
            "{refused}"
        );
    }
    let check = SqlMeta::open_postgres(database.url().expose())
        .await
        .unwrap();
    let open: i64 = super::db::query_scalar("SELECT count(*) FROM uploads")
        .fetch_one(check.db())
        .await
        .unwrap();
    assert_eq!(open, 5);
}

/// Every writer advances one session from the same offset: exactly one wins,
/// and the session holds the winner's offset and hash state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_session_advances_from_one_offset_let_exactly_one_win() {
    let Some((database, nodes)) = nodes("concurrent_session_advances").await else {
        return;
    };
    let repo = name("acme/chunks");
    nodes[0]
        .create_upload(&session(&repo, 0), UploadLimits::default())
        .await
        .unwrap();
    let won = race(&nodes, |node, i| async move {
        let offset = 100 + i as u64;
        let state = offset.to_be_bytes().to_vec();
        let advanced = node
            .advance_upload(&upload_id(0), 0, offset, &state, None, 1)
            .await
            .unwrap();
        advanced.then_some(offset)
    })
    .await;
    let winners: Vec<u64> = won.into_iter().flatten().collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let check = SqlMeta::open_postgres(database.url().expose())
        .await
        .unwrap();
    let s = check
        .get_upload(&repo, &upload_id(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.offset, winners[0]);
    assert_eq!(s.hash_state, winners[0].to_be_bytes().to_vec());
}

/// Half the writers push manifests into a repository while the other half
/// delete manifests and tags, and one deletes the whole repository: after
/// it, no tag names a missing manifest and no manifest names a blob the
/// repository does not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_and_deletes_leave_no_dangling_reference() {
    let Some((database, nodes)) = nodes("concurrent_pushes_and_deletes").await else {
        return;
    };
    let repo = name("acme/churn");
    let layer = Digest::sha256_of(b"l");
    nodes[0].link_blob(&repo, &layer, 1).await.unwrap();
    race(&nodes, |node, i| {
        let (repo, layer) = (repo.clone(), layer.clone());
        async move {
            let new = manifest(i % 4, &layer);
            let tag = Tag::parse(&format!("t{}", i % 4)).unwrap();
            match i % 4 {
                0 | 1 => match node
                    .put_manifest(&repo, &new, Some(&tag), &crate::events::Actor::system())
                    .await
                {
                    // The repository (and so the layer link) was deleted first.
                    Ok(()) | Err(MetaError::MissingReference(_)) => {}
                    Err(e) => panic!("{e}"),
                },
                2 => {
                    node.delete_manifest(
                        &repo,
                        &new.manifest.digest,
                        &crate::events::Actor::system(),
                    )
                    .await
                    .unwrap();
                }
                _ if i == 3 => {
                    node.delete_repository(&repo, &crate::events::Actor::system())
                        .await
                        .unwrap();
                }
                _ => {
                    node.delete_tag(&repo, &tag, &crate::events::Actor::system())
                        .await
                        .unwrap();
                }
            }
        }
    })
    .await;
    let check = SqlMeta::open_postgres(database.url().expose())
        .await
        .unwrap();
    let db = check.db();
    let dangling_tags: i64 = super::db::query_scalar(
        "SELECT count(*) FROM tags t
          WHERE NOT EXISTS (SELECT 1 FROM manifests m
                             WHERE m.repository_id = t.repository_id AND m.digest = t.manifest_digest)",
    )
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(dangling_tags, 0);
    let dangling_blobs: i64 = super::db::query_scalar(
        "SELECT count(*) FROM manifest_references r
          WHERE NOT r.is_manifest
            AND NOT EXISTS (SELECT 1 FROM repository_blobs rb
                             WHERE rb.repository_id = r.repository_id AND rb.digest = r.child_digest)",
    )
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(dangling_blobs, 0);
    let orphans: i64 = super::db::query_scalar(
        "SELECT count(*) FROM manifests m
          WHERE NOT EXISTS (SELECT 1 FROM repositories r WHERE r.id = m.repository_id)",
    )
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
}
