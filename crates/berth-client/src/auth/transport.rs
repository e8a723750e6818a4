//! The authenticated transport: sends a request to one registry, answers its
//! challenges, follows redirects by hand, and retries within fixed bounds.
//!
//! Rules kept here (PROTOCOL.md sections 2, 3 and 7):
//! - `Authorization` goes only to the registry's own origin (scheme, host,
//!   port); a redirect to any other origin (object storage, a CDN) drops it,
//!   for the rest of that request. Redirects are followed here, at most 10.
//! - A token realm must be https unless the registry is on loopback or
//!   configured insecure: Basic credentials travel to the realm.
//! - One re-authentication per request, and only when it yields a token other
//!   than the one refused. A `401` with `error="invalid_token"` (or no error)
//!   refuses the token sent; so does a `400`/`403` whose body says the token
//!   expired (ECR). A delete refused under `delete` retries once under `*`.
//!
//! Token requests (PROTOCOL.md section 3), by credential:
//! - none: `GET realm?service=&scope=` without `Authorization`;
//! - a password: `GET` with Basic credentials; with
//!   [`TransportOptions::password_grant`], first `POST` with
//!   `grant_type=password`, and on 404, 405, 401 or 400 (no OAuth2 there:
//!   GCR 404, Artifactory 401, ACR 400, as containerd's
//!   `remotes/docker/authorizer.go` lists them) the `GET`, which that realm
//!   then gets directly for the rest of the transport's life;
//! - an identity (refresh) token: `POST` with `grant_type=refresh_token`,
//!   and nothing else. A 401, or a 400 `invalid_grant` (RFC 6749 section
//!   5.2), means the login expired or was revoked; a 404, 405 or other 400
//!   means the service has no refresh-token grant. Neither falls back to a
//!   `GET`: docker (distribution's `registry/client/auth/session.go`
//!   `fetchToken`) and containers/image (`getBearerTokenOAuth2`) send an
//!   identity token only by `POST`. containerd alone retries by `GET` with the
//!   token as a Basic password under an empty user name, which no registry
//!   documents accepting (ACR takes its refresh tokens as a password only
//!   under the user `00000000-0000-0000-0000-000000000000`, and offers the
//!   `POST` anyway; berth's `GET` takes passwords and personal access tokens
//!   only): it would hand a long-lived secret to an endpoint that cannot use
//!   it. The error says to log in again instead.
//! - a CI job's ID token, the password of the user `oidc`: as a password;
//!   refused (401), the error says to log in again with a fresh one, since
//!   ID tokens live minutes (`workload.rs`).
//!
//! [`Transport::offline_token`] asks for a refresh token (`GET` with
//! `offline_token=true`, as `docker login` does) for `berth login` to store.

use std::collections::HashSet;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_core::reference::Registry;
use berth_core::token::Grant;
use berth_core::{
    Action, Challenges, ErrorBody, ResourceType, Scopes, TokenRequest, TokenResponse,
};
use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};

use super::cache::{CacheKey, CachedToken, Need, TokenCache, jwt_payload};
use super::error::AuthError;
use super::scopes::{DeleteAction, Operation, relevant_hint, request_scopes};
use super::trace::{AuthorizationKind, Event, GrantKind, Observer};
use super::workload::OIDC_USERNAME;
use crate::credentials::Credential;

/// The most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;
/// The most bytes of an error body read (enough for any OCI error body).
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;
/// The most bytes of a token response read.
pub(super) const MAX_TOKEN_BODY: usize = 1024 * 1024;
/// The `client_id` sent to token services.
pub(super) const CLIENT_ID: &str = "berth";

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    /// Plain HTTP: `Some(true)` always, `Some(false)` never, `None` only for a
    /// registry on loopback (as docker treats `127.0.0.0/8`) without extra CA
    /// certificates. An insecure registry may also name a plain-HTTP realm.
    pub insecure: Option<bool>,
    /// PEM files of extra CA certificates to trust, besides the system's
    /// (see [`crate::settings`] for where they are found).
    pub ca_files: Vec<PathBuf>,
    /// A token cache to share between clients (default: one per transport).
    pub cache: Option<Arc<TokenCache>>,
    /// The `User-Agent` (default `berth/<version>`).
    pub user_agent: Option<String>,
    /// The connect timeout (default 30 s).
    pub connect_timeout: Option<Duration>,
    /// Receives each step (requests, challenges, scopes, tokens), without
    /// secrets: for verbose output and `berth auth explain`.
    pub observer: Option<Observer>,
    /// Ask for tokens with the OAuth2 password grant (`POST`) before the
    /// `GET` with Basic credentials (default: `GET` only). A realm that
    /// answers the `POST` 404, 405, 401 or 400 is asked by `GET`, and by
    /// `GET` only from then on.
    pub password_grant: bool,
}

/// Times an idempotent request (`GET`, `HEAD`, `DELETE`, `PUT`) without a
/// streamed body is sent again after a network failure (a refused or reset
/// connection, an answer cut off), waiting 100 ms, 300 ms, then 900 ms.
pub const NETWORK_RETRIES: u32 = 3;

/// A stream of body bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Opens a streamed body from its first byte; called again for each attempt
/// (a retry after a refused token, a 307 redirect), so a body of any size is
/// never held in memory to be resent.
pub type OpenStream = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<ByteStream, std::io::Error>> + Send>>
        + Send
        + Sync,
>;

/// A request body.
#[derive(Clone)]
pub enum Body {
    /// Bytes in memory (manifests, chunks, forms).
    Bytes(Bytes),
    /// A stream of `length` bytes, opened anew for each attempt.
    Stream {
        /// The exact length, sent as `Content-Length`.
        length: u64,
        /// Opens the stream.
        open: OpenStream,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(bytes) => write!(f, "Body::Bytes({} bytes)", bytes.len()),
            Self::Stream { length, .. } => write!(f, "Body::Stream({length} bytes)"),
        }
    }
}

impl Body {
    /// The body for one attempt.
    async fn attempt(&self) -> Result<reqwest::Body, std::io::Error> {
        match self {
            Self::Bytes(bytes) => Ok(reqwest::Body::from(bytes.clone())),
            Self::Stream { open, .. } => Ok(reqwest::Body::wrap_stream(open().await?)),
        }
    }

    /// The `Content-Length` to announce for a stream (hyper would otherwise
    /// send it chunked, which some registries refuse).
    fn length(&self) -> Option<u64> {
        match self {
            Self::Bytes(_) => None,
            Self::Stream { length, .. } => Some(*length),
        }
    }
}

/// A request to send. Bodies are either in memory or reopenable streams, so
/// that retries can resend them.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL.
    pub url: Url,
    /// Headers other than `Authorization`.
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<Body>,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets an in-memory body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(Body::Bytes(body.into()));
        self
    }

    /// Sets a streamed body of `length` bytes, opened by `open` for each
    /// attempt.
    pub fn stream(mut self, length: u64, open: OpenStream) -> Self {
        self.body = Some(Body::Stream { length, open });
        self
    }
}

/// The registry's final answer to a request, after authentication.
#[derive(Debug)]
pub enum Reply {
    /// A status below 400; the body is not read yet.
    Success(reqwest::Response),
    /// A status of 400 or more; the body is read (at most 64 KiB).
    Failure(Failure),
}

/// A failed answer, read.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// The body (truncated at 64 KiB).
    pub body: Bytes,
}

impl Failure {
    async fn read(response: reqwest::Response) -> Result<Self, AuthError> {
        let status = response.status();
        let headers = response.headers().clone();
        let url = response.url().clone();
        let body = read_limited(response, MAX_ERROR_BODY).await?;
        Ok(Self {
            status,
            headers,
            url,
            body,
        })
    }

    /// The OCI error body, if the body is one.
    pub fn error_body(&self) -> Option<ErrorBody> {
        ErrorBody::parse(&self.body)
    }

    /// `CODE: message` from the OCI error body, else the status.
    pub fn message(&self) -> String {
        match self.error_body() {
            Some(body) if !body.errors.is_empty() => body.to_string(),
            _ => format!("HTTP {}", self.status),
        }
    }

    /// Whether the body says a token expired (ECR answers 400 so).
    fn says_token_expired(&self) -> bool {
        let text = String::from_utf8_lossy(&self.body).to_ascii_lowercase();
        text.contains("expired")
    }
}

/// What the registry is known to want.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Nothing,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Authorization sent with a request.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Sent {
    Basic(HeaderValue),
    Bearer(String),
}

/// An authenticated HTTP transport to one registry.
pub struct Transport {
    http: reqwest::Client,
    registry: Registry,
    base: Url,
    credential: Option<Credential>,
    plain_realm_allowed: bool,
    cache: Arc<TokenCache>,
    known: Mutex<Known>,
    observer: Option<Observer>,
    password_grant: bool,
    /// Realms whose token service answered the OAuth2 `POST` with 404, 405,
    /// 401 or 400: asked by `GET` only.
    no_oauth2_post: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("registry", &self.registry)
            .field("base", &self.base.as_str())
            .field("credential", &self.credential)
            .field("known", &self.known())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport to `registry` (Docker Hub is reached at
    /// `registry-1.docker.io`), presenting `credential` when asked.
    pub fn new(
        registry: Registry,
        credential: Option<Credential>,
        options: TransportOptions,
    ) -> Result<Self, AuthError> {
        // A CA given for the registry says it speaks TLS, loopback or not.
        let plain = options
            .insecure
            .unwrap_or_else(|| registry.is_loopback() && options.ca_files.is_empty());
        let scheme = if plain { "http" } else { "https" };
        let base_text = format!("{scheme}://{}/", registry.api_host());
        let base = Url::parse(&base_text).map_err(|e| AuthError::Url {
            url: base_text.clone(),
            reason: e.to_string(),
        })?;
        let user_agent = options
            .user_agent
            .unwrap_or_else(|| format!("berth/{}", env!("CARGO_PKG_VERSION")));
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .read_timeout(Duration::from_secs(120));
        for path in &options.ca_files {
            let ca_error = |reason: String| AuthError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no certificate found".to_owned()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(AuthError::Build)?;
        Ok(Self {
            http,
            plain_realm_allowed: registry.is_loopback() || options.insecure == Some(true),
            registry,
            base,
            credential,
            cache: options.cache.unwrap_or_else(|| Arc::new(TokenCache::new())),
            known: Mutex::new(Known::Nothing),
            observer: options.observer,
            password_grant: options.password_grant,
            no_oauth2_post: Mutex::new(HashSet::new()),
        })
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `scheme://host[:port]/`, the origin requests go to.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The token cache.
    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    /// The URL of `path_and_query` (`/v2/...`) on this registry.
    pub fn url(&self, path_and_query: &str) -> Result<Url, AuthError> {
        self.base.join(path_and_query).map_err(|e| AuthError::Url {
            url: path_and_query.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Sends `request` for `operation`, authenticating as the registry asks.
    /// Any status is returned as a [`Reply`]; an error means the request or
    /// the authentication itself failed.
    pub async fn send(&self, operation: &Operation, request: &Request) -> Result<Reply, AuthError> {
        let mut delete = DeleteAction::Delete;
        let mut sent = self.prepared(operation, &mut delete, None).await?;
        let mut reauthenticated = false;
        let mut widened = false;
        loop {
            let auth = if same_origin(&request.url, &self.base) {
                sent.as_ref()
            } else {
                None
            };
            let response = self.execute(request, auth).await?;
            if response.status().as_u16() < 400 {
                return Ok(Reply::Success(response));
            }
            let failure = Failure::read(response).await?;
            if !same_origin(&failure.url, &self.base) {
                return Ok(Reply::Failure(failure));
            }
            let status = failure.status.as_u16();
            if status == 401 && !reauthenticated {
                reauthenticated = true;
                let challenges = self.challenges(&failure.headers)?;
                if let Some(next) = self
                    .reauthenticate(operation, &mut delete, &challenges, sent.as_ref())
                    .await?
                {
                    sent = Some(next);
                    continue;
                }
            } else if matches!(status, 400 | 403)
                && !reauthenticated
                && matches!(sent, Some(Sent::Bearer(_)))
                && failure.says_token_expired()
            {
                reauthenticated = true;
                tracing::debug!(registry = %self.registry, status, "token expired; refreshing once");
                let refused = match &sent {
                    Some(Sent::Bearer(token)) => Some(token.clone()),
                    _ => None,
                };
                let next = self
                    .prepared(operation, &mut delete, refused.as_deref())
                    .await?;
                if next.is_some() && next != sent {
                    sent = next;
                    continue;
                }
            }
            let delete_refused = matches!(operation, Operation::Delete(_))
                && matches!(status, 401 | 403)
                && matches!(sent, Some(Sent::Bearer(_)));
            if delete_refused && !widened && delete == DeleteAction::Delete {
                widened = true;
                delete = DeleteAction::All;
                tracing::debug!(registry = %self.registry, "delete refused; asking `*` (Quay)");
                let next = self.prepared(operation, &mut delete, None).await?;
                if next.is_some() && next != sent {
                    sent = next;
                    continue;
                }
            }
            return Ok(Reply::Failure(failure));
        }
    }

    /// Makes sure the token for `operation` stays valid for `expected_secs`
    /// more seconds (plus the margin), refreshing it first if not: call before
    /// each request of a long upload. Returns whether a bearer token applies.
    pub async fn token_for_duration(
        &self,
        operation: &Operation,
        expected_secs: u64,
    ) -> Result<bool, AuthError> {
        let Known::Bearer { realm, service } = self.known() else {
            return Ok(false);
        };
        let scopes = request_scopes(
            operation,
            DeleteAction::Delete,
            &Scopes::new(),
            self.credential.is_none(),
        );
        let key = self.key(&realm, service.as_deref(), &scopes);
        self.cache
            .token_for_duration(&key, expected_secs, || {
                self.fetch_token(&realm, service.as_deref(), &scopes)
            })
            .await?;
        Ok(true)
    }

    pub(super) fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(observer) = &self.observer {
            observer.emit(&event());
        }
    }

    fn known(&self) -> Known {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn remember(&self, known: Known) {
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = known;
    }

    fn key(&self, realm: &str, service: Option<&str>, scopes: &Scopes) -> CacheKey {
        CacheKey::new(
            &self.registry,
            realm,
            service,
            self.credential.as_ref(),
            scopes,
        )
    }

    /// The authorization to send from what is already known of the registry,
    /// with `refused` never handed back.
    async fn prepared(
        &self,
        operation: &Operation,
        delete: &mut DeleteAction,
        refused: Option<&str>,
    ) -> Result<Option<Sent>, AuthError> {
        match self.known() {
            Known::Nothing => Ok(None),
            Known::Basic => self.basic(),
            Known::Bearer { realm, service } => {
                let token = self
                    .bearer(
                        operation,
                        delete,
                        &realm,
                        service.as_deref(),
                        &Scopes::new(),
                        refused,
                    )
                    .await?;
                Ok(Some(Sent::Bearer(token)))
            }
        }
    }

    fn basic(&self) -> Result<Option<Sent>, AuthError> {
        match &self.credential {
            Some(Credential::Basic { username, password }) => {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                let mut value =
                    HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
                        AuthError::Url {
                            url: self.base.to_string(),
                            reason: "the credential cannot be sent in a header".to_owned(),
                        }
                    })?;
                value.set_sensitive(true);
                Ok(Some(Sent::Basic(value)))
            }
            Some(Credential::IdentityToken(_)) => Err(AuthError::IdentityTokenOnBasic {
                registry: self.registry.to_string(),
            }),
            None => Ok(None),
        }
    }

    pub(super) fn challenges(&self, headers: &HeaderMap) -> Result<Challenges, AuthError> {
        let values: Vec<&str> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenges = Challenges::parse_all(values).map_err(|source| AuthError::Challenge {
            registry: self.registry.to_string(),
            source,
        })?;
        self.emit(|| Event::Challenges(challenges.clone()));
        Ok(challenges)
    }

    /// Answers a 401: the next authorization to try, or `None` when nothing
    /// new can be tried (the 401 then stands).
    async fn reauthenticate(
        &self,
        operation: &Operation,
        delete: &mut DeleteAction,
        challenges: &Challenges,
        sent: Option<&Sent>,
    ) -> Result<Option<Sent>, AuthError> {
        if let Some(bearer) = challenges.bearer() {
            let realm = bearer.realm().ok_or_else(|| AuthError::NoRealm {
                registry: self.registry.to_string(),
            })?;
            let service = bearer.service().filter(|s| !s.is_empty());
            // An unparsable hint is ignored: the operation decides the scopes.
            let hint = bearer
                .scope()
                .and_then(|s| Scopes::parse(s).ok())
                .unwrap_or_default();
            self.remember(Known::Bearer {
                realm: realm.to_owned(),
                service: service.map(str::to_owned),
            });
            let token_refused = matches!(bearer.error(), None | Some("invalid_token"));
            let refused = match sent {
                Some(Sent::Bearer(token)) if token_refused => Some(token.as_str()),
                _ => None,
            };
            let token = self
                .bearer(operation, delete, realm, service, &hint, refused)
                .await?;
            if matches!(sent, Some(Sent::Bearer(old)) if *old == token) {
                return Ok(None);
            }
            return Ok(Some(Sent::Bearer(token)));
        }
        if challenges.basic().is_some() {
            self.remember(Known::Basic);
            if matches!(sent, Some(Sent::Basic(_))) {
                return Ok(None);
            }
            return self.basic();
        }
        Ok(None)
    }

    /// A bearer token for `operation` from `realm`, from the cache when it
    /// holds a usable one. For a delete whose grant is known to lack `delete`,
    /// asks again with `*` (and leaves `delete` at `All`).
    async fn bearer(
        &self,
        operation: &Operation,
        delete: &mut DeleteAction,
        realm: &str,
        service: Option<&str>,
        hint: &Scopes,
        refused: Option<&str>,
    ) -> Result<String, AuthError> {
        let anonymous = self.credential.is_none();
        let token = self
            .cached_token(operation, *delete, realm, service, hint, refused)
            .await?;
        if let (Operation::Delete(repo), DeleteAction::Delete, false) =
            (operation, *delete, anonymous)
        {
            let lacks_delete = token.granted().is_some_and(|granted| {
                !granted.permits(&ResourceType::Repository, repo.as_str(), &Action::Delete)
            });
            if lacks_delete {
                tracing::debug!(registry = %self.registry, "grant lacks `delete`; asking `*` (Quay)");
                *delete = DeleteAction::All;
                let widened = self
                    .cached_token(operation, *delete, realm, service, hint, refused)
                    .await?;
                return Ok(widened.token().to_owned());
            }
        }
        Ok(token.token().to_owned())
    }

    async fn cached_token(
        &self,
        operation: &Operation,
        delete: DeleteAction,
        realm: &str,
        service: Option<&str>,
        hint: &Scopes,
        refused: Option<&str>,
    ) -> Result<CachedToken, AuthError> {
        let anonymous = self.credential.is_none();
        let scopes = request_scopes(operation, delete, hint, anonymous);
        self.emit(|| Event::Scopes {
            operation: operation.clone(),
            needed: operation.scopes_with(delete),
            hint: hint.clone(),
            kept: relevant_hint(operation, hint),
            anonymous,
            requested: scopes.clone(),
        });
        let key = self.key(realm, service, &scopes);
        let need = Need {
            duration: Duration::ZERO,
            reject: refused,
        };
        self.cache
            .get_or_fetch(&key, need, || self.fetch_token(realm, service, &scopes))
            .await
    }

    pub(super) fn realm_url(&self, realm: &str) -> Result<Url, AuthError> {
        let url = self.base.join(realm).map_err(|e| AuthError::Url {
            url: realm.to_owned(),
            reason: e.to_string(),
        })?;
        match url.scheme() {
            "https" => Ok(url),
            "http" if self.plain_realm_allowed => Ok(url),
            _ => Err(AuthError::InsecureRealm {
                realm: realm.to_owned(),
                registry: self.registry.to_string(),
            }),
        }
    }

    /// Asks the token service for a token for `scopes` (module doc, "Token
    /// requests"): the OAuth2 refresh-token grant for an identity token; the
    /// password grant, when configured, falling back to `GET`; else `GET`
    /// with Basic credentials when held.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &Scopes,
    ) -> Result<CachedToken, AuthError> {
        let url = self.realm_url(realm)?;
        let ask = TokenRequest {
            service: service.map(str::to_owned),
            scopes: scopes.clone(),
            client_id: Some(CLIENT_ID.to_owned()),
            ..TokenRequest::default()
        };
        tracing::debug!(registry = %self.registry, realm, scope = %scopes, "asking for a token");
        let response = match &self.credential {
            Some(Credential::IdentityToken(refresh_token)) => {
                let grant = Grant::RefreshToken {
                    refresh_token: refresh_token.clone(),
                };
                let response = self.post_token(&url, &ask, grant).await?;
                let status = response.status().as_u16();
                if matches!(status, 400 | 401 | 404 | 405) {
                    return Err(self.refresh_token_refused(realm, status, response).await?);
                }
                response
            }
            Some(Credential::Basic { username, password })
                if self.password_grant && !self.post_refused(realm) =>
            {
                let grant = Grant::Password {
                    username: username.clone(),
                    password: password.clone(),
                };
                let response = self.post_token(&url, &ask, grant).await?;
                let status = response.status().as_u16();
                if matches!(status, 400 | 401 | 404 | 405) {
                    // Not an OAuth2 endpoint, or not for this grant (GCR
                    // 404, Artifactory 401, ACR 400): GET, from now on.
                    tracing::debug!(registry = %self.registry, realm, status, "the token service refused the OAuth2 password grant; asking by GET");
                    self.no_oauth2_post
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(realm.to_owned());
                    self.get_token(url, ask).await?
                } else {
                    response
                }
            }
            _ => self.get_token(url, ask).await?,
        };
        let (_, token) = self.token_response(response, realm, scopes).await?;
        Ok(token)
    }

    /// A refresh token for this transport's password, for `berth login` to
    /// store instead of the password (as `docker login` does): asks the realm
    /// learnt by an earlier request (a [`ping`] first) by `GET` with Basic
    /// credentials, `offline_token=true`, `client_id` and `service`, no
    /// scope. `None` when the registry does not use bearer tokens, the
    /// credential is not a password, or the token service sent no
    /// `refresh_token` (it offers none, or not for this credential: berth
    /// issues none for a personal access token). The refresh token comes as
    /// a [`Credential::IdentityToken`], whose `Debug` redacts it; no event or
    /// log carries it.
    ///
    /// [`ping`]: crate::client::RegistryClient::ping
    pub async fn offline_token(&self) -> Result<Option<Credential>, AuthError> {
        let Known::Bearer { realm, service } = self.known() else {
            return Ok(None);
        };
        if !matches!(self.credential, Some(Credential::Basic { .. })) {
            return Ok(None);
        }
        let url = self.realm_url(&realm)?;
        let ask = TokenRequest {
            service,
            offline: true,
            client_id: Some(CLIENT_ID.to_owned()),
            ..TokenRequest::default()
        };
        tracing::debug!(registry = %self.registry, realm, "asking for a refresh token");
        let response = self.get_token(url, ask).await?;
        let (parsed, _) = self
            .token_response(response, &realm, &Scopes::new())
            .await?;
        Ok(parsed.refresh_token.map(Credential::IdentityToken))
    }

    /// Whether `realm` is known to refuse the OAuth2 `POST`.
    fn post_refused(&self, realm: &str) -> bool {
        self.no_oauth2_post
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(realm)
    }

    /// `POST realm` with the OAuth2 form of `ask` and `grant`.
    async fn post_token(
        &self,
        url: &Url,
        ask: &TokenRequest,
        grant: Grant,
    ) -> Result<reqwest::Response, AuthError> {
        let kind = match grant {
            Grant::RefreshToken { .. } => GrantKind::RefreshToken,
            Grant::Password { .. } => GrantKind::Password,
            Grant::IdToken { .. } => GrantKind::TokenExchange,
        };
        self.emit(|| Event::TokenRequest {
            realm: shown(url),
            method: Method::POST,
            grant: kind,
            service: ask.service.clone(),
            scopes: ask.scopes.clone(),
        });
        let form = TokenRequest {
            grant: Some(grant),
            ..ask.clone()
        };
        let request = Request::new(Method::POST, url.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(form.to_form());
        self.execute(&request, None).await
    }

    /// `GET realm?<ask>`, with Basic credentials when a password is held.
    async fn get_token(
        &self,
        mut url: Url,
        mut ask: TokenRequest,
    ) -> Result<reqwest::Response, AuthError> {
        let auth = match &self.credential {
            Some(Credential::Basic { username, .. }) => {
                ask.account = Some(username.clone());
                self.basic()?
            }
            _ => None,
        };
        self.emit(|| Event::TokenRequest {
            realm: shown(&url),
            method: Method::GET,
            grant: if auth.is_some() {
                GrantKind::Basic
            } else {
                GrantKind::Anonymous
            },
            service: ask.service.clone(),
            scopes: ask.scopes.clone(),
        });
        let query = match url.query() {
            Some(existing) if !existing.is_empty() => format!("{existing}&{}", ask.to_query()),
            _ => ask.to_query(),
        };
        url.set_query(Some(&query));
        self.execute(&Request::new(Method::GET, url), auth.as_ref())
            .await
    }

    /// The error for an identity token the OAuth2 `POST` refused with
    /// `status` (400, 401, 404 or 405).
    async fn refresh_token_refused(
        &self,
        realm: &str,
        status: u16,
        response: reqwest::Response,
    ) -> Result<AuthError, AuthError> {
        let failure = Failure::read(response).await?;
        // RFC 6749 section 5.2: an expired or revoked refresh token is a 400
        // `invalid_grant`; berth and distribution's token servers answer 401.
        let invalid_grant = serde_json::from_slice::<serde_json::Value>(&failure.body)
            .is_ok_and(|body| body["error"] == "invalid_grant");
        let (realm, registry) = (realm.to_owned(), self.registry.to_string());
        Ok(if status == 401 || invalid_grant {
            AuthError::LoginExpired {
                realm,
                registry,
                status,
            }
        } else {
            AuthError::RefreshTokenRefused {
                realm,
                registry,
                status,
            }
        })
    }

    /// Reads the token service's answer: the parsed response and the token
    /// to cache, or the error its status means.
    async fn token_response(
        &self,
        response: reqwest::Response,
        realm: &str,
        scopes: &Scopes,
    ) -> Result<(TokenResponse, CachedToken), AuthError> {
        let status = response.status();
        if status.is_success() {
            let body = read_limited(response, MAX_TOKEN_BODY).await?;
            let parsed =
                TokenResponse::parse(&body).map_err(|source| AuthError::TokenResponse {
                    realm: realm.to_owned(),
                    source,
                })?;
            let token = CachedToken::from_response(&parsed, self.cache.now());
            self.emit(|| Event::TokenReceived {
                claims: jwt_payload(token.token()),
                granted: token.granted().cloned(),
                expires_in: parsed.expires_in,
                expires_at: token.expires_at(),
                lifetime: token.lifetime(),
                expiry: token.expiry_source(),
            });
            return Ok((parsed, token));
        }
        let failure = Failure::read(response).await?;
        let message = failure.message();
        let (realm, registry) = (realm.to_owned(), self.registry.to_string());
        Err(match status.as_u16() {
            // `docker login -u oidc -p "$ID_TOKEN"`, or `berth login --oidc`:
            // the password is a CI job's ID token, which lives minutes.
            401 if matches!(&self.credential, Some(Credential::Basic { username, .. })
                if username == OIDC_USERNAME) =>
            {
                AuthError::StoredIdTokenRefused {
                    realm,
                    registry,
                    message,
                }
            }
            401 => AuthError::BadCredentials {
                realm,
                registry,
                message,
            },
            403 => AuthError::TokenDenied {
                realm,
                registry,
                scope: scopes.to_string(),
                message,
            },
            code => AuthError::TokenService {
                realm,
                registry,
                status: code,
                message,
            },
        })
    }

    /// Sends one request, following redirects (at most [`MAX_REDIRECTS`]) and
    /// dropping `auth` for good once a redirect leaves the first origin.
    pub(super) async fn execute(
        &self,
        request: &Request,
        auth: Option<&Sent>,
    ) -> Result<reqwest::Response, AuthError> {
        let mut url = request.url.clone();
        let mut method = request.method.clone();
        let mut body = request.body.clone();
        let mut auth = auth.map(|sent| match sent {
            Sent::Basic(value) => value.clone(),
            Sent::Bearer(token) => bearer_header(token),
        });
        for _ in 0..=MAX_REDIRECTS {
            let mut retries = 0;
            let response = loop {
                let mut builder = self
                    .http
                    .request(method.clone(), url.clone())
                    .headers(request.headers.clone());
                if let Some(value) = &auth {
                    builder = builder.header(AUTHORIZATION, value.clone());
                }
                if let Some(body) = &body {
                    if let Some(length) = body.length() {
                        builder = builder.header(CONTENT_LENGTH, length);
                    }
                    let attempt = body.attempt().await.map_err(|source| AuthError::Source {
                        url: shown(&url),
                        source,
                    })?;
                    builder = builder.body(attempt);
                }
                self.emit(|| Event::Request {
                    method: method.clone(),
                    url: shown(&url),
                    authorization: match &auth {
                        None => AuthorizationKind::None,
                        Some(v) if v.as_bytes().starts_with(b"Basic") => AuthorizationKind::Basic,
                        Some(_) => AuthorizationKind::Bearer,
                    },
                });
                match builder.send().await {
                    Ok(response) => break response,
                    // An idempotent request whose body is in memory (a
                    // manifest) or absent is sent again after a network
                    // failure; a streamed body or a PATCH chunk is left to
                    // its caller, which knows where an upload stands.
                    Err(source)
                        if retries < NETWORK_RETRIES
                            && matches!(body, None | Some(Body::Bytes(_)))
                            && matches!(
                                method,
                                Method::GET | Method::HEAD | Method::DELETE | Method::PUT
                            )
                            && (source.is_connect()
                                || source.is_request()
                                || source.is_timeout()) =>
                    {
                        retries += 1;
                        tracing::debug!(url = %shown(&url), error = %source, retries, "network failure; sending the request again");
                        tokio::time::sleep(std::time::Duration::from_millis(
                            100 * 3u64.pow(retries - 1),
                        ))
                        .await;
                    }
                    Err(source) => {
                        return Err(AuthError::Http {
                            url: shown(&url),
                            source: source.without_url(),
                        });
                    }
                }
            };
            let status = response.status();
            self.emit(|| Event::Response {
                status: status.as_u16(),
                url: shown(&url),
            });
            let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok());
            let (true, Some(location)) = (redirect, location) else {
                return Ok(response);
            };
            let next = url.join(location).map_err(|e| AuthError::Url {
                url: location.to_owned(),
                reason: e.to_string(),
            })?;
            if !same_origin(&next, &url) && auth.take().is_some() {
                tracing::debug!(from = %shown(&url), to = %shown(&next), "redirect to another origin: Authorization dropped");
            }
            let keeps_method = matches!(status.as_u16(), 307 | 308)
                || method == Method::GET
                || method == Method::HEAD;
            if !keeps_method {
                method = Method::GET;
                body = None;
            }
            url = next;
        }
        Err(AuthError::TooManyRedirects {
            url: shown(&request.url),
            max: MAX_REDIRECTS,
        })
    }
}

fn bearer_header(token: &str) -> HeaderValue {
    // A token with characters a header cannot hold is sent as nothing; the
    // registry's 401 then reports the failure.
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    value.set_sensitive(true);
    value
}

/// Whether two URLs share scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A URL without its query (which may hold a pre-signed storage signature).
pub(super) fn shown(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// Reads at most `limit` bytes of a body.
pub(super) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, AuthError> {
    let url = shown(response.url());
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| AuthError::Http {
        url: url.clone(),
        source: source.without_url(),
    })? {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if out.len() >= limit {
            break;
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(registry: &str, insecure: Option<bool>) -> Transport {
        let options = TransportOptions {
            insecure,
            ..TransportOptions::default()
        };
        Transport::new(Registry::parse(registry).unwrap(), None, options).unwrap()
    }

    #[test]
    fn a_plain_http_realm_is_refused_unless_loopback_or_insecure() {
        let remote = transport("registry.example.com", None);
        assert_eq!(remote.base().as_str(), "https://registry.example.com/");
        let err = remote
            .realm_url("http://auth.example.com/token")
            .unwrap_err();
        assert!(matches!(err, AuthError::InsecureRealm { .. }), "{err}");
        assert!(err.to_string().contains("clear text"));
        assert!(remote.realm_url("https://auth.example.com/token").is_ok());
        // A relative realm resolves against the registry.
        let url = remote.realm_url("/token").unwrap();
        assert_eq!(url.as_str(), "https://registry.example.com/token");

        let insecure = transport("registry.example.com", Some(true));
        assert_eq!(insecure.base().as_str(), "http://registry.example.com/");
        assert!(insecure.realm_url("http://auth.example.com/token").is_ok());

        let local = transport("127.0.0.1:5000", None);
        assert_eq!(local.base().as_str(), "http://127.0.0.1:5000/");
        assert!(local.realm_url("http://127.0.0.1:5001/token").is_ok());

        let hub = transport("docker.io", None);
        assert_eq!(hub.base().as_str(), "https://registry-1.docker.io/");
    }

    #[test]
    fn origins() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(&u("https://a/x"), &u("https://a:443/y")));
        assert!(!same_origin(&u("https://a/x"), &u("http://a/x")));
        assert!(!same_origin(&u("http://a:1/x"), &u("http://a:2/x")));
        assert!(!same_origin(&u("http://a/x"), &u("http://b/x")));
        assert_eq!(
            shown(&u("https://s3/blob?X-Amz-Signature=s")),
            "https://s3/blob"
        );
    }
}
