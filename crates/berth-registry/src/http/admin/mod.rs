//! The admin JSON API under `/api/v1/`: users, organisations, robot accounts,
//! personal access tokens, repository visibility, and the token keys. The
//! `berth admin ...` commands are its client.
//!
//! Rules:
//! - Every request authenticates with HTTP Basic, the token service's
//!   credentials (a password, or a personal access token as the password),
//!   through the same [`Authenticator`](crate::auth::authenticate::Authenticator)
//!   and so under the same failure rate limits. No or wrong credentials: 401
//!   with `WWW-Authenticate: Basic realm="<service>"`. An authenticated
//!   non-administrator: 403. A personal access token narrower than
//!   `pull,push,delete` on every repository is refused (403): a token handed
//!   to CI for pulls must not administer the registry.
//! - Bodies are JSON objects of at most [`MAX_BODY_BYTES`], sent as
//!   `Content-Type: application/json` (parameters such as `charset` allowed;
//!   anything else is 415); unknown fields are refused so that a typo is an
//!   error, not a silent default.
//! - A request whose `Origin` header names another origin than the registry's
//!   public URL is refused (403) before its credentials are looked at: a web
//!   page elsewhere cannot drive the API with credentials a browser holds
//!   (the shape of a cross-site `<form enctype=text/plain>`). `berth admin`
//!   and scripts send no `Origin`.
//! - A change that takes rights away (a user deleted, a password changed, a
//!   member removed or lowered, a token revoked, a repository made private)
//!   reaches the tokens already issued before the answer is sent
//!   (`auth/revocation.rs`).
//! - Errors are `{"errors":[{"code","message"}]}`, the registry API's shape,
//!   with a message that says what to do.
//! - Repository names contain `/`, so they travel in bodies, never in paths.
//! - Every change is logged as one `berth::audit` line naming who did what;
//!   secrets and password hashes never reach a log.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | `POST` | `/api/v1/users` | `{"name", "password" \| "password_hash", "admin"?}` | 201 user |
//! | `DELETE` | `/api/v1/users/{user}[?delete_repositories=true]` | | 204; 409 `OWNS_REPOSITORIES` |
//! | `PUT` | `/api/v1/users/{user}/password` | `{"password" \| "password_hash"}` | 204 |
//! | `POST` | `/api/v1/orgs` | `{"name", "owner"}` | 201 org |
//! | `PUT` | `/api/v1/orgs/{org}/members/{user}` | `{"role"}` | 200 membership |
//! | `DELETE` | `/api/v1/orgs/{org}/members/{user}` | | 204 |
//! | `POST` | `/api/v1/orgs/{org}/robots` | `{"name", "actions"?, "expires_in_days"?}` | 201 robot + token secret |
//! | `POST` | `/api/v1/users/{user}/tokens` | `{"name", "actions"?, "repositories"?, "expires_in_days"?}` | 201 token + secret |
//! | `GET` | `/api/v1/users/{user}/tokens` | | 200 `{"tokens":[...]}` (no secrets) |
//! | `DELETE` | `/api/v1/users/{user}/tokens/{name}` | | 204 |
//! | `PUT` | `/api/v1/repositories/visibility` | `{"repository", "visibility"}` | 200 |
//! | `GET` | `/api/v1/keys` | | 200 `{"active", "kids", "root_pem"}` |
//! | `POST` | `/api/v1/keys/rotate` | | 200 `{"kid", "kids"}` |

use std::net::{IpAddr, Ipv4Addr};

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use berth_core::challenge::Challenge;
use berth_core::scope::{Action, Actions};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::router::AppState;
use crate::Registry;
use crate::auth::authenticate::{AuthnError, Credential, basic_credentials};
use crate::clock::now_unix;
use crate::identity::{IdentityError, User};
use crate::meta::MetaError;
use crate::policy::{Principal, Subject};
use crate::server::proxy::ClientAddr;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Days a personal access token lives when the request names none.
pub const DEFAULT_TOKEN_DAYS: u32 = 90;
/// The longest lifetime a personal access token may be given, in days.
pub const MAX_TOKEN_DAYS: u32 = 3650;
/// The shortest plain password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The name of the token `POST /api/v1/orgs/{org}/robots` creates with a robot.
pub const ROBOT_TOKEN_NAME: &str = "default";

/// The admin API's routes, with their full `/api/v1/...` paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", post(create_user))
        .route("/api/v1/users/{user}", delete(delete_user))
        .route("/api/v1/users/{user}/password", put(set_password))
        .route("/api/v1/orgs", post(create_org))
        .route(
            "/api/v1/orgs/{org}/members/{user}",
            put(set_member).delete(remove_member),
        )
        .route("/api/v1/orgs/{org}/robots", post(create_robot))
        .route(
            "/api/v1/users/{user}/tokens",
            post(create_token).get(list_tokens),
        )
        .route("/api/v1/users/{user}/tokens/{name}", delete(revoke_token))
        .route("/api/v1/repositories/visibility", put(set_visibility))
        .route("/api/v1/keys", get(get_keys))
        .route("/api/v1/keys/rotate", post(rotate_keys))
        .method_not_allowed_fallback(method_not_allowed)
        .route("/api/v1", any(no_route))
        .route("/api/v1/", any(no_route))
        .route("/api/v1/{*rest}", any(no_route))
}

// ---------------------------------------------------------------------------
// Errors

/// An admin API failure: a status, a code and a message saying what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    challenge: Option<String>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after_secs: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    fn unauthorized(r: &Registry, message: impl Into<String>) -> Self {
        Self {
            challenge: Some(Challenge::basic(&r.config.service).to_string()),
            ..Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
        }
    }

    /// A failure whose cause belongs in the log, not in the answer.
    fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "admin API internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "internal server error; the cause is in the registry's log",
        )
    }

    fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "database failed during an admin request");
        Self {
            retry_after_secs: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the registry's database is unavailable; retry shortly",
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code, "message": self.message}]});
        let mut response = json_response(self.status, &body);
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        let message = e.to_string();
        match e {
            IdentityError::NameTaken(_) => Self::conflict("NAME_TAKEN", message),
            IdentityError::NotFound(_) => Self::not_found("NOT_FOUND", message),
            IdentityError::InvalidName(_) => {
                Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message)
            }
            IdentityError::PatNameTaken(_) => Self::conflict("TOKEN_NAME_TAKEN", message),
            IdentityError::InvalidPat(_) => {
                Self::new(StatusCode::BAD_REQUEST, "TOKEN_INVALID", message)
            }
            IdentityError::Robot(_) => Self::conflict("ROBOT_ACCOUNT", message),
            IdentityError::OwnsRepositories { .. } => Self::conflict("OWNS_REPOSITORIES", message),
            IdentityError::Htpasswd { .. } => Self::bad_request(message),
            IdentityError::Database(e) => Self::unavailable(&e),
            IdentityError::PasswordHash(_)
            | IdentityError::Random(_)
            | IdentityError::Corrupt(_) => Self::internal(&message),
        }
    }
}

impl From<MetaError> for ApiError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::Database(e) => Self::unavailable(&e),
            other => Self::internal(&other),
        }
    }
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(
        "NOT_FOUND",
        format!(
            "no admin API endpoint at {}; see the Administration section of berth's README",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        format!(
            "method {method} is not supported on {}; see the Administration section of berth's README",
            uri.path()
        ),
    )
}

// ---------------------------------------------------------------------------
// Authentication

/// The administrator making a request, authenticated and checked.
pub struct Admin {
    /// Their user name.
    pub name: String,
    /// The address the request came from.
    pub client: IpAddr,
}

/// One `berth::audit` line for an admin action: who, from where, what.
macro_rules! audit {
    ($admin:expr, $action:literal, $($rest:tt)*) => {
        tracing::info!(
            target: "berth::audit",
            actor = %$admin.name,
            client = %$admin.client,
            action = $action,
            $($rest)*
        )
    };
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let r = &app.registry;
        let client = parts
            .extensions
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
        let path = parts.uri.path();
        if let Err(e) = check_origin(r, parts) {
            tracing::info!(target: "berth::audit", client = %client, path, "admin API refused: foreign Origin");
            return Err(e);
        }
        check_content_type(parts)?;
        let Ok(Some((username, password))) = basic_credentials(&parts.headers) else {
            return Err(ApiError::unauthorized(
                r,
                "the admin API needs an administrator's credentials: HTTP Basic with a user name \
                 and a password or personal access token (berth admin reads BERTH_USERNAME and \
                 BERTH_PASSWORD)",
            ));
        };
        let credential = Credential::Password {
            username: &username,
            password: &password,
        };
        let principal = match r.authn.authenticate(&credential, client, now_unix()).await {
            Ok(Subject::User(principal)) => principal,
            Ok(Subject::Anonymous) | Err(AuthnError::BadCredentials) => {
                tracing::info!(target: "berth::audit", client = %client, path, "admin API refused: bad credentials");
                return Err(ApiError::unauthorized(
                    r,
                    "invalid username, password or token; check BERTH_USERNAME and BERTH_PASSWORD \
                     (a personal access token goes in the password)",
                ));
            }
            Err(AuthnError::TooManyFailures { retry_after_secs }) => {
                tracing::warn!(target: "berth::audit", client = %client, path, "admin API refused: rate limited");
                return Err(ApiError {
                    retry_after_secs: Some(retry_after_secs),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TOOMANYREQUESTS",
                        format!(
                            "too many failed attempts; retry in {retry_after_secs} seconds with the right credentials"
                        ),
                    )
                });
            }
            Err(AuthnError::Store(e)) => return Err(e.into()),
        };
        if let Err(message) = may_administer(&principal) {
            tracing::info!(target: "berth::audit", subject = %principal.name, client = %client, path, "admin API refused: {message}");
            return Err(ApiError::new(StatusCode::FORBIDDEN, "DENIED", message));
        }
        Ok(Admin {
            name: principal.name,
            client,
        })
    }
}

/// Refuses a request whose `Origin` is present and is not the origin of the
/// registry's public URL: a web page of another site (a browser sends
/// `Origin` on every cross-site POST, PUT and DELETE, and `null` from opaque
/// origins).
fn check_origin(r: &Registry, parts: &Parts) -> Result<(), ApiError> {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let sent = origin.to_str().unwrap_or("<not text>");
    let ours = origin_of(&r.config.public_url);
    if ours.is_some() && origin_of(sent) == ours {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "DENIED",
        format!(
            "this request comes from a web page of another origin (Origin: {}), not from {}: \
             the admin API refuses such requests so that no web page can use an \
             administrator's credentials; call it from `berth admin` or a client that sends \
             no Origin header",
            sent.chars().take(100).collect::<String>(),
            ours.as_deref().unwrap_or(&r.config.public_url)
        ),
    ))
}

/// `scheme://host[:port]` of a URL, lower-case, without a default port (the
/// RFC 6454 serialisation a browser sends in `Origin`); `None` when it has no
/// `scheme://host`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return None;
    }
    let host_port = host_port.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    let host_port = match default {
        Some(port) => host_port
            .strip_suffix(port)
            .unwrap_or(&host_port)
            .to_owned(),
        None => host_port,
    };
    Some(format!("{scheme}://{host_port}"))
}

/// Refuses a request that carries a body, or names a media type, other than
/// `application/json` (415). A body is declared by `Content-Length` above 0 or
/// `Transfer-Encoding`; a `Content-Type` is judged even on an empty body (an
/// empty cross-site form post says `text/plain`).
fn check_content_type(parts: &Parts) -> Result<(), ApiError> {
    let headers = &parts.headers;
    let sent = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("<not text>"));
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body && sent.is_none() {
        return Ok(());
    }
    let is_json = sent
        .and_then(|v| berth_core::media_type::MediaType::parse(v).ok())
        .is_some_and(|m| m.essence() == "application/json");
    if is_json {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        format!(
            "the admin API takes JSON bodies sent as Content-Type: application/json; this \
             request sent {}",
            match sent {
                Some(v) => format!("Content-Type: {}", v.chars().take(100).collect::<String>()),
                None => "no Content-Type".to_owned(),
            }
        ),
    ))
}

/// Brings this process's revocation view up to date after a change that took
/// rights away, so that tokens issued before it are refused from the next
/// request on. The change is committed either way: a failure here is logged,
/// and the next request retries the reload before it is admitted.
async fn reload_revocations(r: &Registry) {
    if let Err(e) = crate::auth::revocation::reload(r).await {
        tracing::warn!(error = %e, "cannot reload revocation records after an admin change; the next request retries");
    }
}

/// Administrators only, and through a password or an unrestricted token.
fn may_administer(principal: &Principal) -> Result<(), String> {
    if !principal.is_admin {
        return Err(format!(
            "`{}` is not an administrator; the admin API needs an administrator's credentials",
            principal.name
        ));
    }
    if let Some(limits) = &principal.token {
        let full: Actions = [Action::Pull, Action::Push, Action::Delete]
            .into_iter()
            .collect();
        if !full.is_subset(&limits.actions) || !limits.repositories.is_empty() {
            return Err(format!(
                "this personal access token of `{}` is limited (actions {}{}); use the password, \
                 or a token with pull,push,delete and no repository patterns",
                principal.name,
                limits.actions,
                if limits.repositories.is_empty() {
                    String::new()
                } else {
                    format!(", repositories {}", limits.repositories.join(" "))
                }
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Bodies and answers

/// Reads a JSON body of at most [`MAX_BODY_BYTES`].
async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TOO_LARGE",
                format!(
                    "the request body is larger than {} KiB or ended early; send a smaller JSON object",
                    MAX_BODY_BYTES / 1024
                ),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not the JSON object this endpoint takes: {e}; see the \
             Administration section of berth's README"
        ))
    })
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// An answer holding a secret: never cached by anything between.
fn secret_response(status: StatusCode, body: &Value) -> Response {
    let mut response = json_response(status, body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn find_user(r: &Registry, name: &str) -> Result<User, ApiError> {
    r.identity.user_by_name(name).await?.ok_or_else(|| {
        ApiError::not_found(
            "USER_UNKNOWN",
            format!(
                "there is no user `{name}`; create it with `berth admin user create {name} --password-stdin`"
            ),
        )
    })
}

async fn find_org(r: &Registry, name: &str) -> Result<crate::identity::Organization, ApiError> {
    r.identity.org_by_name(name).await?.ok_or_else(|| {
        ApiError::not_found(
            "ORG_UNKNOWN",
            format!(
                "there is no organisation `{name}`; create it with `berth admin org create {name} --owner USER`"
            ),
        )
    })
}

// ---------------------------------------------------------------------------
// Users

// The handlers, one module per resource (declared after `audit!`, which they use).
mod keys;
mod orgs;
mod repos;
mod tokens;
mod users;

use self::keys::{get_keys, rotate_keys};
use self::orgs::{create_org, create_robot, remove_member, set_member};
use self::repos::set_visibility;
use self::tokens::{create_token, list_tokens, revoke_token};
use self::users::{create_user, delete_user, set_password};

#[cfg(test)]
mod tests {
    use super::tokens::{token_actions, token_expiry};
    use super::users::check_imported_hash;
    use super::*;
    use crate::auth::authenticate::default_token_actions;
    use crate::identity::password::hash_password;

    #[test]
    fn imported_hashes_are_checked() {
        let bcrypt = bcrypt::hash_with_result("pw", 4)
            .map(|h| h.format_for_version(bcrypt::Version::TwoY))
            .unwrap_or_default();
        assert!(check_imported_hash(&bcrypt).is_ok());
        let argon = hash_password("password").unwrap_or_default();
        assert!(check_imported_hash(&argon).is_ok());
        for bad in [
            "",
            "plain",
            "$2y$04$short",
            "$apr1$x$y",
            "$argon2id$nope",
            "a\nb",
        ] {
            assert!(check_imported_hash(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_unrestricted_admin_credentials_administer() {
        let mut p = Principal {
            name: "root".to_owned(),
            is_admin: true,
            robot_of: None,
            memberships: vec![],
            token: None,
        };
        assert!(may_administer(&p).is_ok());
        p.token = Some(crate::policy::TokenLimits {
            token_id: 1,
            name: "t".to_owned(),
            actions: "delete,pull,push".parse().unwrap_or_default(),
            repositories: vec![],
        });
        assert!(may_administer(&p).is_ok());
        p.token = Some(crate::policy::TokenLimits {
            token_id: 1,
            name: "t".to_owned(),
            actions: "pull".parse().unwrap_or_default(),
            repositories: vec![],
        });
        assert!(may_administer(&p).is_err());
        p.token = None;
        p.is_admin = false;
        assert!(
            may_administer(&p)
                .unwrap_err()
                .contains("not an administrator")
        );
    }

    #[test]
    fn origins_are_compared_as_browsers_send_them() {
        assert_eq!(
            origin_of("http://127.0.0.1:5000").as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(
            origin_of("HTTPS://Registry.Example.com:443/base/").as_deref(),
            Some("https://registry.example.com")
        );
        assert_eq!(
            origin_of("http://user@host:80?x").as_deref(),
            Some("http://host")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("http://"), None);
        assert_ne!(
            origin_of("http://127.0.0.1:5000"),
            origin_of("http://127.0.0.1:5001")
        );
    }

    #[test]
    fn token_actions_and_expiry() {
        assert_eq!(token_actions(None).ok(), Some(default_token_actions()));
        let asked = ["pull".to_owned(), "delete".to_owned()];
        assert_eq!(
            token_actions(Some(&asked)).map(|a| a.to_string()).ok(),
            Some("delete,pull".to_owned())
        );
        assert!(token_actions(Some(&["*".to_owned()])).is_err());
        assert!(token_actions(Some(&[])).is_err());
        assert!(token_expiry(Some(0)).is_err());
        assert!(token_expiry(Some(MAX_TOKEN_DAYS + 1)).is_err());
        assert!(token_expiry(None).is_ok_and(|t| t > now_unix() + 89 * 86_400));
    }
}
