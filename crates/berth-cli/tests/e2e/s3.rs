//! `berth serve` with its blobs in S3: the flags and `BERTH_S3_*` variables
//! reach the store (a push and a pull, a redirect), and a bucket that does
//! not answer stops the start with one line naming it. The tests that need
//! an S3 server run under `.ci/s3` (`BERTH_TEST_S3_ENDPOINT`) and return at
//! once without it.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::process::Command;

use berth_core::digest::Digest;

use crate::support::Server;

/// moto's endpoint and bucket, when the suite runs under `.ci/s3`.
fn s3() -> Option<(String, String)> {
    let endpoint = std::env::var("BERTH_TEST_S3_ENDPOINT").ok()?;
    let bucket = std::env::var("BERTH_TEST_S3_BUCKET").unwrap_or_else(|_| "berth-test".into());
    Some((endpoint, bucket))
}

/// `berth serve` on S3 fails to start; its stderr.
fn failed_start(data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        // Keys of one's own: without them the AWS client would ask the
        // instance metadata service, which is not on loopback.
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line:\n{stderr}");
    stderr
}

/// An endpoint nothing answers on: the start stops with one line that
/// names the bucket and what to check.
#[test]
fn an_unreachable_s3_endpoint_stops_the_start_in_one_line() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let data = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let line = failed_start(
        data.path(),
        &[
            "--blob-store",
            "s3://berth-nowhere/p",
            "--s3-endpoint",
            &endpoint,
            "--s3-path-style",
        ],
    );
    let start = format!(
        "berth: cannot open the data directory {} with blobs in S3 bucket \"berth-nowhere\": ",
        data.path().display()
    );
    assert!(line.starts_with(&start), "{line}");
    assert!(
        line.trim_end().ends_with(
            "; check --s3-endpoint, --s3-region, --s3-path-style and the credentials in \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ),
        "{line}"
    );
}

/// A bucket the S3 service does not have: named, with what to do.
#[test]
fn a_missing_bucket_stops_the_start_naming_it() {
    let Some((endpoint, _)) = s3() else {
        return eprintln!("skipped: run under .ci/s3");
    };
    let data = tempfile::tempdir().unwrap();
    let line = failed_start(
        data.path(),
        &[
            "--blob-store",
            "s3://berth-no-such-bucket",
            "--s3-endpoint",
            &endpoint,
            "--s3-path-style",
        ],
    );
    let start = format!(
        "berth: cannot open the data directory {} with blobs in S3 bucket \"berth-no-such-bucket\": ",
        data.path().display()
    );
    assert!(line.starts_with(&start), "{line}");
    assert!(
        line.trim_end().ends_with(
            "S3 bucket \"berth-no-such-bucket\" does not exist; create it, or name another \
             with --blob-store s3://BUCKET[/PREFIX]"
        ),
        "{line}"
    );
}

/// The flags choose the bucket and endpoint, `BERTH_S3_REDIRECT` the
/// redirects: a blob pushed through berth is fetched from the presigned
/// URL of its answer, without credentials.
#[test]
fn serve_on_s3_stores_blobs_and_redirects_pulls() {
    let Some((endpoint, bucket)) = s3() else {
        return eprintln!("skipped: run under .ci/s3");
    };
    let data = tempfile::tempdir().unwrap();
    let store = format!("s3://{bucket}/e2e-{}", std::process::id());
    let server = Server::start_with_env(
        data.path(),
        &[
            "--access-control",
            "false",
            "--blob-store",
            &store,
            "--s3-endpoint",
            &endpoint,
            "--s3-path-style",
        ],
        &[("BERTH_S3_REDIRECT", OsStr::new("true"))],
    );
    let blob: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256_of(&blob);
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let pushed = http
        .post(server.url(&format!("/v2/e2e/s3/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .unwrap();
    assert_eq!(pushed.status(), 201);
    let pulled = http
        .get(server.url(&format!("/v2/e2e/s3/blobs/{digest}")))
        .send()
        .unwrap();
    assert_eq!(pulled.status(), 307);
    let location = pulled.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{endpoint}/{bucket}/e2e-")),
        "{location}"
    );
    let fetched = reqwest::blocking::get(&location).unwrap();
    assert_eq!(fetched.status(), 200);
    assert!(
        fetched.bytes().unwrap() == blob,
        "S3 serves the blob pushed"
    );
}
