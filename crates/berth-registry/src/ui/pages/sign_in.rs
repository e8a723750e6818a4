//! Signing in and out (`/ui/sign-in`, `/ui/sign-out`).
//!
//! A password or a personal access token is checked by the token service's
//! authenticator, under the failure limits `/token` and the API share (per
//! address, per user name): a browser guessing passwords is slowed and then
//! refused exactly as `docker login` would be.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::{accept, error_page, render};
use crate::auth::authenticate::{AuthnError, Credential};
use crate::clock::now_unix;
use crate::http::router::AppState;
use crate::policy::Subject;
use crate::ui::session::{self, Visitor};
use crate::ui::view::{Chrome, Notice};

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    open: bool,
    username: String,
    next: String,
}

#[derive(Deserialize, Default)]
pub struct Params {
    next: Option<String>,
    /// Set after a password change (which ended the session).
    changed: Option<String>,
}

/// `GET /ui/sign-in[?next=PATH]`.
pub async fn get(visitor: Visitor, RawQuery(raw): RawQuery) -> Response {
    let params: Params = super::query(raw.as_deref());
    let notice = params.changed.map(|_| {
        Notice::ok("Password changed, and every login made with the old one ended: sign in with the new one.")
    });
    page(
        &visitor,
        StatusCode::OK,
        "",
        &local(params.next.as_deref()),
        notice,
    )
}

fn page(
    visitor: &Visitor,
    status: StatusCode,
    username: &str,
    next: &str,
    notice: Option<Notice>,
) -> Response {
    let page = SignInPage {
        chrome: Chrome::new(visitor, "Sign in").with_notice(notice),
        open: visitor.open,
        username: username.to_owned(),
        next: next.to_owned(),
    };
    render(visitor, status, &page)
}

/// Where to go after signing in: a path of this site, else the explore
/// page. Never another site: not `//host`, and no backslash, space or
/// control character anywhere (browsers drop tabs and newlines from a
/// `Location` and read `\\` as `/`, which would make `/\t/host` and
/// `/\\host` another site).
fn local(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            next.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

#[derive(Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /ui/sign-in`.
pub async fn post(State(app): State<AppState>, visitor: Visitor, body: Bytes) -> Response {
    let r = &app.registry;
    let form: SignInForm = match accept(&visitor, &body) {
        Ok(form) => form,
        Err(page) => return *page,
    };
    let next = local(Some(&form.next));
    if visitor.open {
        return page(&visitor, StatusCode::OK, "", &next, None);
    }
    let credential = Credential::Password {
        username: &form.username,
        password: &form.password,
    };
    let principal = match r
        .authn
        .authenticate(&credential, visitor.client, now_unix())
        .await
    {
        Ok(Subject::User(principal)) => principal,
        Ok(Subject::Anonymous | Subject::Workload(_))
        | Err(AuthnError::BadCredentials | AuthnError::IdToken(_)) => {
            tracing::info!(target: "berth::audit", client = %visitor.client, user = %form.username, "web sign-in refused: bad credentials");
            return page(
                &visitor,
                StatusCode::UNAUTHORIZED,
                &form.username,
                &next,
                Some(Notice::error(
                    "Wrong user name, password or token. A personal access token goes in the \
                     password field.",
                )),
            );
        }
        Err(AuthnError::TooManyFailures { retry_after_secs }) => {
            tracing::warn!(target: "berth::audit", client = %visitor.client, user = %form.username, "web sign-in refused: rate limited");
            let mut response = page(
                &visitor,
                StatusCode::TOO_MANY_REQUESTS,
                &form.username,
                &next,
                Some(Notice::error(format!(
                    "Too many failed attempts: wait {retry_after_secs} seconds, then sign in \
                     with the right credentials."
                ))),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return response;
        }
        Err(AuthnError::Store(e)) => {
            tracing::error!(error = %e, "web sign-in: identity store failed");
            return error_page(
                &visitor,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The registry's database did not answer; try again shortly.",
            );
        }
    };
    let cookie = match session::start(r, &principal, visitor.secure).await {
        Ok(cookie) => cookie,
        Err(e) => {
            tracing::error!(error = %e, "web sign-in: cannot store the session");
            return error_page(
                &visitor,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The session could not be stored; try again shortly.",
            );
        }
    };
    tracing::info!(target: "berth::audit", actor = %principal.name, client = %visitor.client, action = "ui.sign_in", token = ?principal.token.as_ref().map(|t| &t.name), "web sign-in");
    redirect_with_cookie(&next, &cookie)
}

/// `POST /ui/sign-out`: ends the session server-side and clears its cookie.
pub async fn sign_out(State(app): State<AppState>, visitor: Visitor, body: Bytes) -> Response {
    if let Err(page) = accept::<super::NoFields>(&visitor, &body) {
        return *page;
    }
    match session::end(&app.registry, &visitor).await {
        Ok(cookie) => {
            if let Some(caller) = &visitor.caller {
                tracing::info!(target: "berth::audit", actor = %caller.name, client = %visitor.client, action = "ui.sign_out", "web sign-out");
            }
            redirect_with_cookie("/ui/", &cookie)
        }
        Err(e) => {
            tracing::error!(error = %e, "web sign-out: cannot delete the session");
            error_page(
                &visitor,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The session could not be ended; try again shortly.",
            )
        }
    }
}

fn redirect_with_cookie(location: &str, cookie: &str) -> Response {
    let mut response = crate::ui::html(StatusCode::SEE_OTHER, String::new());
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(cookie) {
        headers.append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_signing_in() {
        assert_eq!(local(Some("/ui/account")), "/ui/account");
        assert_eq!(local(Some("/ui/repo/a/b?x=1")), "/ui/repo/a/b?x=1");
        for away in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/ /evil.example",
            "ui",
            "",
            "/x\r\nSet-Cookie: a=b",
        ] {
            assert_eq!(local(Some(away)), "/ui/", "{away}");
        }
        assert_eq!(local(None), "/ui/");
    }

    proptest::proptest! {
        /// Whatever a form sends as `next`, the redirect stays on this site
        /// and is one header line.
        #[test]
        fn next_never_leaves_the_site(next in "\\PC{0,40}|/[/\\\\]?\\PC{0,20}") {
            let to = local(Some(&next));
            proptest::prop_assert!(to.starts_with('/'));
            proptest::prop_assert!(!to.starts_with("//"));
            proptest::prop_assert!(to.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'));
        }
    }
}
