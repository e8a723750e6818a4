//! The JSON API under `/api/v1/`: the self-service account API (a user's
//! own tokens and password, the organisations they own, the visibility of
//! their repositories, their namespaces' trust rules) and the administrator API (users, organisations,
//! robots, repositories, signing keys). The `berth token|password|org|robot|
//! repo` and `berth admin ...` commands are its clients.
//!
//! Rules:
//! - Every request authenticates with the token service's credentials,
//!   through the same [`Authenticator`](crate::auth::authenticate::Authenticator)
//!   and so under the same failure rate limits: HTTP Basic (a password, or a
//!   personal access token as the password), or `Authorization: Bearer` with
//!   a refresh token (`berth_rt_...`, what `berth login` stores: the CLI
//!   works from a stored login without keeping the password). No or wrong
//!   credentials: 401 with `WWW-Authenticate: Basic realm="<service>"`.
//! - Who may do what is `policy`'s answer (its second rule table), asked by
//!   each handler; a refusal is 403 `DENIED` with a message naming why. A
//!   refusal is decided from the caller alone, before anything is looked up,
//!   so it reads the same whether the organisation, user or repository named
//!   exists or not (no existence oracle); only a caller who may act learns
//!   that something is missing (404).
//! - Bodies are JSON objects of at most [`MAX_BODY_BYTES`], sent as
//!   `Content-Type: application/json` (parameters such as `charset` allowed;
//!   anything else is 415); unknown fields are refused so that a typo is an
//!   error, not a silent default.
//! - A request whose `Origin` header names another origin than the registry's
//!   public URL is refused (403) before its credentials are looked at: a web
//!   page elsewhere cannot drive the API with credentials a browser holds
//!   (the shape of a cross-site `<form enctype=text/plain>`). `berth` and
//!   scripts send no `Origin`.
//! - A change that takes rights away (a user, organisation, robot or
//!   repository deleted, a password changed, a member removed or lowered, a
//!   token revoked, a repository made private) reaches the tokens already
//!   issued before the answer is sent (`auth/revocation.rs`).
//! - Lists that can be long are paginated as the registry API is: `n` (at
//!   most the registry's page limit) and `last`, and a `Link: <...>;
//!   rel="next"` header while more remain.
//! - Errors are `{"errors":[{"code","message"}]}`, the registry API's shape,
//!   with a message that says what to do.
//! - Repository names contain `/`, so they travel in bodies and query
//!   parameters, never in paths.
//! - Every change is logged as one `berth::audit` line naming who did what;
//!   secrets and password hashes never reach a log.
//!
//! Self-service (any user; `policy` decides):
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | `GET` | `/api/v1/user` | | 200 `{"name", "admin", "robot_of", "orgs", "token"}`: who the credentials are |
//! | `PUT` | `/api/v1/user/password` | `{"old_password", "new_password"}` | 204 |
//! | `POST` | `/api/v1/user/tokens` | `{"name", "actions"?, "repositories"?, "expires_in_days"?}` | 201 token + secret |
//! | `GET` | `/api/v1/user/tokens` | | 200 `{"user", "tokens"}` (no secrets) |
//! | `DELETE` | `/api/v1/user/tokens/{name}` | | 204 |
//! | `POST`, `GET`, `DELETE` | `/api/v1/users/{user}/tokens[/{name}]` | as above | the same for `{user}`: yourself, a robot of an organisation you own, anyone for an administrator |
//! | `GET` | `/api/v1/orgs/{org}/members` | | 200 `{"org", "members": [{"name", "role"}]}`, paginated (members) |
//! | `PUT` | `/api/v1/orgs/{org}/members/{user}` | `{"role"}` | 200 membership (owners) |
//! | `DELETE` | `/api/v1/orgs/{org}/members/{user}` | | 204 (owners) |
//! | `POST` | `/api/v1/orgs/{org}/robots` | `{"name", "actions"?, "expires_in_days"?}` | 201 robot + token secret (owners) |
//! | `GET` | `/api/v1/orgs/{org}/robots` | | 200 `{"org", "robots": [{"name"}]}`, paginated (members) |
//! | `DELETE` | `/api/v1/orgs/{org}/robots/{robot}` | | 204 (owners) |
//! | `GET` | `/api/v1/repositories[?namespace=NS]` | | 200 `{"repositories": [{"name", "visibility"}]}`, paginated: those whose visibility you manage |
//! | `PUT` | `/api/v1/repositories/visibility` | `{"repository", "visibility"}` | 200 (the namespace's user or owners) |
//!
//! Administrators only:
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | `GET` | `/api/v1/users` | | 200 `{"users": [{"name", "admin", "robot_of"}]}`, paginated |
//! | `POST` | `/api/v1/users` | `{"name", "password" \| "password_hash", "admin"?}` | 201 user |
//! | `DELETE` | `/api/v1/users/{user}[?delete_repositories=true]` | | 204; 409 `OWNS_REPOSITORIES` |
//! | `PUT` | `/api/v1/users/{user}/password` | `{"password" \| "password_hash"}` | 204 |
//! | `GET` | `/api/v1/orgs` | | 200 `{"orgs": [{"name"}]}`, paginated |
//! | `POST` | `/api/v1/orgs` | `{"name", "owner"}` | 201 org |
//! | `DELETE` | `/api/v1/orgs/{org}[?delete_repositories=true]` | | 204; 409 `OWNS_REPOSITORIES` |
//! | `DELETE` | `/api/v1/repositories?repository=NAME` | | 204 |
//! | `POST` | `/api/v1/gc[?dry_run=true]` | | 200 the collection's report (`gc::collector::Report`) |
//! | `GET` | `/api/v1/usage[?namespace=NS]` | | 200 `{"stored", "namespaces": [{"namespace", "bytes", "blobs", "quota"}], "repositories": [{"repository", "bytes", "blobs"}], "gc_queue_length"}` |
//! | `GET` | `/api/v1/quotas` | | 200 `{"quotas": [{"namespace", "bytes"}]}` |
//! | `PUT` | `/api/v1/quotas/{namespace}` | `{"bytes"}` | 200 `{"namespace", "bytes", "used"}` |
//! | `DELETE` | `/api/v1/quotas/{namespace}` | | 204; 404 |
//! | `GET` | `/api/v1/keys` | | 200 `{"active", "kids", "keys", "root_pem"}` |
//! | `POST` | `/api/v1/keys/rotate` | | 200 `{"kid", "kids"}` |
//! | `DELETE` | `/api/v1/keys/{kid}` | | 204; 409 `KEY_ACTIVE`, `KEY_IN_USE` (saying when it becomes possible) |

use std::net::{IpAddr, Ipv4Addr};

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use berth_core::challenge::Challenge;
use berth_core::token::format_rfc3339;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::router::AppState;
use crate::Registry;
use crate::auth::authenticate::{AuthnError, Credential, basic_credentials};
use crate::clock::now_unix;
use crate::identity::secret::REFRESH_TOKEN_PREFIX;
use crate::identity::{IdentityError, User};
use crate::meta::MetaError;
use crate::policy::{self, AccountDenial, Broader, Principal, Reach, Subject};
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

/// The API's routes, with their full `/api/v1/...` paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/user", get(whoami))
        .route("/api/v1/user/password", put(change_own_password))
        .route(
            "/api/v1/user/tokens",
            post(create_own_token).get(list_own_tokens),
        )
        .route("/api/v1/user/tokens/{name}", delete(revoke_own_token))
        .route("/api/v1/users", post(create_user).get(list_users))
        .route("/api/v1/users/{user}", delete(delete_user))
        .route("/api/v1/users/{user}/password", put(set_password))
        .route(
            "/api/v1/users/{user}/tokens",
            post(create_token).get(list_tokens),
        )
        .route("/api/v1/users/{user}/tokens/{name}", delete(revoke_token))
        .route("/api/v1/orgs", post(create_org).get(list_orgs))
        .route("/api/v1/orgs/{org}", delete(delete_org))
        .route("/api/v1/orgs/{org}/members", get(list_members))
        .route(
            "/api/v1/orgs/{org}/members/{user}",
            put(set_member).delete(remove_member),
        )
        .route(
            "/api/v1/orgs/{org}/robots",
            post(create_robot).get(list_robots),
        )
        .route("/api/v1/orgs/{org}/robots/{robot}", delete(delete_robot))
        .route(
            "/api/v1/repositories",
            get(list_repositories).delete(delete_repository),
        )
        .route("/api/v1/repositories/visibility", put(set_visibility))
        .route("/api/v1/gc", post(run_gc))
        .route("/api/v1/usage", get(get_usage))
        .route("/api/v1/quotas", get(list_quotas))
        .route(
            "/api/v1/quotas/{namespace}",
            put(set_quota).delete(remove_quota),
        )
        .route(
            "/api/v1/trust/{namespace}",
            get(list_rules).post(create_rule),
        )
        .route("/api/v1/trust/{namespace}/{name}", delete(delete_rule))
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/events/redeliver", post(redeliver))
        .route("/api/v1/proxies", get(list_proxies).post(create_proxy))
        .route("/api/v1/proxies/{name}", delete(delete_proxy))
        .route("/api/v1/keys", get(get_keys))
        .route("/api/v1/keys/rotate", post(rotate_keys))
        .route("/api/v1/keys/{kid}", delete(retire_key))
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

/// A user or organisation may not take a pull-through cache namespace's
/// name: its repositories are the upstream's.
fn refuse_proxy_namespace(r: &Registry, name: &str) -> Result<(), ApiError> {
    match r.proxies.list().iter().find(|p| p.settings.name == name) {
        Some(proxy) => Err(ApiError::conflict(
            "NAME_TAKEN",
            format!(
                "the name `{name}` is the pull-through cache namespace of {} (users, organisations and caches share one namespace); choose another",
                proxy.settings.origin()
            ),
        )),
        None => Ok(()),
    }
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

    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "DENIED", message)
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

impl ApiError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code (`DENIED`, `NAME_TAKEN`, ...).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// What was wrong and what to do, as the API words it.
    pub fn message(&self) -> &str {
        &self.message
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
            IdentityError::RuleNameTaken { .. } => Self::conflict("RULE_NAME_TAKEN", message),
            IdentityError::RuleLimit { .. } => Self::conflict("RULE_LIMIT", message),
            IdentityError::InvalidPat(_) => {
                Self::new(StatusCode::BAD_REQUEST, "TOKEN_INVALID", message)
            }
            IdentityError::Robot(_) => Self::conflict("ROBOT_ACCOUNT", message),
            IdentityError::OwnsRepositories { .. } | IdentityError::OrgOwnsRepositories { .. } => {
                Self::conflict("OWNS_REPOSITORIES", message)
            }
            IdentityError::LastOwner { .. } => Self::conflict("LAST_OWNER", message),
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
            "no API endpoint at {}; see the Administration section of berth's README",
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

/// Who makes a request: authenticated, not yet judged (the handler asks
/// `policy`). The web interface builds one from a signed-in session
/// (`ui/session.rs`) to call the handlers in-process.
#[derive(Clone)]
pub struct Caller {
    /// Their user name.
    pub name: String,
    /// The address the request came from.
    pub client: IpAddr,
    /// What policy needs to know of them, and of the credential they used.
    pub principal: Principal,
}

/// An administrator making a request: a [`Caller`] that [`policy::administer`] admits.
pub struct Admin {
    /// Their user name.
    pub name: String,
    /// The address the request came from.
    pub client: IpAddr,
}

/// One `berth::audit` line for a change: who, from where, what.
macro_rules! audit {
    ($caller:expr, $action:literal, $($rest:tt)*) => {
        tracing::info!(
            target: "berth::audit",
            actor = %$caller.name,
            client = %$caller.client,
            action = $action,
            $($rest)*
        )
    };
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let r = &app.registry;
        let client = parts
            .extensions
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
        let path = parts.uri.path();
        if let Err(e) = check_origin(r, parts) {
            tracing::info!(target: "berth::audit", client = %client, path, "API refused: foreign Origin");
            return Err(e);
        }
        check_content_type(parts)?;
        let basic = basic_credentials(&parts.headers).ok().flatten();
        let bearer = bearer_token(&parts.headers);
        let credential = match (&basic, bearer) {
            (Some((username, password)), _) => Credential::Password { username, password },
            (None, Some(token)) if token.starts_with(REFRESH_TOKEN_PREFIX) => {
                Credential::RefreshToken(token)
            }
            (None, Some(_)) => {
                return Err(ApiError::unauthorized(
                    r,
                    "the API takes a refresh token (`berth_rt_...`, what `berth login` stores) as \
                     a bearer token, not a registry token from /token; or send HTTP Basic with a \
                     password or personal access token",
                ));
            }
            (None, None) => {
                return Err(ApiError::unauthorized(
                    r,
                    "the API needs credentials: HTTP Basic with a user name and a password or \
                     personal access token, or a refresh token as bearer (berth reads \
                     BERTH_USERNAME and BERTH_PASSWORD, else the login `berth login` stored)",
                ));
            }
        };
        let principal = match r.authn.authenticate(&credential, client, now_unix()).await {
            Ok(Subject::User(principal)) => principal,
            Ok(Subject::Anonymous | Subject::Workload(_))
            | Err(AuthnError::BadCredentials | AuthnError::IdToken(_)) => {
                tracing::info!(target: "berth::audit", client = %client, path, "API refused: bad credentials");
                return Err(ApiError::unauthorized(
                    r,
                    "invalid username, password or token; check BERTH_USERNAME and BERTH_PASSWORD \
                     (a personal access token goes in the password), or log in again with \
                     `berth login` (a stored login ends when it expires or the password changes)",
                ));
            }
            Err(AuthnError::TooManyFailures { retry_after_secs }) => {
                tracing::warn!(target: "berth::audit", client = %client, path, "API refused: rate limited");
                return Err(too_many(retry_after_secs));
            }
            Err(AuthnError::Store(e)) => return Err(e.into()),
        };
        Ok(Caller {
            name: principal.name.clone(),
            client,
            principal,
        })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        Caller::from_request_parts(parts, app).await?.admin()
    }
}

impl Caller {
    /// The caller as an [`Admin`], when [`policy::administer`] admits them
    /// (what the `Admin` extractor asks).
    pub fn admin(&self) -> Result<Admin, ApiError> {
        self.ask(policy::administer(&self.principal))?;
        Ok(Admin {
            name: self.name.clone(),
            client: self.client,
        })
    }

    /// `policy`'s answer as the API's: 403 `DENIED` worded by [`denial`],
    /// and the refusal in the audit log.
    fn ask(&self, decision: Result<(), AccountDenial>) -> Result<(), ApiError> {
        self.decide(decision)
    }

    /// [`Self::ask`] for a decision that answers with a value.
    fn decide<T>(&self, decision: Result<T, AccountDenial>) -> Result<T, ApiError> {
        decision.map_err(|d| {
            let message = denial(&self.principal, &d);
            tracing::info!(target: "berth::audit", subject = %self.name, client = %self.client, "API refused: {message}");
            ApiError::forbidden(message)
        })
    }
}

/// 429 with `Retry-After`.
fn too_many(retry_after_secs: u64) -> ApiError {
    ApiError {
        retry_after_secs: Some(retry_after_secs),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            format!(
                "too many failed attempts; retry in {retry_after_secs} seconds with the right credentials"
            ),
        )
    }
}

/// `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The words of a refusal: what was refused, why, and what to do.
fn denial(principal: &Principal, d: &AccountDenial) -> String {
    let me = &principal.name;
    match d {
        AccountDenial::NotAdministrator => format!(
            "`{me}` is not an administrator; the admin API needs an administrator's credentials"
        ),
        AccountDenial::LimitedAdministratorToken(limits) => format!(
            "this personal access token of `{me}` is limited (actions {}{}); use the password, \
             or a token with pull,push,delete and no repository patterns",
            limits.actions,
            if limits.repositories.is_empty() {
                String::new()
            } else {
                format!(", repositories {}", limits.repositories.join(" "))
            }
        ),
        AccountDenial::PasswordByToken => "a personal access token cannot change the password: a \
             token is a narrower credential than the password it would replace; log in with the \
             password (or the refresh token `berth login` stores) to change it"
            .to_owned(),
        AccountDenial::Robot => format!(
            "`{me}` is a robot account and has no password; its credentials are personal access tokens"
        ),
        AccountDenial::OthersTokens { owner } => format!(
            "`{me}` may manage only their own personal access tokens and those of the robots of \
             organisations they own, not those of `{owner}`"
        ),
        AccountDenial::BroaderThanToken { what, limits } => {
            let why = match what {
                Broader::Actions(beyond) => {
                    format!("it carries {}, not {beyond}", limits.actions)
                }
                Broader::AllRepositories => format!(
                    "it is limited to the repositories {}, and this one is not",
                    limits.repositories.join(" ")
                ),
                Broader::Pattern(pattern) => format!(
                    "`{pattern}` is not within its repositories ({})",
                    limits.repositories.join(" ")
                ),
                Broader::Expiry => format!(
                    "it expires at {}, before this one (ask for fewer `expires_in_days`)",
                    format_rfc3339(limits.expires_at)
                ),
            };
            format!(
                "this request is made with the personal access token `{}`, and a token it \
                 creates or revokes may be no broader than itself: {why}",
                limits.name
            )
        }
        AccountDenial::BeyondRights {
            owner,
            action,
            pattern,
            reach,
        } => {
            let places = match reach {
                Reach::Everywhere => "every repository".to_owned(),
                Reach::Namespaces(list) if list.is_empty() => "no repository".to_owned(),
                Reach::Namespaces(list) => list
                    .iter()
                    .map(|(ns, _)| format!("`{ns}/...`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            match pattern {
                Some(pattern) => format!(
                    "a token of `{owner}` cannot carry {action} on `{pattern}`: `{owner}` may \
                     {action} only in {places}; limit the token to repositories there"
                ),
                None => format!(
                    "a token of `{owner}` cannot carry {action}: `{owner}` may {action} in {places}"
                ),
            }
        }
        AccountDenial::NotOwner { org, role } => match role {
            Some(role) => format!(
                "`{me}` is a {role} of `{org}`, not an owner: only its owners (or an \
                 administrator) manage its members and robots"
            ),
            None => format!(
                "only an owner of the organisation `{org}` (or an administrator) manages its \
                 members and robots, and `{me}` is none"
            ),
        },
        AccountDenial::NotMember { org } => format!(
            "only the members of the organisation `{org}` (or an administrator) see its members \
             and robots, and `{me}` is none"
        ),
        AccountDenial::NotManager { repository } => format!(
            "`{me}` may not set the visibility of `{repository}`: only the user whose namespace \
             it is in, the owners of its organisation, or an administrator may"
        ),
        AccountDenial::NotNamespaceManager { namespace, managed } => format!(
            "`{me}` may list only the repositories of the namespaces they manage ({}), not \
             those of `{namespace}`",
            managed
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        AccountDenial::NotTrustManager { namespace, managed } => format!(
            "`{me}` may not manage the trust rules of `{namespace}`: a namespace's rules are \
             managed by its user, by the owners of its organisation, and by administrators{}",
            if managed.is_empty() {
                String::new()
            } else {
                format!(
                    " (`{me}` manages those of {})",
                    managed
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
        AccountDenial::TokenTooNarrow { scope, limits } => format!(
            "the personal access token `{}` carries {} on {}: this needs pull,push,delete on all \
             of `{scope}`; use the password, or a token that carries them",
            limits.name,
            limits.actions,
            if limits.repositories.is_empty() {
                "every repository".to_owned()
            } else {
                limits.repositories.join(" ")
            }
        ),
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

/// What follows every deletion of users, organisations or repositories:
/// the revocation records it wrote take effect here at once, remembered
/// credential checks are dropped (with `forget_credentials`), and the staged
/// bytes of the upload sessions it ended are discarded.
async fn settle_deletion(r: &Registry, staging: &[String], forget_credentials: bool) {
    reload_revocations(r).await;
    if forget_credentials {
        r.authn.forget_remembered();
    }
    for staging in staging {
        if let Err(e) = r.blobs.abort(staging).await {
            tracing::warn!(error = %e, staging, "cannot discard the staged bytes of a deleted upload session");
        }
    }
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

/// The request's id (`X-Request-Id`), which events of its changes name.
fn request_id(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(crate::http::router::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `n` and `last` of a listing (`n` at most the registry's page limit; the
/// limit when absent).
fn page(r: &Registry, query: Option<&str>) -> Result<(u32, Option<String>), ApiError> {
    crate::http::pagination(query, r.config.max_page).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "PAGINATION_NUMBER_INVALID",
            e.to_string(),
        )
    })
}

/// A 200 listing: `body`, and `Link: <path?n=..&last=..>; rel="next"` when
/// the page is full (`names` are the page's entries, in order; `extra` are
/// query parameters the next page keeps).
fn listing(body: &Value, path: &str, extra: &str, n: u32, names: &[String]) -> Response {
    let mut response = json_response(StatusCode::OK, body);
    let next = crate::http::next_after(names, n);
    let path = if extra.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{extra}")
    };
    if let Some(next) = next {
        let page = berth_core::pagination::Pagination::new(Some(n), Some(next)).to_query();
        let sep = if path.contains('?') { '&' } else { '?' };
        let link = berth_core::pagination::Link::next(&format!("{path}{sep}{page}")).to_string();
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

/// Sets a user's password hash and ends the logins made with the old one:
/// its refresh tokens and the registry tokens issued from them or from the
/// password (the store records the revocation), and the credential checks
/// this process remembers. One path for a change made by the user and one
/// made by an administrator.
async fn apply_password(r: &Registry, user: &str, hash: &str) -> Result<(), ApiError> {
    r.identity.set_password(user, hash).await?;
    reload_revocations(r).await;
    r.authn.forget_remembered();
    Ok(())
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

// The handlers, one module per resource (declared after `audit!`, which they use).
mod account;
mod events;
mod keys;
mod orgs;
mod proxies;
mod repos;
mod storage;
mod tokens;
mod trust;
mod users;

use self::account::{change_own_password, whoami};
use self::events::{list_events, redeliver};
use self::keys::{get_keys, retire_key, rotate_keys};
use self::orgs::{
    create_org, create_robot, delete_org, delete_robot, list_members, list_orgs, list_robots,
    remove_member, set_member,
};
use self::proxies::{create_proxy, delete_proxy, list_proxies};
use self::repos::{delete_repository, list_repositories, set_visibility};
use self::storage::{get_usage, list_quotas, remove_quota, run_gc, set_quota};
use self::tokens::{
    create_own_token, create_token, list_own_tokens, list_tokens, revoke_own_token, revoke_token,
};
use self::trust::{create_rule, delete_rule, list_rules};
use self::users::{create_user, delete_user, list_users, set_password};

/// The handlers the web interface calls in-process with a signed-in
/// session's [`Caller`] (`ui/api.rs`): a page's change goes through the same
/// policy questions, checks, audit lines and revocations as the API's.
pub(crate) mod handlers {
    pub(crate) use super::account::change_own_password;
    pub(crate) use super::keys::{get_keys, rotate_keys};
    pub(crate) use super::orgs::{
        create_robot, delete_robot, list_members, list_orgs, list_robots, remove_member, set_member,
    };
    pub(crate) use super::repos::set_visibility;
    pub(crate) use super::storage::get_usage;
    pub(crate) use super::tokens::{create_own_token, list_own_tokens, revoke_own_token};
    pub(crate) use super::users::{create_user, list_users};
}

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
