//! The style sheet and script every page links, embedded in the binary.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `berth.css`: layout, light and dark colours (`prefers-color-scheme`),
/// narrow windows.
const CSS: &str = include_str!("assets/berth.css");
/// `berth.js`: the copy buttons (pages work without it).
const JS: &str = include_str!("assets/berth.js");
/// `berth.svg`: the icon browsers show in tabs.
const ICON: &str = include_str!("assets/berth.svg");

/// `GET /ui/assets/{file}`.
pub async fn get(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "berth.css" => (CSS, "text/css; charset=utf-8"),
        "berth.js" => (JS, "text/javascript; charset=utf-8"),
        "berth.svg" => (ICON, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}
