//! What the transport does, step by step, for `berth -v` and `berth auth
//! explain`: an [`Observer`] set in [`TransportOptions`] receives every
//! [`Event`]. Events never hold a secret: no password, no token, no
//! `Authorization` value, no URL query (it may hold a pre-signed signature).
//!
//! [`TransportOptions`]: super::TransportOptions

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_core::{Challenges, Scopes};
use reqwest::Method;
use serde_json::Value;

use super::cache::ExpirySource;
use super::scopes::Operation;

/// Which kind of `Authorization` a request carried (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationKind {
    /// None.
    None,
    /// HTTP Basic.
    Basic,
    /// A bearer token.
    Bearer,
}

/// How the token service was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// `GET` without credentials.
    Anonymous,
    /// `GET` with HTTP Basic credentials.
    Basic,
    /// `POST` with the OAuth2 refresh-token grant.
    RefreshToken,
    /// `POST` with the OAuth2 password grant.
    Password,
    /// `POST` with an RFC 8693 token exchange of an ID token.
    TokenExchange,
}

/// One step of the transport.
#[derive(Debug, Clone)]
pub enum Event {
    /// A request is sent (each redirect hop, and token requests, included).
    Request {
        /// The method.
        method: Method,
        /// The URL without its query.
        url: String,
        /// The kind of `Authorization` sent.
        authorization: AuthorizationKind,
    },
    /// A response arrived.
    Response {
        /// The status.
        status: u16,
        /// The URL without its query.
        url: String,
    },
    /// A `401` carried these challenges (every `WWW-Authenticate` value, parsed).
    Challenges(Challenges),
    /// The scopes computed for a token.
    Scopes {
        /// What the request is for.
        operation: Operation,
        /// The scopes the operation itself needs.
        needed: Scopes,
        /// The challenge's `scope`, as parsed (empty when none).
        hint: Scopes,
        /// The part of the hint kept (it names a repository of the operation).
        kept: Scopes,
        /// Whether no credential applies (repository scopes reduced to `pull`).
        anonymous: bool,
        /// What is asked.
        requested: Scopes,
    },
    /// The token service is asked.
    TokenRequest {
        /// The realm URL without its query.
        realm: String,
        /// `GET` or `POST`.
        method: Method,
        /// How.
        grant: GrantKind,
        /// The `service` sent.
        service: Option<String>,
        /// The scopes asked.
        scopes: Scopes,
    },
    /// A token was received (its value is not part of the event).
    TokenReceived {
        /// The JWT payload when the token is a readable JWT (unverified).
        claims: Option<Value>,
        /// What the service says it granted (`scope` echo or `access` claim).
        granted: Option<Scopes>,
        /// The `expires_in` of the response, if sent.
        expires_in: Option<u64>,
        /// When the token expires.
        expires_at: SystemTime,
        /// Its lifetime.
        lifetime: Duration,
        /// Where the expiry came from.
        expiry: ExpirySource,
    },
}

/// Receives the transport's [`Event`]s.
#[derive(Clone)]
pub struct Observer(Arc<dyn Fn(&Event) + Send + Sync>);

impl Observer {
    /// An observer calling `f` for each event.
    pub fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands `event` to the observer (observers may chain).
    pub fn emit(&self, event: &Event) {
        (self.0)(event);
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer")
    }
}
