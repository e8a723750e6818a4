//! The auth engine: challenge -> scope -> token -> cache -> refresh.
//!
//! The flow, per request (PROTOCOL.md sections 2, 3 and 7):
//!
//! 1. The [`Transport`] sends the request with whatever it already knows works
//!    for this registry: a cached bearer token for the operation's scopes, or
//!    Basic credentials on a Basic-only registry, or nothing the first time.
//! 2. On `401` it reads every `WWW-Authenticate` value
//!    ([`berth_core::Challenges::parse_all`]), prefers Bearer, then Basic.
//! 3. The scopes come from the [`Operation`], not from the challenge: the
//!    challenge's `scope` is only a hint, merged when it names a repository of
//!    the operation ([`request_scopes`]). Without a credential, repository
//!    scopes shrink to `pull`.
//! 4. Tokens come from the realm (`GET` with Basic credentials, the OAuth2
//!    password grant when configured, or the OAuth2 refresh-token grant for
//!    an identity token; `transport.rs` states the fallbacks) and live in the
//!    [`TokenCache`], one fetch in flight per key, refreshed ahead of expiry.
//! 5. A CI job's OpenID Connect ID token is a password of the user `oidc`,
//!    once the RFC 8693 exchange has checked it (`workload.rs` states the flow).
//! 6. Re-authentication is bounded: one retry per request, and only when the
//!    token changed. A delete whose `delete` grant is refused retries once
//!    asking `*` (Quay).
//!
//! Secrets (passwords, refresh tokens, bearer tokens) never appear in `Debug`,
//! `Display`, errors or logs.

mod cache;
mod error;
mod scopes;
mod trace;
mod transport;
mod workload;

pub use cache::{
    CacheKey, CachedToken, Clock, ExpirySource, ManualClock, Need, SystemClock, TokenCache,
    identity_of,
};
pub use error::AuthError;
pub use scopes::{DeleteAction, Operation, anonymous_subset, relevant_hint, request_scopes};
pub use trace::{AuthorizationKind, Event, GrantKind, Observer};
pub use transport::{
    Body, ByteStream, Failure, NETWORK_RETRIES, OpenStream, Reply, Request, Transport,
    TransportOptions,
};
pub use workload::{
    ACTIONS_TOKEN_VAR, ACTIONS_URL_VAR, ActionsTokenRequest, Exchanged, IdToken, OIDC_USERNAME,
    TokenService, exchange_form,
};
