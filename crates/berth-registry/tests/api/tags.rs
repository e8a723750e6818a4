//! end-8: `GET /v2/<name>/tags/list`, in byte order, paginated with `n`/`last` and `Link`.

use serde_json::{Value, json};

use crate::support::{Resp, TestApp};

/// Tags pushed in this order; listed in byte order as [`SORTED`].
const PUSHED: [&str; 7] = ["b", "latest", "A", "1.0", "_x", "a", "Z"];
const SORTED: [&str; 7] = ["1.0", "A", "Z", "_x", "a", "b", "latest"];

async fn app_with_tags() -> TestApp {
    let app = TestApp::start().await;
    let pushed = app.push_image("lib/app", PUSHED[0]).await;
    let manifest: Value = serde_json::from_slice(&pushed.bytes).unwrap();
    for tag in &PUSHED[1..] {
        app.push_manifest("lib/app", tag, &manifest).await;
    }
    app
}

fn tags_of(resp: &Resp) -> Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["name"], "lib/app");
    body["tags"].clone()
}

#[tokio::test]
async fn tag_list_is_200_with_name_and_tags_in_byte_order() {
    let app = app_with_tags().await;
    let resp = app.get("/v2/lib/app/tags/list").await;
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(tags_of(&resp), json!(SORTED));
    assert_eq!(resp.header("link"), None);
}

#[tokio::test]
async fn n_limits_the_page_and_link_points_at_the_next_one() {
    let app = app_with_tags().await;
    let resp = app.get("/v2/lib/app/tags/list?n=3").await;
    assert_eq!(tags_of(&resp), json!(["1.0", "A", "Z"]));
    assert_eq!(
        resp.header("link"),
        Some(r#"</v2/lib/app/tags/list?n=3&last=Z>; rel="next""#)
    );
}

#[tokio::test]
async fn following_link_verbatim_lists_every_tag_once() {
    let app = app_with_tags().await;
    let mut next = Some("/v2/lib/app/tags/list?n=3".to_owned());
    let mut pages = Vec::new();
    while let Some(path) = next {
        let resp = app.get(&path).await;
        pages.push(tags_of(&resp));
        next = resp.header("link").map(|link| {
            let target = link.strip_prefix('<').unwrap();
            let (target, params) = target.split_once('>').unwrap();
            assert_eq!(params, r#"; rel="next""#);
            target.to_owned()
        });
        assert!(pages.len() <= 3, "the pages end");
    }
    assert_eq!(
        pages,
        vec![
            json!(["1.0", "A", "Z"]),
            json!(["_x", "a", "b"]),
            json!(["latest"]),
        ]
    );
}

#[tokio::test]
async fn last_is_exclusive_with_and_without_n() {
    let app = app_with_tags().await;
    let resp = app.get("/v2/lib/app/tags/list?n=2&last=Z").await;
    assert_eq!(tags_of(&resp), json!(["_x", "a"]));
    assert_eq!(
        resp.header("link"),
        Some(r#"</v2/lib/app/tags/list?n=2&last=a>; rel="next""#)
    );
    let resp = app.get("/v2/lib/app/tags/list?last=b").await;
    assert_eq!(tags_of(&resp), json!(["latest"]));
    assert_eq!(resp.header("link"), None);
    // `last` need not be a tag that exists.
    let resp = app.get("/v2/lib/app/tags/list?last=B").await;
    assert_eq!(tags_of(&resp), json!(["Z", "_x", "a", "b", "latest"]));
    let resp = app.get("/v2/lib/app/tags/list?last=zzz").await;
    assert_eq!(tags_of(&resp), json!([]));
}

#[tokio::test]
async fn n_zero_is_an_empty_list_without_link() {
    let app = app_with_tags().await;
    let resp = app.get("/v2/lib/app/tags/list?n=0").await;
    assert_eq!(tags_of(&resp), json!([]));
    assert_eq!(resp.header("link"), None);
}

#[tokio::test]
async fn unreasonable_n_is_400_pagination_number_invalid() {
    let app = app_with_tags().await;
    for n in [
        "1001",
        "4294967295",
        "99999999999999999999",
        "-1",
        "ten",
        "",
    ] {
        app.get(&format!("/v2/lib/app/tags/list?n={n}"))
            .await
            .assert_error(400, "PAGINATION_NUMBER_INVALID");
    }
    // The largest page the registry allows is fine.
    let resp = app.get("/v2/lib/app/tags/list?n=1000").await;
    assert_eq!(tags_of(&resp), json!(SORTED));
    assert_eq!(resp.header("link"), None);
}

#[tokio::test]
async fn tags_of_an_unknown_repository_are_404_name_unknown() {
    let app = app_with_tags().await;
    app.get("/v2/lib/nothing/tags/list")
        .await
        .assert_error(404, "NAME_UNKNOWN");
}

#[tokio::test]
async fn repository_with_blobs_but_no_tags_lists_an_empty_array() {
    let app = TestApp::start().await;
    app.push_blob("only/blobs", b"bytes").await;
    let resp = app.get("/v2/only/blobs/tags/list").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({ "name": "only/blobs", "tags": [] }));
}
