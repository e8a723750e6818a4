//! The admin API's own rules: JSON bodies only under `application/json`,
//! no foreign `Origin`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_PASSWORD, Resp, TestApp, basic_header};

/// The one error of an admin API answer, whole: `(status, body)`.
fn error(resp: &Resp) -> (u16, Value) {
    assert_eq!(resp.header("content-type"), Some("application/json"));
    (resp.status, resp.json())
}

fn body(code: &str, message: &str) -> Value {
    json!({"errors": [{"code": code, "message": message}]})
}

/// Regression: the admin API read JSON under any `Content-Type` (the shape of
/// a cross-site `<form enctype=text/plain>`) and ignored `Origin`.
#[tokio::test]
async fn bodies_must_be_json_and_foreign_origins_are_refused() {
    let app = TestApp::start().await;
    let user = |name: &str| json!({"name": name, "password": "long enough password"}).to_string();
    let post = |content_type: Option<&str>, origin: Option<&str>, body: String| {
        let mut request = app
            .request(Method::POST, "/api/v1/users")
            .header("authorization", basic_header("admin", ADMIN_PASSWORD))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        app.send(request)
    };

    for (content_type, said) in [
        (Some("text/plain"), "Content-Type: text/plain"),
        (
            Some("application/x-www-form-urlencoded"),
            "Content-Type: application/x-www-form-urlencoded",
        ),
        (Some("application/jsonx"), "Content-Type: application/jsonx"),
        (None, "no Content-Type"),
    ] {
        let resp = post(content_type, None, user("eve")).await;
        assert_eq!(
            error(&resp),
            (
                415,
                body(
                    "UNSUPPORTED_MEDIA_TYPE",
                    &format!(
                        "the admin API takes JSON bodies sent as Content-Type: application/json; \
                         this request sent {said}"
                    )
                )
            ),
            "{content_type:?}"
        );
    }
    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/eve", None)
        .await;
    assert_eq!(resp.status, 404, "nothing was created: {}", resp.text());

    // Parameters are fine; so is the registry's own origin.
    let resp = post(
        Some("Application/JSON; charset=utf-8"),
        Some(&app.base),
        user("carol"),
    )
    .await;
    assert_eq!(resp.status, 201, "{}", resp.text());

    for origin in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let resp = post(Some("application/json"), Some(origin), user("mallory")).await;
        assert_eq!(
            error(&resp),
            (
                403,
                body(
                    "DENIED",
                    &format!(
                        "this request comes from a web page of another origin (Origin: {origin}), \
                         not from {}: the admin API refuses such requests so that no web page \
                         can use an administrator's credentials; call it from `berth admin` or \
                         a client that sends no Origin header",
                        app.base
                    )
                )
            ),
            "{origin}"
        );
    }
    // Refused before the credentials are looked at, body or not.
    let resp = app
        .send(
            app.request(Method::DELETE, "/api/v1/users/carol")
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = app
        .admin_api(Method::DELETE, "/api/v1/users/mallory", None)
        .await;
    assert_eq!(resp.status, 404, "nothing was created: {}", resp.text());
}
