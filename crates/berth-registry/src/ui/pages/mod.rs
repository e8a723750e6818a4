//! One module per page: its handlers, and the struct its template renders.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use super::session::Visitor;
use super::view::Chrome;
use super::{api, html};

pub mod account;
pub mod admin;
pub mod explore;
pub mod manifest;
pub mod org;
pub mod repository;
pub mod sign_in;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    message: &'a str,
}

/// A page that says what went wrong and what to do, with `status`.
pub fn error_page(visitor: &Visitor, status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage {
        chrome: Chrome::new(visitor, title),
        message,
    };
    render(visitor, status, &page)
}

/// The page for something that is not there, or that the visitor may not
/// see: the same words for both (no existence oracle).
pub fn missing(visitor: &Visitor, what: &str) -> Response {
    error_page(
        visitor,
        StatusCode::NOT_FOUND,
        "Not found",
        &format!(
            "There is no {what} here, or you may not see it{}.",
            if visitor.caller.is_some() {
                ""
            } else {
                ": signing in may show it"
            }
        ),
    )
}

/// `GET /ui/...` for any other path.
pub async fn not_found(visitor: Visitor) -> Response {
    missing(&visitor, "page")
}

/// A handler's refusal as a page with its status.
fn refused(visitor: &Visitor, refused: &api::Refused) -> Response {
    let title = match refused.status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        s if s.is_server_error() => "Registry error",
        _ => "Refused",
    };
    error_page(visitor, refused.status, title, &refused.message)
}

/// A page for a visitor who must sign in first.
fn sign_in_first(visitor: &Visitor) -> Response {
    error_page(
        visitor,
        StatusCode::UNAUTHORIZED,
        "Sign in",
        "This page is for signed-in users: sign in with your user name and password or a \
         personal access token.",
    )
}

/// Renders `page` with `status`, and what the visitor's answer must set.
fn render(visitor: &Visitor, status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => visitor.finish(html(status, body)),
        Err(e) => {
            tracing::error!(error = %e, "web page failed to render");
            visitor.finish(html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>berth</title><p>The page failed to render; the cause is \
                 in the registry's log.</p>"
                    .to_owned(),
            ))
        }
    }
}

/// A form with no field but its CSRF token (a button).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// A form's fields (`application/x-www-form-urlencoded`), once its CSRF
/// token (the `csrf` field every form carries) is checked.
fn accept<T: serde::de::DeserializeOwned>(
    visitor: &Visitor,
    body: &[u8],
) -> Result<T, Box<Response>> {
    #[derive(serde::Deserialize)]
    struct Token {
        #[serde(default)]
        csrf: String,
    }
    let token: Token = parse_form(visitor, body)?;
    visitor.check_csrf(&token.csrf)?;
    parse_form(visitor, body)
}

fn parse_form<T: serde::de::DeserializeOwned>(
    visitor: &Visitor,
    body: &[u8],
) -> Result<T, Box<Response>> {
    serde_urlencoded::from_bytes(body).map_err(|e| {
        Box::new(error_page(
            visitor,
            StatusCode::BAD_REQUEST,
            "Form not understood",
            &format!(
                "The form's fields are not what this page takes ({e}); reload the page and try again."
            ),
        ))
    })
}

/// A page's query parameters; unknown or malformed ones are ignored (a
/// page falls back to its first page, unfiltered).
fn query<T: serde::de::DeserializeOwned + Default>(raw: Option<&str>) -> T {
    raw.and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// A redirect after a form (303: the browser GETs `location`).
fn see_other(visitor: &Visitor, location: &str) -> Response {
    let mut response = html(StatusCode::SEE_OTHER, String::new());
    if let Ok(value) = axum::http::HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    visitor.finish(response)
}
