//! What a crash (kill -9) leaves in the data directory: staging files no
//! upload session names, blob files no blob record names. The sweep, run at
//! start and every minute, removes those old enough that no request can still
//! be writing them, and nothing else.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use berth_core::digest::Digest;

use crate::support::{TestApp, path_of, random_bytes};

/// Creates `path` (and its directory) holding `bytes`, last written `age` ago.
fn plant(path: &Path, bytes: &[u8], age: Duration) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    age_file(path, age);
}

/// Makes `path` look last written `age` ago.
fn age_file(path: &Path, age: Duration) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

fn blob_file(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    root.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Regression: files a kill -9 left with no metadata were never removed. At
/// start the sweep removes an orphan staging file and an orphan blob file
/// last written two hours ago, and keeps: a fresh orphan of each kind (an
/// upload or commit may be under way), the staging file of a live session,
/// and a recorded blob however old. A blob file a sweep was cut short while
/// removing (`.reclaiming`) comes back when a record still names it.
#[tokio::test]
async fn the_sweep_removes_old_files_no_metadata_names_and_nothing_else() {
    let app = TestApp::start().await;
    let pushed = app.push_image("lib/app", "v1").await;
    let location = app.start_upload("lib/app").await;
    let first = random_bytes(1000);
    assert_eq!(app.patch_chunk(&location, 0, &first).await.status, 202);
    let dir = app.stop().await;
    let root = dir.path();
    let hour = Duration::from_secs(3600);

    // A live session's staging file and a recorded blob, both old.
    let id = path_of(&location).rsplit('/').next().unwrap().to_owned();
    let live_staging = root.join("uploads").join(&id);
    age_file(&live_staging, 2 * hour);
    let recorded = blob_file(root, &pushed.layer);
    age_file(&recorded, 2 * hour);
    // A recorded blob caught mid-removal by a crash.
    let config = blob_file(root, &Digest::sha256_of(crate::support::EMPTY_CONFIG));
    let config_aside = config.with_extension("reclaiming");
    std::fs::rename(&config, &config_aside).unwrap();

    // Orphans, old and fresh.
    let old_staging = root.join("uploads/0123456789abcdef0123456789abcdef");
    plant(&old_staging, b"half an upload", 2 * hour);
    let fresh_staging = root.join("uploads/fedcba9876543210fedcba9876543210");
    plant(&fresh_staging, b"an upload just begun", Duration::ZERO);
    let old_bytes = random_bytes(300);
    let old_blob = blob_file(root, &Digest::sha256_of(&old_bytes));
    plant(&old_blob, &old_bytes, 2 * hour);
    let fresh_bytes = random_bytes(300);
    let fresh_blob = blob_file(root, &Digest::sha256_of(&fresh_bytes));
    plant(&fresh_blob, &fresh_bytes, Duration::ZERO);

    // Blob files no record names wait for the collector's delay: an hour
    // here, less than the orphans' two.
    let app = TestApp::start_in_with(dir, |config| config.gc.delay = hour).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while old_staging.exists() || old_blob.exists() {
        assert!(
            Instant::now() < deadline,
            "orphans still there 20 s after start: staging {}, blob {}",
            old_staging.exists(),
            old_blob.exists()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fresh_staging.exists(), "a fresh staging file is kept");
    assert!(fresh_blob.exists(), "a fresh blob file is kept");
    assert!(
        live_staging.exists(),
        "a live session's staging file is kept"
    );
    assert!(recorded.exists(), "a recorded blob is kept");
    assert!(config.exists() && !config_aside.exists(), "put back");

    // Everything recorded still works: the image pulls, the session finishes.
    let resp = app.get("/v2/lib/app/manifests/v1").await;
    assert_eq!(resp.status, 200);
    let resp = app
        .get(&format!("/v2/lib/app/blobs/{}", pushed.layer))
        .await;
    assert_eq!(resp.status, 200);
    let second = random_bytes(500);
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    let resp = app
        .close_upload(path_of(&location), &Digest::sha256_of(&whole), &second)
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text());
}
