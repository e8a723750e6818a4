//! Failures of the auth engine and the transport under it. Each message names
//! what failed and what to do; none carries a secret (token service bodies are
//! quoted only through the OCI error body's code and message).

use berth_core::ParseError;

/// What went wrong while reaching or authenticating to a registry.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Build(#[source] reqwest::Error),

    /// The extra CA file could not be read or holds no usable certificate.
    #[error("cannot use the CA file {path}: {reason}; give a PEM file of CA certificates")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },

    /// A URL could not be built or parsed.
    #[error("bad URL `{url}`: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },

    /// The request did not reach the server or the answer was cut off. The
    /// transport error carries no URL (it is named here once).
    #[error(
        "request to {url} failed: {source}; check the network, proxy settings and the registry's address"
    )]
    Http {
        /// Where the request went (no query string).
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The bytes of a streamed body could not be opened (a file, another
    /// registry).
    #[error("cannot read the bytes to send to {url}: {source}")]
    Source {
        /// Where they were to go (no query string).
        url: String,
        /// Why they could not be read.
        #[source]
        source: std::io::Error,
    },

    /// More than the allowed number of redirects.
    #[error(
        "more than {max} redirects starting at {url}; the registry or a proxy is misconfigured"
    )]
    TooManyRedirects {
        /// The first URL.
        url: String,
        /// The limit.
        max: usize,
    },

    /// A `WWW-Authenticate` header that does not parse.
    #[error("the registry {registry} sent an unreadable WWW-Authenticate challenge: {source}")]
    Challenge {
        /// The registry.
        registry: String,
        /// The parse failure (it quotes the header, which holds no secret).
        #[source]
        source: ParseError,
    },

    /// A Bearer challenge without a realm.
    #[error("the registry {registry} asks for a bearer token but names no realm to get it from")]
    NoRealm {
        /// The registry.
        registry: String,
    },

    /// A realm on plain HTTP for a registry that is neither on loopback nor
    /// configured insecure.
    #[error(
        "the token realm {realm} of {registry} is not https: credentials would travel in clear text; \
         refusing. Fix the registry's configuration, or mark the registry insecure if this network is trusted"
    )]
    InsecureRealm {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
    },

    /// The token service refused the credentials (401).
    #[error(
        "the token service {realm} rejected the credentials for {registry} ({message}); \
         check the username and password or log in again"
    )]
    BadCredentials {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
        /// The service's message, or the status.
        message: String,
    },

    /// The token service refused the scopes asked for (403; GHCR answers so
    /// for a token naming no repository).
    #[error(
        "the token service {realm} denied a token for {registry} with scope `{scope}` ({message}); \
         the account may lack access, or the registry grants no token for this request"
    )]
    TokenDenied {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
        /// The scopes asked for (empty for none).
        scope: String,
        /// The service's message, or the status.
        message: String,
    },

    /// The token service has no OAuth2 refresh-token grant (its `POST`
    /// answered 404, 405, or a 400 other than `invalid_grant`), so an
    /// identity token cannot be used there: it is sent by no other means.
    #[error(
        "the token service {realm} of {registry} does not take the OAuth2 refresh-token grant \
         (HTTP {status} to its POST), so the stored identity token cannot be used there; log in \
         again with the password kept: `berth login {registry} -u USER --store-password`"
    )]
    RefreshTokenRefused {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
        /// The HTTP status of the POST.
        status: u16,
    },

    /// The token service refused the identity token (401, or a 400
    /// `invalid_grant`): the refresh token expired or was revoked.
    #[error(
        "the stored login for {registry} expired or was revoked: the token service {realm} \
         refused its refresh token (HTTP {status}); run `berth login {registry}` again"
    )]
    LoginExpired {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
        /// The HTTP status of the POST.
        status: u16,
    },

    /// An identity token was held but the registry only accepts Basic.
    #[error(
        "the registry {registry} only accepts Basic credentials, and the credential held is an \
         identity token; log in again with the password kept: \
         `berth login {registry} -u USER --store-password`"
    )]
    IdentityTokenOnBasic {
        /// The registry.
        registry: String,
    },

    /// The token service refused the ID token stored as the password of the
    /// user `oidc` (401): it expired (CI ID tokens live minutes), or no trust
    /// rule accepts it any more.
    #[error(
        "the token service {realm} refused the ID token used for {registry} as the password of \
         `oidc` ({message}); get a fresh one: run `berth login --oidc {registry}` again in the \
         job"
    )]
    StoredIdTokenRefused {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
        /// The service's message, or the status.
        message: String,
    },

    /// A workload identity login needs a token service, and `GET /v2/`
    /// answered without a Bearer challenge.
    #[error(
        "the registry {registry} names no token service (GET /v2/ answered without a Bearer \
         challenge), so there is nowhere to exchange an ID token; workload identity needs a \
         registry with a token service, such as berth"
    )]
    NoTokenService {
        /// The registry.
        registry: String,
    },

    /// The token service refused the ID token in an RFC 8693 token exchange
    /// (a 400 `invalid_grant` or `invalid_request`, a 401 or a 403).
    #[error(
        "the token service {realm} of {registry} refused the ID token (HTTP {status} {error}: \
         {description})"
    )]
    IdTokenRefused {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth2 `error` code (or the OCI error code).
        error: String,
        /// The service's `error_description` (or the OCI message), verbatim.
        description: String,
    },

    /// The token service has no RFC 8693 token exchange (404, 405, or a 400
    /// `unsupported_grant_type`).
    #[error(
        "the token service {realm} of {registry} does not take the RFC 8693 token exchange \
         (HTTP {status}); this registry does not offer workload identity logins (berth does)"
    )]
    TokenExchangeUnsupported {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
        /// The HTTP status.
        status: u16,
    },

    /// The text given as an ID token is not a JWT.
    #[error(
        "it is not a JWT ({reason}); an OpenID Connect ID token is three base64url parts joined by dots"
    )]
    NotAJwt {
        /// Why (never quotes the text).
        reason: &'static str,
    },

    /// The CI's ID token endpoint (GitHub Actions' `ACTIONS_ID_TOKEN_REQUEST_URL`)
    /// refused or gave no token.
    #[error("cannot get an ID token from {url}: {reason}")]
    IdTokenRequest {
        /// The endpoint, without its query.
        url: String,
        /// Why: the status and the endpoint's message, or what the answer lacked.
        reason: String,
    },

    /// Any other failure of the token service.
    #[error(
        "the token service {realm} failed for {registry} (HTTP {status}: {message}); try again later"
    )]
    TokenService {
        /// The realm.
        realm: String,
        /// The registry.
        registry: String,
        /// The HTTP status.
        status: u16,
        /// The service's message, or a description of the body.
        message: String,
    },

    /// The token service's answer is not a token response.
    #[error("the token service {realm} sent an unreadable token response: {source}")]
    TokenResponse {
        /// The realm.
        realm: String,
        /// Why (never quotes a JSON body, which may hold a token).
        #[source]
        source: ParseError,
    },
}
