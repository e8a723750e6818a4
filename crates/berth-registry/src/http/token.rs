//! The token service on the registry's own host: `GET /token`, `POST /token`
//! (OAuth2), and `GET /token/jwks.json`.
//!
//! Rules (PROTOCOL.md sections 1 and 3):
//! - the grant is the request intersected with what policy allows; a partial
//!   or empty grant is 200, never 403, and no scope at all gives a valid token
//!   with empty `access` (good for `/v2/` and the catalog);
//! - only wrong credentials are 401 (`WWW-Authenticate: Basic realm=...`);
//!   a scope that does not parse, or another `service`, is 400 naming it;
//! - a request names at most [`MAX_SCOPES`] resource scopes (after merging
//!   repeats), of at most [`MAX_SCOPE_BYTES`] of text, anonymous or not:
//!   beyond, 400 `invalid_request` naming the limit, before credentials are
//!   checked or a repository looked up. Clients ask for the 1 to 3 scopes of
//!   one operation (docker, containerd, skopeo, `berth copy`); 1,000-scope
//!   requests made 104 KB tokens and one metadata lookup per scope;
//! - a workload's OpenID Connect ID token is exchanged (`trust/`) through the
//!   RFC 8693 grant (`POST`, `grant_type=...:token-exchange`; refused: 400
//!   `invalid_grant` naming why) or as HTTP Basic `oidc:<ID token>` (what
//!   `docker login -u oidc` sends; refused: 401 naming why); either way the
//!   grant is requested ∩ what the accepting rules give, and a refusal
//!   counts against the client address' failure limit as a wrong password;
//! - the answer always has `token` = `access_token`, `expires_in` (>= 60) and
//!   `issued_at`; `scope` on POST; for a token exchange also
//!   `issued_token_type` and `token_type`; `refresh_token` when offline access was
//!   asked for by a caller authenticated with a password or refresh token (not
//!   with a personal access token, whose limits a refresh token would shed).

use std::net::IpAddr;
use std::time::Duration;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::name::RepositoryName;
use berth_core::oci_error::{ErrorBody, ErrorCode, ErrorInfo};
use berth_core::scope::{ResourceType, Scopes};
use berth_core::token::{ACCESS_TOKEN_TYPE, Grant, TokenRequest, TokenResponse};
use serde_json::json;

use super::router::AppState;
use crate::Registry;
use crate::auth::authenticate::{AuthnError, Credential, basic_credentials};
use crate::auth::jwt::Provenance;
use crate::clock::now_unix;
use crate::identity::secret::generate_refresh_token;
use crate::policy::{self, Subject};
use crate::server::proxy::ClientAddr;
use crate::trust::{OIDC_USERNAME, looks_like_id_token};

/// How long a refresh token (offline access) stays valid.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// The largest `POST /token` form accepted.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The most resource scopes one token request may name.
pub const MAX_SCOPES: usize = 100;

/// The most scope text one token request may name, in bytes (the scopes as
/// printed, space-separated): 100 scopes of the longest repository names
/// (255 characters) with every action take ~29 KB.
pub const MAX_SCOPE_BYTES: usize = 32 * 1024;

/// Docker token spec, "Requesting a Token": `GET /token?service=&scope=...`
/// with optional Basic credentials.
pub async fn get_token(
    State(app): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let request = match TokenRequest::from_query(query.as_deref().unwrap_or("")) {
        Ok(request) => request,
        Err(e) => return bad_request("invalid_request", &e.to_string()),
    };
    let Ok(basic) = basic_credentials(&headers) else {
        return unauthorized(&app.registry);
    };
    issue(&app.registry, request, basic, client, false).await
}

/// Docker token spec, "OAuth2 Token": `POST /token` with a form body,
/// `grant_type=password` or `grant_type=refresh_token`.
pub async fn post_token(
    State(app): State<AppState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if body.len() > MAX_FORM_BYTES {
        return bad_request("invalid_request", "the form is larger than 64 KiB");
    }
    let Ok(form) = std::str::from_utf8(&body) else {
        return bad_request("invalid_request", "the form is not UTF-8");
    };
    let request = match TokenRequest::from_form(form) {
        Ok(request) => request,
        // RFC 6749 section 5.2: a grant type the server does not know is
        // `unsupported_grant_type`; anything else wrong with the form is
        // `invalid_request` (the message quotes the form, secrets redacted).
        Err(e) if e.reason().starts_with("unsupported grant_type") => {
            return bad_request("unsupported_grant_type", &e.to_string());
        }
        Err(e) => return bad_request("invalid_request", &e.to_string()),
    };
    let Ok(basic) = basic_credentials(&headers) else {
        return unauthorized(&app.registry);
    };
    issue(&app.registry, request, basic, client, true).await
}

/// `GET /token/jwks.json`: the public keys tokens are signed with.
pub async fn get_jwks(State(app): State<AppState>) -> Response {
    match &app.registry.keys {
        Some(keys) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            keys.jwks().to_string(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn issue(
    r: &Registry,
    request: TokenRequest,
    basic: Option<(String, String)>,
    client: IpAddr,
    post: bool,
) -> Response {
    let Some(tokens) = &r.tokens else {
        return bad_request(
            "invalid_request",
            "this registry runs without access control and issues no tokens",
        );
    };
    if let Some(service) = &request.service
        && service != &r.config.service
    {
        return bad_request(
            "invalid_request",
            &format!(
                "service {service:?} is not this registry's; use service={:?}",
                r.config.service
            ),
        );
    }
    if let Some(message) = scope_limit_exceeded(&request.scopes) {
        return bad_request("invalid_request", &message);
    }
    let now = now_unix();
    // Read before anything the grant depends on: the token then carries a
    // generation no later than the state it was granted from.
    let generation = match crate::auth::revocation::generation(r).await {
        Ok(generation) => generation,
        Err(e) => return crate::error::RegistryError::from(e).into_response(),
    };
    let exchange = matches!(request.grant, Some(Grant::IdToken { .. }));
    let namespaces = || namespaces_of(&request.scopes);
    let credential = match (&request.grant, &basic) {
        (Some(Grant::Password { username, password }), _) => {
            Some(password_or_id_token(username, password, namespaces))
        }
        (Some(Grant::RefreshToken { refresh_token }), _) => {
            Some(Credential::RefreshToken(refresh_token))
        }
        (Some(Grant::IdToken { id_token }), _) => Some(Credential::IdToken {
            token: id_token,
            namespaces: namespaces(),
        }),
        (None, Some((username, password))) => {
            Some(password_or_id_token(username, password, namespaces))
        }
        (None, None) => None,
    };
    let subject = match credential {
        None => Subject::Anonymous,
        Some(credential) => match r.authn.authenticate(&credential, client, now).await {
            Ok(subject) => subject,
            Err(AuthnError::BadCredentials) => {
                tracing::info!(
                    target: "berth::audit",
                    client = %client,
                    requested = %request.scopes,
                    "token refused: bad credentials"
                );
                r.metrics.token_refused();
                return unauthorized(r);
            }
            Err(AuthnError::IdToken(e)) => {
                r.metrics.token_refused();
                return if exchange {
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &e.to_string())
                } else {
                    unauthorized_because(r, &e.to_string())
                };
            }
            Err(AuthnError::TooManyFailures { retry_after_secs }) => {
                tracing::warn!(target: "berth::audit", client = %client, "token refused: rate limited");
                r.metrics.token_refused();
                return crate::error::RegistryError::TooManyRequests { retry_after_secs }
                    .into_response();
            }
            Err(AuthnError::Store(e)) => {
                tracing::error!(error = %e, "identity store failed during authentication");
                return crate::error::RegistryError::Internal(e.to_string()).into_response();
            }
        },
    };

    let granted = match grant(r, &subject, &request.scopes).await {
        Ok(granted) => granted,
        Err(e) => return e.into_response(),
    };
    let lifetime = r.config.effective_token_lifetime().as_secs();
    let provenance = Provenance {
        pat: policy::token_limits(&subject).map(|l| l.token_id),
        generation: Some(generation),
        trust: match &subject {
            Subject::Workload(w) => w.grants.iter().map(|g| g.rule_id).collect(),
            _ => Vec::new(),
        },
    };
    let issued = match tokens.issue_for(subject.name(), &provenance, &granted, lifetime, now) {
        Ok(issued) => issued,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a token");
            return crate::error::RegistryError::Internal(e.to_string()).into_response();
        }
    };
    tracing::info!(
        target: "berth::audit",
        subject = subject.name(),
        client = %client,
        requested = %request.scopes,
        granted = %granted,
        "token issued"
    );
    r.metrics.token_issued();
    let mut response = TokenResponse::issued(issued.token, lifetime, now);
    if post {
        response.scope = Some(granted.to_string());
    }
    // A refresh token logs its user in without limits: never one for a
    // personal access token, which is the long-lived credential itself.
    if request.offline
        && let Subject::User(principal) = &subject
        && principal.token.is_none()
    {
        match new_refresh_token(r, &principal.name, now).await {
            Ok(token) => response.refresh_token = Some(token),
            Err(e) => return e.into_response(),
        }
    }
    // RFC 8693 section 2.2.1: what an exchange issued, and how to use it.
    let body = if exchange {
        response.to_json_with(&[
            ("issued_token_type", ACCESS_TOKEN_TYPE),
            ("token_type", "Bearer"),
        ])
    } else {
        response.to_json()
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// What is wrong with a request over [`MAX_SCOPES`] or [`MAX_SCOPE_BYTES`].
fn scope_limit_exceeded(scopes: &Scopes) -> Option<String> {
    let count = scopes.len();
    if count > MAX_SCOPES {
        return Some(format!(
            "the request asks for {count} scopes; a token request may ask for at most \
             {MAX_SCOPES} (one operation needs 1 to 3): ask for fewer scopes per request"
        ));
    }
    let text = scopes.to_string().len();
    (text > MAX_SCOPE_BYTES).then(|| {
        format!(
            "the scopes asked for are {text} bytes long; a token request may ask for at most \
             {MAX_SCOPE_BYTES} bytes of scopes: ask for fewer scopes per request"
        )
    })
}

/// requested ∩ policy, with the facts of every requested repository.
async fn grant(
    r: &Registry,
    subject: &Subject,
    requested: &Scopes,
) -> Result<Scopes, crate::error::RegistryError> {
    let mut facts = std::collections::HashMap::new();
    for scope in requested.iter() {
        if scope.resource_type() != &ResourceType::Repository {
            continue;
        }
        if let Ok(name) = RepositoryName::parse(scope.name()) {
            let known = r.repository_facts(&name).await?;
            facts.insert(name, known);
        }
    }
    Ok(policy::grant(subject, requested, |name| {
        facts.get(name).copied().flatten()
    }))
}

async fn new_refresh_token(
    r: &Registry,
    username: &str,
    now: i64,
) -> Result<String, crate::error::RegistryError> {
    let internal = |e: String| crate::error::RegistryError::Internal(e);
    let user = r
        .identity
        .user_by_name(username)
        .await
        .map_err(|e| internal(e.to_string()))?
        .ok_or_else(|| internal(format!("user {username} vanished while issuing a token")))?;
    let (secret, hash) = generate_refresh_token().map_err(|e| internal(e.to_string()))?;
    let lifetime = i64::try_from(REFRESH_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
    r.identity
        .create_refresh_token(user.id, &hash, now.saturating_add(lifetime))
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(secret.expose().to_owned())
}

/// Basic credentials as a password, or as a workload's ID token (for the
/// requested repositories' namespaces) when the username is
/// [`OIDC_USERNAME`] and the password a JWT.
fn password_or_id_token<'a>(
    username: &'a str,
    password: &'a str,
    namespaces: impl FnOnce() -> Vec<String>,
) -> Credential<'a> {
    if username == OIDC_USERNAME && looks_like_id_token(password) {
        Credential::IdToken {
            token: password,
            namespaces: namespaces(),
        }
    } else {
        Credential::Password { username, password }
    }
}

/// The namespaces of the repositories `scopes` name, sorted, each once.
fn namespaces_of(scopes: &Scopes) -> Vec<String> {
    let mut namespaces: Vec<String> = scopes
        .iter()
        .filter(|s| *s.resource_type() == ResourceType::Repository)
        .filter_map(|s| RepositoryName::parse(s.name()).ok())
        .map(|name| name.namespace().to_owned())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    namespaces
}

/// 401 for wrong credentials: a Basic challenge and an UNAUTHORIZED body.
fn unauthorized(r: &Registry) -> Response {
    unauthorized_because(
        r,
        "invalid username, password or token; for a personal access token use it as the password",
    )
}

/// 401 with a Basic challenge and an UNAUTHORIZED body saying `why`.
fn unauthorized_because(r: &Registry, why: &str) -> Response {
    let body = ErrorBody::single(ErrorInfo::new(ErrorCode::Unauthorized, why)).to_json();
    let challenge = berth_core::challenge::Challenge::basic(&r.config.service).to_string();
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// 400 in both the OAuth2 shape (`error`, `error_description`: what OAuth2
/// clients read) and the registry shape (`errors`: what registry clients read).
fn bad_request(error: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

/// An OAuth2 error (RFC 6749 section 5.2) that registry clients read too.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let code = if error == "invalid_grant" {
        ErrorCode::Unauthorized
    } else {
        ErrorCode::Unsupported
    };
    let body = json!({
        "error": error,
        "error_description": description,
        "errors": [{"code": code.as_str(), "message": description}],
    });
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
