//! The admin API's client: where the registry is, who logs in, and one call
//! that turns any answer into JSON or an error naming what went wrong.
//!
//! The connection is resolved from flags and variables before any I/O; the
//! password only ever comes from `BERTH_PASSWORD` or, when neither variable is
//! set, the stored login of `berth login --store-password` for the registry's
//! host; never from a flag.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_client::credentials::{Credential, CredentialStore};
use berth_core::reference::Registry;
use reqwest::Method;
use reqwest::Url;
use serde_json::Value;

/// Where the registry is and who logs in: resolved before any I/O.
pub struct Connection {
    base: Url,
    username: String,
    password: String,
}

impl Connection {
    /// Checks the registry URL and reads `BERTH_USERNAME`/`BERTH_PASSWORD`.
    pub fn resolve(registry: &str) -> anyhow::Result<Self> {
        let base = Url::parse(registry).with_context(|| {
            format!("--registry {registry:?} is not a URL; give one such as http://127.0.0.1:5000")
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!(
                "--registry {registry:?} is not an http:// or https:// URL; give one such as https://registry.example.com"
            );
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (username, password) = match (var("BERTH_USERNAME"), var("BERTH_PASSWORD")) {
            (Some(u), Some(p)) => (u, p),
            (None, None) if let Some(stored) = stored_login(&base)? => stored,
            (u, p) => {
                let unset = match (u.is_none(), p.is_none()) {
                    (true, true) => "BERTH_USERNAME and BERTH_PASSWORD are not set",
                    (true, false) => "BERTH_USERNAME is not set",
                    _ => "BERTH_PASSWORD is not set",
                };
                bail!(
                    "{unset}: berth admin logs in with them, or with the stored login of \
                     `berth login <host> --store-password`. Set BERTH_USERNAME to an \
                     administrator's name and BERTH_PASSWORD to their password or personal access token, e.g. \
                     `export BERTH_USERNAME=admin; read -rs BERTH_PASSWORD; export BERTH_PASSWORD` \
                     (the password is never taken from a flag)"
                );
            }
        };
        Ok(Self {
            base,
            username,
            password,
        })
    }

    /// A client for this connection.
    pub fn connect(self) -> anyhow::Result<Api> {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Api { conn: self, http })
    }
}

/// The admin API of one registry, logged in.
pub struct Api {
    conn: Connection,
    http: reqwest::blocking::Client,
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No answer: the registry is down, unreachable, or the URL is wrong.
    Transport {
        /// The registry's URL.
        base: String,
        /// reqwest's message.
        cause: String,
    },
    /// An error answer, with the registry's message.
    Answer {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The error code of the body (empty when there was none).
        code: String,
        /// The registry's message, verbatim.
        message: String,
    },
}

impl CallError {
    /// Whether the failure concerns the login or the connection rather than
    /// the one request: retrying other requests would fail the same way.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Answer { status, .. } => matches!(status.as_u16(), 401 | 403 | 429 | 503),
        }
    }

    /// The body's error code, if the registry answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Answer { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport { base, cause } => write!(
                f,
                "no answer from the registry at {base} ({cause}); check --registry (or \
                 BERTH_REGISTRY) and that `berth serve` runs there"
            ),
            Self::Answer {
                status, message, ..
            } if !message.is_empty() => write!(f, "the registry answered {status}: {message}"),
            Self::Answer { status, .. } => write!(
                f,
                "the registry answered {status} without an error message; check that --registry \
                 points at a berth registry with the admin API"
            ),
        }
    }
}

impl std::error::Error for CallError {}

impl Api {
    /// `method` on `/api/v1/<segments...>` (each segment percent-encoded),
    /// with an optional JSON body; the answer's JSON (`Null` when empty).
    pub fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        self.call_with_query(method, segments, &[], body)
    }

    /// Like [`Self::call`], with query parameters (percent-encoded). A body
    /// goes as `Content-Type: application/json`, which the admin API requires.
    pub fn call_with_query(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let mut url = self.conn.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(&self.conn.username, Some(&self.conn.password));
        if let Some(body) = body {
            // `json` sets `Content-Type: application/json`.
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| {
            // reqwest's own message ("error sending request") hides the
            // reason (refused, DNS, TLS) in its sources.
            let e = e.without_url();
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                cause.push_str(": ");
                cause.push_str(&inner.to_string());
                source = inner.source();
            }
            CallError::Transport {
                base: self.conn.base.to_string(),
                cause,
            }
        };
        let response = request.send().map_err(transport)?;
        let status = response.status();
        let text = response.text().map_err(transport)?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return Ok(json.unwrap_or(Value::Null));
        }
        let first = json.as_ref().and_then(|j| j["errors"].get(0)).cloned();
        let field = |name: &str| {
            first
                .as_ref()
                .and_then(|e| e[name].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        Err(CallError::Answer {
            status,
            code: field("code"),
            message: field("message"),
        })
    }
}

/// The login `berth login <host[:port]>` stored for the registry at `base`
/// (a user name and password, as `--store-password` keeps them; the refresh
/// token a plain login stores cannot call the admin API).
fn stored_login(base: &Url) -> anyhow::Result<Option<(String, String)>> {
    let Some(host) = base.host_str() else {
        return Ok(None);
    };
    let name = match base.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let Ok(registry) = Registry::parse(&name) else {
        return Ok(None);
    };
    let key = registry.credential_key();
    let found = CredentialStore::from_env()
        .lookup(&key)
        .with_context(|| format!("cannot read the stored login for {key}"))?;
    match found {
        Some(Credential::Basic { username, password }) => Ok(Some((username, password))),
        Some(Credential::IdentityToken(_)) => bail!(
            "the stored login for {key} is a refresh token (what `berth login` stores by \
             default), and the admin API takes only a user name and password: log in with \
             `berth login {name} -u USER --store-password`, or set BERTH_USERNAME and \
             BERTH_PASSWORD"
        ),
        None => Ok(None),
    }
}

/// Writes to stdout; a closed pipe (`berth admin ... | head`) ends the
/// program with success, as the reader has what it wanted.
pub fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.context("cannot write to stdout"),
    }
}

/// A string field of an answer (empty when missing).
pub fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or_default()
}
