//! The web interface, served by `berth serve` at `/` and under `/ui/`
//! (`--ui false` turns it off): repositories to browse, tags with their
//! sizes and pull commands, manifests with their configs, platforms and
//! referrers; a signed-in user's tokens, password and organisations; an
//! organisation's members and robots for its owners; users, keys and usage
//! for administrators.
//!
//! How it is made:
//! - Pages are rendered on the server from askama templates
//!   (`ui/templates/`, compiled into the binary and type-checked against
//!   the structs of `ui/pages/`, escaping HTML by default), with one style
//!   sheet and one small script (`ui/assets/`) embedded too. No Node
//!   toolchain, no client-side framework: every page works without
//!   JavaScript, which only adds the copy buttons.
//! - Who may see what is `policy`'s answer, asked as the registry API asks
//!   it: a repository page is shown to whom `policy::is_allowed` lets pull
//!   it, and a private repository reads exactly as a missing one (the same
//!   404 page) to everyone else; the explore page lists what
//!   `policy::catalog_filter` and the token's limits admit, as the catalog
//!   does.
//! - A page that changes something (a token, a password, a member, a robot,
//!   a visibility, a key) calls the `/api/v1` handler in-process with the
//!   session's caller (`ui/api.rs`): the same policy questions, checks,
//!   audit lines and revocations as `berth` and the API get, and the API's
//!   message on the page when it refuses. Actions a visitor may not take are
//!   not offered; the handler refuses them anyway.
//! - Sessions (`ui/session.rs`): signing in takes a password or a personal
//!   access token through the token service's authenticator, under its
//!   failure limits; the session cookie holds a random secret whose hash is
//!   stored (`ui_sessions`), `HttpOnly`, `SameSite=Strict`, `Secure` when
//!   the public URL is `https`, ending server-side after
//!   [`session::SESSION_SECS`], at sign-out, when the password changes, or
//!   when the token it was signed in with is revoked. Every form carries a
//!   CSRF token derived from the session (or, before signing in, from a
//!   cookie of its own) and is refused without it.
//! - Every answer carries a strict Content-Security-Policy (no inline
//!   script or style, no framing, forms to this origin only),
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` and
//!   `Cache-Control: no-store`.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::router::AppState;

mod api;
mod assets;
mod pages;
mod session;
mod view;

pub use session::SESSION_SECS;

/// The largest form body a page accepts.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The Content-Security-Policy of every page: this origin's style sheet and
/// script only, nothing inline, no framing, forms posted here only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The web interface's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::explore::get))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(pages::explore::get))
        .route("/ui/repo/{*name}", get(pages::repository::get))
        .route("/ui/manifest/{*reference}", get(pages::manifest::get))
        .route("/ui/visibility", post(pages::repository::set_visibility))
        .route(
            "/ui/sign-in",
            get(pages::sign_in::get).post(pages::sign_in::post),
        )
        .route("/ui/sign-out", post(pages::sign_in::sign_out))
        .route("/ui/account", get(pages::account::get))
        .route("/ui/account/tokens", post(pages::account::create_token))
        .route(
            "/ui/account/tokens/revoke",
            post(pages::account::revoke_token),
        )
        .route(
            "/ui/account/password",
            post(pages::account::change_password),
        )
        .route("/ui/orgs/{org}", get(pages::org::get))
        .route("/ui/orgs/{org}/members", post(pages::org::set_member))
        .route(
            "/ui/orgs/{org}/members/remove",
            post(pages::org::remove_member),
        )
        .route("/ui/orgs/{org}/robots", post(pages::org::create_robot))
        .route(
            "/ui/orgs/{org}/robots/delete",
            post(pages::org::delete_robot),
        )
        .route("/ui/admin", get(pages::admin::get))
        .route("/ui/admin/users", post(pages::admin::create_user))
        .route("/ui/admin/keys/rotate", post(pages::admin::rotate_keys))
        .route("/ui/assets/{file}", get(assets::get))
        .route("/ui/{*rest}", get(pages::not_found))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
}

/// A page's HTML answer.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
