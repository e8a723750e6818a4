//! Retention policies: one test per rule on a repository whose tags have
//! known push and pull times (set in the database), the first matching
//! policy governing, and a dry run that foretells the real run.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::Value;

use super::{
    Blob, Image, admin_token, app_with_policies, assert_blob_gone, assert_blob_pulls,
    assert_manifest_gone, assert_manifest_served, assert_section, blob, collect, get_manifest,
    manifest, policy, push, push_image, sorted, tag, tagged, tags,
};
use crate::support::TestApp;

/// Records in the database that `image` of `name` was last pulled `age`
/// seconds ago.
async fn pulled(app: &TestApp, name: &str, image: &Image, age: i64) {
    app.pulled_ago(name, &image.manifest.digest, age).await;
}

/// Asserts that the collection behind `report` removed exactly the tags
/// `removed` of `name` (with their images), and that `name` lists the rest.
async fn assert_retained(
    app: &TestApp,
    token: &str,
    report: &Value,
    name: &str,
    images: &BTreeMap<String, Image>,
    removed: &[&str],
) {
    let removed: BTreeSet<&str> = removed.iter().copied().collect();
    let entries = removed.iter().map(|t| tag(name, t, &images[*t])).collect();
    assert_section(report, "tags", entries);
    let kept: Vec<String> = images
        .keys()
        .filter(|t| !removed.contains(t.as_str()))
        .cloned()
        .collect();
    assert_eq!(tags(app, token, name).await, kept);
    for t in &removed {
        assert_manifest_gone(app, token, name, &images[*t].manifest).await;
    }
}

#[tokio::test]
async fn retention_keep_last_pushed_keeps_the_newest_pushes() {
    let app = app_with_policies(&[policy("acme/**", |p| p.keep_last_pushed = Some(2))]).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let images = tagged(
        &app,
        &token,
        name,
        &[("a", 400), ("b", 300), ("c", 200), ("d", 100)],
    )
    .await;
    let report = collect(&app, false).await;
    assert_retained(&app, &token, &report, name, &images, &["a", "b"]).await;
}

#[tokio::test]
async fn retention_keep_last_pulled_counts_manifest_gets() {
    let app = app_with_policies(&[policy("acme/**", |p| p.keep_last_pulled = Some(2))]).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let images = tagged(
        &app,
        &token,
        name,
        &[("a", 400), ("b", 300), ("c", 200), ("d", 100)],
    )
    .await;
    // `a` was pulled long ago; `b` and `d` are pulled now (a GET, noted in
    // memory and written before the collection); `c` never.
    pulled(&app, name, &images["a"], 1000).await;
    for t in ["b", "d"] {
        assert_eq!(get_manifest(&app, &token, name, t).await.status, 200);
    }
    // A HEAD is no pull.
    let head = app
        .head(&format!("/v2/{name}/manifests/a"), Some(&token))
        .await;
    assert_eq!(head.status, 200);
    let report = collect(&app, false).await;
    assert_retained(&app, &token, &report, name, &images, &["a", "c"]).await;
}

#[tokio::test]
async fn retention_keep_pushed_within_keeps_recent_pushes() {
    let app = app_with_policies(&[policy("acme/**", |p| {
        p.keep_pushed_within = Some("1h".into());
    })])
    .await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let images = tagged(
        &app,
        &token,
        name,
        &[("a", 7300), ("b", 3700), ("c", 3500), ("d", 0)],
    )
    .await;
    let report = collect(&app, false).await;
    assert_retained(&app, &token, &report, name, &images, &["a", "b"]).await;
}

#[tokio::test]
async fn retention_keep_pulled_within_keeps_recent_pulls() {
    let app = app_with_policies(&[policy("acme/**", |p| {
        p.keep_pulled_within = Some("1h".into());
    })])
    .await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let images = tagged(
        &app,
        &token,
        name,
        &[("a", 0), ("b", 0), ("c", 0), ("d", 0)],
    )
    .await;
    pulled(&app, name, &images["a"], 7200).await;
    pulled(&app, name, &images["b"], 60).await;
    assert_eq!(get_manifest(&app, &token, name, "d").await.status, 200);
    let report = collect(&app, false).await;
    assert_retained(&app, &token, &report, name, &images, &["a", "c"]).await;
}

#[tokio::test]
async fn retention_keep_tags_keeps_matching_tags() {
    let app = app_with_policies(&[policy("acme/**", |p| {
        p.keep_tags = Some(r"^v\d+$".into());
    })])
    .await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let images = tagged(
        &app,
        &token,
        name,
        &[("v1", 400), ("v2", 300), ("dev", 200), ("v3-rc", 100)],
    )
    .await;
    let report = collect(&app, false).await;
    assert_retained(&app, &token, &report, name, &images, &["dev", "v3-rc"]).await;
}

#[tokio::test]
async fn retention_protect_tags_are_never_removed_nor_counted() {
    let app = app_with_policies(&[policy("acme/**", |p| {
        p.keep_last_pushed = Some(1);
        p.protect_tags = Some("^latest$".into());
    })])
    .await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    // `latest`, the newest push, is protected and not counted: `c` is the
    // one most recent push kept.
    let images = tagged(
        &app,
        &token,
        name,
        &[("a", 400), ("b", 300), ("c", 200), ("latest", 100)],
    )
    .await;
    let report = collect(&app, false).await;
    assert_retained(&app, &token, &report, name, &images, &["a", "b"]).await;
}

#[tokio::test]
async fn retention_the_first_matching_policy_governs_and_unmatched_repositories_keep_all() {
    let app = app_with_policies(&[
        policy("ci/*", |p| p.keep_last_pushed = Some(1)),
        policy("ci/**", |p| p.keep_last_pushed = Some(3)),
    ])
    .await;
    let (shallow, deep, other) = ("ci/app", "ci/team/app", "acme/app");
    let token = admin_token(&app, &[shallow, deep, other]).await;
    let ages = [("a", 400), ("b", 300), ("c", 200), ("d", 100)];
    let shallow_images = tagged(&app, &token, shallow, &ages).await;
    let deep_images = tagged(&app, &token, deep, &ages).await;
    let other_images = tagged(&app, &token, other, &ages).await;

    let report = collect(&app, false).await;
    let mut expected: Vec<Value> = ["a", "b", "c"]
        .iter()
        .map(|t| tag(shallow, t, &shallow_images[*t]))
        .collect();
    expected.push(tag(deep, "a", &deep_images["a"]));
    assert_section(&report, "tags", expected);
    assert_eq!(tags(&app, &token, shallow).await, ["d"]);
    assert_eq!(tags(&app, &token, deep).await, ["b", "c", "d"]);
    assert_eq!(tags(&app, &token, other).await, ["a", "b", "c", "d"]);
    for image in other_images.values() {
        assert_manifest_served(&app, &token, other, &image.manifest).await;
    }
}

#[tokio::test]
async fn a_dry_run_reports_what_the_real_run_then_removes_and_changes_nothing() {
    let app = app_with_policies(&[policy("acme/**", |p| p.keep_last_pushed = Some(2))]).await;
    let name = "acme/app";
    let token = admin_token(&app, &[name]).await;
    let images = tagged(
        &app,
        &token,
        name,
        &[("a", 400), ("b", 300), ("c", 200), ("d", 100)],
    )
    .await;
    let by_digest = push_image(&app, &token, name, None).await;
    let orphan = Blob::random(300);
    push(&app, &token, name, &orphan).await;
    let usage_before = app.admin_api(Method::GET, "/api/v1/usage", None).await;

    let dry = collect(&app, true).await;
    assert_eq!(tags(&app, &token, name).await, ["a", "b", "c", "d"]);
    for image in images.values().chain([&by_digest]) {
        assert_manifest_served(&app, &token, name, &image.manifest).await;
        assert_blob_pulls(&app, &token, name, &image.layer).await;
    }
    assert_blob_pulls(&app, &token, name, &orphan).await;
    let usage_after = app.admin_api(Method::GET, "/api/v1/usage", None).await;
    assert_eq!(
        usage_after.json(),
        usage_before.json(),
        "usage and queue unchanged"
    );

    let real = collect(&app, false).await;
    for section in ["tags", "manifests", "links", "blobs", "reclaimed"] {
        assert_eq!(
            sorted(&dry[section]),
            sorted(&real[section]),
            "section {section}: dry run {dry}, real run {real}"
        );
    }
    assert_eq!(dry["kept"], real["kept"]);
    // What both said: two tags by the policy, three manifests, the blobs.
    assert_retained(&app, &token, &real, name, &images, &["a", "b"]).await;
    assert_section(
        &real,
        "manifests",
        vec![
            manifest(name, &images["a"].manifest),
            manifest(name, &images["b"].manifest),
            manifest(name, &by_digest.manifest),
        ],
    );
    let blobs = vec![
        blob(&images["a"].layer),
        blob(&images["b"].layer),
        blob(&by_digest.layer),
        blob(&orphan),
    ];
    assert_section(&real, "reclaimed", blobs);
    assert_blob_gone(&app, &token, name, &orphan).await;
}
