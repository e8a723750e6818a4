//! A local OpenID Connect issuer for berth's tests and benchmarks, shaped like
//! the issuers of GitHub Actions (`https://token.actions.githubusercontent.com`)
//! and GitLab CI (`https://gitlab.com`), served on loopback HTTP.
//!
//! What it serves, on `http://127.0.0.1:<port>` (the issuer URL, [`Issuer::url`]):
//! - `GET /.well-known/openid-configuration`: the discovery document
//!   (`issuer`, `jwks_uri`, `id_token_signing_alg_values_supported`, ...).
//! - `GET /jwks`: the published keys, `{"keys": [JWK, ...]}`, each with `kid`,
//!   `kty`, `alg`, `use: sig` and RSA `n`/`e` or EC `crv`/`x`/`y`.
//! - `GET /actions/token?api-version=2.0&audience=AUD`: GitHub Actions' ID
//!   token request endpoint (what `ACTIONS_ID_TOKEN_REQUEST_URL` names), with
//!   `Authorization: bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>`; answers
//!   `{"count": 1, "value": JWT}`, or 401 for another request token.
//!
//! It starts with two published keys: an RS256 key (the active one, which
//! [`Issuer::mint`] signs with) and an ES256 key. [`Issuer::rotate`] replaces
//! the active key; [`Issuer::set_down`] makes discovery and JWKS answer 503;
//! [`Issuer::fetches`] counts their requests. The `forge_*` and
//! [`Issuer::mint_unknown_kid`] methods make the tokens a verifier must refuse.
//!
//! Claim builders ([`Issuer::github_claims`], [`Issuer::gitlab_claims`]) give
//! the platforms' claim names and value shapes; a test changes the returned
//! JSON before minting (`claims["exp"] = json!(0)`).

#![expect(
    clippy::expect_used,
    reason = "a test fixture reports a broken setup (no loopback, a key that does not generate) by panicking"
)]

mod claims;
mod keys;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use claims::{GITHUB_LIFETIME_SECS, GITLAB_LIFETIME_SECS, now};

use keys::SigningKey;

/// The repository and ref the Actions endpoint mints for until
/// [`Issuer::set_actions_repository`] says otherwise.
pub const DEFAULT_ACTIONS_REPOSITORY: (&str, &str) = ("acme/app", "refs/heads/main");

/// A running issuer. Dropping it stops the server.
pub struct Issuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

/// What the server and the handle share.
struct Shared {
    url: String,
    keys: Mutex<Published>,
    /// Signs [`Issuer::mint_unknown_kid`]'s tokens; never published.
    rogue: SigningKey,
    down: AtomicBool,
    discovery_fetches: AtomicU64,
    jwks_fetches: AtomicU64,
    actions_request_token: String,
    actions_subject: Mutex<(String, String)>,
}

/// The published keys.
struct Published {
    /// The RS256 key [`Issuer::mint`] signs with.
    active: Arc<SigningKey>,
    /// The ES256 key [`Issuer::mint_es256`] signs with.
    es256: Arc<SigningKey>,
}

impl Shared {
    fn keys(&self) -> MutexGuard<'_, Published> {
        // A panicking test thread leaves the keys as they were: still valid.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn active(&self) -> Arc<SigningKey> {
        Arc::clone(&self.keys().active)
    }
}

impl Issuer {
    /// Generates the keys and serves on `127.0.0.1:0` in a task of the
    /// current tokio runtime.
    pub async fn start() -> Self {
        let (active, es256, rogue) = tokio::task::spawn_blocking(|| {
            (
                SigningKey::generate_rs256(),
                SigningKey::generate_es256(),
                SigningKey::generate_rs256(),
            )
        })
        .await
        .expect("key generation does not panic");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding loopback");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            url: format!("http://{addr}"),
            keys: Mutex::new(Published {
                active: Arc::new(active),
                es256: Arc::new(es256),
            }),
            rogue,
            down: AtomicBool::new(false),
            discovery_fetches: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            actions_request_token: format!("actions-{}", uuid::Uuid::new_v4().simple()),
            actions_subject: Mutex::new((
                DEFAULT_ACTIONS_REPOSITORY.0.to_owned(),
                DEFAULT_ACTIONS_REPOSITORY.1.to_owned(),
            )),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/actions/token", get(actions_token))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // Ends when the handle is dropped (the task is aborted).
            let _ = axum::serve(listener, router).await;
        });
        Self {
            shared,
            addr,
            server,
        }
    }

    /// The issuer URL, `http://127.0.0.1:<port>` (no trailing slash): the
    /// `iss` of its tokens and the `issuer` of its discovery document.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `kid` of the active RS256 key.
    pub fn active_kid(&self) -> String {
        self.shared.active().kid.clone()
    }

    /// The `kid` of the published ES256 key.
    pub fn es256_kid(&self) -> String {
        self.shared.keys().es256.kid.clone()
    }

    /// The active RS256 key's public key as SPKI PEM (`BEGIN PUBLIC KEY`).
    pub fn active_public_key_pem(&self) -> String {
        self.shared.active().public_pem.clone()
    }

    /// `claims` signed RS256 with the active key; the header has its `kid`
    /// and `typ: JWT`.
    pub fn mint(&self, claims: Value) -> String {
        self.shared.active().sign(&claims)
    }

    /// `claims` signed ES256 with the published P-256 key.
    pub fn mint_es256(&self, claims: Value) -> String {
        let key = Arc::clone(&self.shared.keys().es256);
        key.sign(&claims)
    }

    /// `claims` signed RS256 with a key this issuer never publishes (its
    /// `kid` is in the header): no refresh of the JWKS finds it.
    pub fn mint_unknown_kid(&self, claims: Value) -> String {
        self.shared.rogue.sign(&claims)
    }

    /// `claims` under `{"alg": "none"}` (with the active `kid`) and an empty
    /// signature.
    pub fn forge_alg_none(&self, claims: Value) -> String {
        self.shared.active().forge_alg_none(&claims)
    }

    /// The key-confusion attack: `claims` with header `alg: HS256` and the
    /// active key's `kid`, MACed with HMAC-SHA256 keyed with the bytes of the
    /// active RSA public key's PEM ([`Self::active_public_key_pem`]).
    pub fn forge_hs256_with_public_key(&self, claims: Value) -> String {
        self.shared.active().forge_hs256(&claims)
    }

    /// Generates a new RS256 key, makes it the active one and publishes it
    /// in place of the old one (which is no longer in `/jwks`); returns its
    /// `kid`. The ES256 key stays.
    pub fn rotate(&self) -> String {
        let key = Arc::new(SigningKey::generate_rs256());
        let kid = key.kid.clone();
        self.shared.keys().active = key;
        kid
    }

    /// While `down`, discovery and `/jwks` answer 503 (the Actions endpoint
    /// keeps working).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// How many requests discovery and `/jwks` have had, answered or not
    /// (503 while down included).
    pub fn fetches(&self) -> (u64, u64) {
        (
            self.shared.discovery_fetches.load(Ordering::SeqCst),
            self.shared.jwks_fetches.load(Ordering::SeqCst),
        )
    }

    /// GitHub Actions-shaped claims for `repository` (`owner/repo`) at
    /// `git_ref` (`refs/heads/main`, `refs/tags/v1`) and `audience`; `iss`
    /// is [`Self::url`], `iat` = `nbf` = now, `exp` = now + 300 s.
    pub fn github_claims(&self, repository: &str, git_ref: &str, audience: &str) -> Value {
        claims::github(self.url(), repository, git_ref, audience)
    }

    /// GitLab CI-shaped claims for `project_path` (`group/project`) at
    /// `git_ref` (a branch name such as `main`, or `refs/heads/main`, or
    /// `refs/tags/v1` for a tag) and `audience`; `iss` is [`Self::url`],
    /// `iat` = `nbf` = now, `exp` = now + 300 s.
    pub fn gitlab_claims(&self, project_path: &str, git_ref: &str, audience: &str) -> Value {
        claims::gitlab(self.url(), project_path, git_ref, audience)
    }

    /// Sets the repository and ref of the tokens the Actions endpoint mints
    /// (initially [`DEFAULT_ACTIONS_REPOSITORY`]).
    pub fn set_actions_repository(&self, repository: &str, git_ref: &str) {
        *self
            .shared
            .actions_subject
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (repository.to_owned(), git_ref.to_owned());
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL`:
    /// `http://127.0.0.1:<port>/actions/token?api-version=2.0`; clients append
    /// `&audience=<aud>` as GitHub's toolkit does.
    pub fn actions_request_url(&self) -> String {
        format!("{}/actions/token?api-version=2.0", self.url())
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: the bearer token the Actions
    /// endpoint wants.
    pub fn actions_request_token(&self) -> &str {
        &self.shared.actions_request_token
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.shared.url)
            .finish()
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"message": "the issuer is down (set_down)"})),
    )
        .into_response()
}

/// `GET /.well-known/openid-configuration`, as GitHub's issuer answers it.
async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if shared.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    Json(json!({
        "issuer": shared.url,
        "jwks_uri": format!("{}/jwks", shared.url),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": [
            "sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "ref_type",
            "ref_protected", "sha", "repository", "repository_id", "repository_owner",
            "repository_owner_id", "repository_visibility", "run_id", "run_number",
            "run_attempt", "runner_environment", "actor", "actor_id", "workflow",
            "workflow_ref", "workflow_sha", "job_workflow_ref", "job_workflow_sha",
            "event_name", "head_ref", "base_ref", "environment",
        ],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "scopes_supported": ["openid"],
    }))
    .into_response()
}

/// `GET /jwks`: the active RS256 key and the ES256 key.
async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if shared.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    let keys = {
        let published = shared.keys();
        vec![published.active.jwk.clone(), published.es256.jwk.clone()]
    };
    Json(json!({ "keys": keys })).into_response()
}

/// `GET /actions/token?api-version=2.0&audience=AUD`: GitHub Actions' ID
/// token request. Without `audience` the token's `aud` is the repository
/// owner's URL (`https://github.com/<owner>`), GitHub's default.
async fn actions_token(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if presented != Some(shared.actions_request_token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    let (repository, git_ref) = shared
        .actions_subject
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let audience = match query.get("audience") {
        Some(audience) => audience.clone(),
        None => {
            let owner = repository.split('/').next().unwrap_or(&repository);
            format!("https://github.com/{owner}")
        }
    };
    let claims = claims::github(&shared.url, &repository, &git_ref, &audience);
    let token = shared.active().sign(&claims);
    Json(json!({"count": 1, "value": token})).into_response()
}
