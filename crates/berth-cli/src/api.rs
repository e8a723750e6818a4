//! The client of berth's JSON API (`/api/v1/`): where the registry is, who
//! logs in, and one call that turns any answer into JSON or an error naming
//! what went wrong. `berth admin ...` and the account commands (`berth
//! token|password|org|robot|repo`) share it.
//!
//! The connection is resolved from flags and variables before any I/O. The
//! credential is, in order: `BERTH_USERNAME` with `BERTH_PASSWORD` (a password
//! or personal access token; never a flag), else the login `berth login`
//! stored for the registry's host: a refresh token (what it stores by
//! default), sent as `Authorization: Bearer`, which the API accepts, so the
//! password need not be kept; or a password (`--store-password`), sent as
//! HTTP Basic.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_client::credentials::{Credential, CredentialStore};
use berth_core::reference::Registry;
use reqwest::Method;
use reqwest::Url;
use serde_json::Value;

/// Who logs in, and from where the credential came.
#[derive(Clone)]
pub enum Login {
    /// `BERTH_USERNAME` and `BERTH_PASSWORD`.
    Environment {
        /// The user name.
        username: String,
        /// The password or personal access token.
        password: String,
    },
    /// The login `berth login` stored under `key`.
    Stored {
        /// The registry's credential key (`host:port`).
        key: String,
        /// The stored credential: a password or a refresh token.
        credential: Credential,
    },
}

/// Where the registry is and who logs in: resolved before any I/O.
pub struct Connection {
    base: Url,
    login: Login,
}

impl Connection {
    /// Checks the registry URL and finds the credential (see the module doc).
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
        let login = match (var("BERTH_USERNAME"), var("BERTH_PASSWORD")) {
            (Some(username), Some(password)) => Login::Environment { username, password },
            (None, None) if let Some((key, credential)) = stored_login(&base)? => {
                Login::Stored { key, credential }
            }
            (u, p) => {
                let unset = match (u.is_none(), p.is_none()) {
                    (true, true) => "BERTH_USERNAME and BERTH_PASSWORD are not set",
                    (true, false) => "BERTH_USERNAME is not set",
                    _ => "BERTH_PASSWORD is not set",
                };
                let host = host_key(&base).unwrap_or_else(|| "HOST".to_owned());
                bail!(
                    "{unset}, and no login is stored for {host}: log in with `berth login {host} \
                     -u USER` (berth keeps a refresh token, not the password), or set \
                     BERTH_USERNAME to a user's name and BERTH_PASSWORD to their password or \
                     personal access token, e.g. `export BERTH_USERNAME=admin; read -rs \
                     BERTH_PASSWORD; export BERTH_PASSWORD` (the password is never taken from a flag)"
                );
            }
        };
        Ok(Self { base, login })
    }

    /// A client for this connection.
    pub fn connect(self) -> anyhow::Result<Api> {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Api {
            conn: self,
            http,
            next: std::sync::Mutex::default(),
        })
    }
}

/// `host[:port]` of a URL, as `berth login` keys its logins.
pub fn host_key(base: &Url) -> Option<String> {
    let host = base.host_str()?;
    Some(match base.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// The API of one registry, logged in.
pub struct Api {
    conn: Connection,
    http: reqwest::blocking::Client,
    /// The `Link: <...>; rel="next"` target of the last answer, if any.
    next: std::sync::Mutex<Option<String>>,
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
        self.call_within(method, segments, query, body, None)
    }

    /// Like [`Self::call_with_query`], waiting up to `timeout` for the answer
    /// instead of the client's two minutes (a garbage collection).
    pub fn call_within(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<Value, CallError> {
        let mut url = self.conn.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method, url);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request = match &self.conn.login {
            Login::Environment { username, password }
            | Login::Stored {
                credential: Credential::Basic { username, password },
                ..
            } => request.basic_auth(username, Some(password)),
            Login::Stored {
                credential: Credential::IdentityToken(token),
                ..
            } => request.bearer_auth(token),
        };
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
        let next = response
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let text = response.text().map_err(transport)?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            *self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
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

impl Api {
    /// The login this client uses.
    pub fn login(&self) -> &Login {
        &self.conn.login
    }

    /// The registry's base URL.
    pub fn base(&self) -> &Url {
        &self.conn.base
    }

    /// Every entry of a paginated listing at `/api/v1/<segments...>`: the
    /// array `key` of each page, following `Link` until the last page.
    pub fn list_all(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        key: &str,
    ) -> Result<Vec<Value>, CallError> {
        let mut page = self.call_with_query(Method::GET, segments, query, None)?;
        let mut entries = Vec::new();
        loop {
            entries.extend(page[key].as_array().cloned().unwrap_or_default());
            let next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let Some(next) = next else {
                return Ok(entries);
            };
            page = self.get_path(&next)?;
        }
    }

    /// `GET` of a path and query the registry gave (a `Link` target).
    fn get_path(&self, path_and_query: &str) -> Result<Value, CallError> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let segments: Vec<String> = path
            .trim_start_matches("/api/v1/")
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.call_with_query(Method::GET, &segments, &pairs, None)
    }
}

/// The target of `Link: <target>; rel="next"`.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// The login `berth login <host[:port]>` stored for the registry at `base`
/// (a refresh token, or a password with `--store-password`), with its key.
fn stored_login(base: &Url) -> anyhow::Result<Option<(String, Credential)>> {
    let Some(name) = host_key(base) else {
        return Ok(None);
    };
    let Ok(registry) = Registry::parse(&name) else {
        return Ok(None);
    };
    let key = registry.credential_key();
    let found = CredentialStore::from_env()
        .lookup(&key)
        .with_context(|| format!("cannot read the stored login for {key}"))?;
    Ok(found.map(|credential| (key, credential)))
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

/// Rows as aligned columns, the first row the header; trailing spaces trimmed.
pub fn columns(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let line = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
