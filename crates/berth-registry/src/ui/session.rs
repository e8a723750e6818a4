//! Who is looking at a page: the signed-in session from its cookie, or an
//! anonymous visitor; and the CSRF token every form of theirs carries.
//!
//! - The session cookie (`berth_session`, `__Host-berth_session` under an
//!   https public URL) holds 32 random bytes; the store
//!   keeps only their SHA-256 (`ui_sessions`), found in one indexed read per
//!   page, and compared in constant time. It is `HttpOnly` (no script
//!   reads it), `SameSite=Strict` (no other site's page sends it), `Secure`
//!   when the registry's public URL is `https`, and `Path=/`.
//! - A session ends after [`SESSION_SECS`] whatever the cookie says, at
//!   sign-out (its row is deleted), when the user's password changes (the
//!   store deletes the user's sessions with the change), when the personal
//!   access token it was signed in with is revoked or expires, and with the
//!   user.
//! - A form's CSRF token is the SHA-256 of a fixed label and the session's
//!   secret, or, before signing in, of the secret of a cookie of its own
//!   (`berth_csrf`, as strict as the session's): a page of another site can
//!   neither read it nor make the browser send the cookie it is checked
//!   against.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::pages;
use crate::Registry;
use crate::clock::now_unix;
use crate::http::admin::Caller;
use crate::http::router::AppState;
use crate::policy::{Principal, Subject};
use crate::server::proxy::ClientAddr;

/// How long a session lasts after signing in, in seconds (12 hours).
pub const SESSION_SECS: i64 = 12 * 3600;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "berth_session";
/// The name of the cookie the CSRF token of a visitor not signed in is derived from.
pub const CSRF_COOKIE: &str = "berth_csrf";

/// A cookie's name as set and read: under an https public URL with the
/// `__Host-` prefix, which browsers accept only from a secure origin, for
/// the whole host (`Path=/`, no `Domain`): a sibling subdomain or a
/// plain-http answer cannot plant one.
fn cookie_name(name: &str, secure: bool) -> std::borrow::Cow<'_, str> {
    if secure {
        std::borrow::Cow::Owned(format!("__Host-{name}"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Who is looking at a page.
pub struct Visitor {
    /// What policy is asked about: the signed-in user (narrowed by the
    /// token they signed in with), or anonymous.
    pub subject: Subject,
    /// The signed-in user as the API's handlers take them.
    pub caller: Option<Caller>,
    /// The address the request came from.
    pub client: IpAddr,
    /// The token this visitor's forms carry.
    pub csrf: String,
    /// Whether cookies get `Secure` (the public URL is `https`).
    pub secure: bool,
    /// Whether the registry runs without access control (everything is
    /// readable by everyone, and nobody signs in).
    pub open: bool,
    /// The path (and query) asked for: where signing in returns to.
    pub here: String,
    /// The hash of the session's secret, when signed in.
    session_hash: Option<[u8; 32]>,
    /// A CSRF cookie to set with the answer (a first visit).
    new_csrf_cookie: Option<String>,
}

impl Visitor {
    /// The signed-in user's principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.caller.as_ref().map(|c| &c.principal)
    }

    /// Refuses a form whose CSRF token is not this visitor's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), Box<Response>> {
        if bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes())) {
            return Ok(());
        }
        tracing::info!(target: "berth::audit", client = %self.client, subject = %self.subject.name(), "web form refused: CSRF token missing or wrong");
        Err(Box::new(pages::error_page(
            self,
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form's security token is missing or out of date (it may come from another \
             site, or from before you signed in or out). Nothing was changed: reload the page \
             and submit it again.",
        )))
    }

    /// Adds what the answer must set: the CSRF cookie of a first visit.
    pub fn finish(&self, mut response: Response) -> Response {
        if let Some(secret) = &self.new_csrf_cookie
            && let Ok(value) =
                HeaderValue::from_str(&cookie(CSRF_COOKIE, secret, None, self.secure))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    /// The hash of the session's secret, when signed in.
    pub fn session_hash(&self) -> Option<&[u8; 32]> {
        self.session_hash.as_ref()
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let r = &app.registry;
        let client = parts
            .extensions
            .get::<ClientAddr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
        let secure = r.config.public_url.starts_with("https://");
        let open = !r.config.access_control;
        let mut visitor = Visitor {
            subject: Subject::Anonymous,
            caller: None,
            client,
            csrf: String::new(),
            secure,
            open,
            // A form's target is no page to come back to.
            here: match parts.uri.path_and_query() {
                Some(p) if parts.method == axum::http::Method::GET => p.as_str().to_owned(),
                _ => "/ui/".to_owned(),
            },
            session_hash: None,
            new_csrf_cookie: None,
        };
        let session_secret = cookie_value(&parts.headers, &cookie_name(SESSION_COOKIE, secure))
            .filter(|s| well_formed(s));
        if let Some(secret) = session_secret.filter(|_| !open) {
            let hash = hash_secret(secret);
            match signed_in(r, &hash).await {
                Ok(Some(principal)) => {
                    visitor.csrf = csrf_token(secret);
                    visitor.session_hash = Some(hash);
                    visitor.caller = Some(Caller {
                        name: principal.name.clone(),
                        client,
                        principal: principal.clone(),
                    });
                    visitor.subject = Subject::User(principal);
                    return Ok(visitor);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read a web session");
                    return Err(pages::error_page(
                        &visitor,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Database unavailable",
                        "The registry's database did not answer; try again shortly.",
                    ));
                }
            }
        }
        match cookie_value(&parts.headers, &cookie_name(CSRF_COOKIE, secure))
            .filter(|s| well_formed(s))
        {
            Some(secret) => visitor.csrf = csrf_token(secret),
            None => {
                let secret = new_secret().map_err(|e| {
                    tracing::error!(error = %e, "no randomness for a CSRF cookie");
                    pages::error_page(
                        &visitor,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal error",
                        "The registry could not draw random numbers; the cause is in its log.",
                    )
                })?;
                visitor.csrf = csrf_token(&secret);
                visitor.new_csrf_cookie = Some(secret);
            }
        }
        Ok(visitor)
    }
}

/// The principal of the live session whose secret hashes to `hash`.
async fn signed_in(r: &Registry, hash: &[u8; 32]) -> Result<Option<Principal>, String> {
    let Some((user, pat)) = r
        .identity
        .session_by_hash(hash, now_unix())
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    r.authn
        .principal(&user.name, pat)
        .await
        .map_err(|e| e.to_string())
}

/// Starts a session of `principal`: stores it and returns the `Set-Cookie`
/// value that carries its secret.
pub async fn start(r: &Registry, principal: &Principal, secure: bool) -> Result<String, String> {
    let user = r
        .identity
        .user_by_name(&principal.name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("user {} vanished while signing in", principal.name))?;
    let secret = new_secret()?;
    let now = now_unix();
    r.identity
        .create_session(
            user.id,
            principal.token.as_ref().map(|t| t.token_id),
            &hash_secret(&secret),
            now,
            now + SESSION_SECS,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(cookie(SESSION_COOKIE, &secret, Some(SESSION_SECS), secure))
}

/// Ends the visitor's session; returns the `Set-Cookie` value that clears
/// the cookie.
pub async fn end(r: &Registry, visitor: &Visitor) -> Result<String, String> {
    if let Some(hash) = visitor.session_hash() {
        r.identity
            .delete_session(hash)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(cookie(SESSION_COOKIE, "", Some(0), visitor.secure))
}

/// A `Set-Cookie` value: `Path=/`, `HttpOnly`, `SameSite=Strict`, `Secure`
/// (and the `__Host-` prefix) when asked, `Max-Age` when given (else it
/// lasts the browser session).
fn cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> String {
    let name = cookie_name(name, secure);
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(secs) = max_age {
        cookie.push_str(&format!("; Max-Age={secs}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The value of cookie `name` among the request's `Cookie` headers.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// Whether a cookie value can be a secret of ours (43 base64url characters).
fn well_formed(secret: &str) -> bool {
    secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 32 random bytes, base64url.
fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The CSRF token of forms shown with the cookie secret `secret`.
fn csrf_token(secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"berth web form\0");
    hasher.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; berth_csrf=x"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("berth_session=y"));
        assert_eq!(cookie_value(&headers, "berth_session"), Some("y"));
        assert_eq!(cookie_value(&headers, CSRF_COOKIE), Some("x"));
        assert_eq!(cookie_value(&headers, "berth"), None);
    }

    proptest::proptest! {
        /// Any `Cookie` header reads without a panic, and a value found is
        /// one the header holds.
        #[test]
        fn any_cookie_header_reads(header in "[ -~]{0,200}") {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&header) {
                headers.insert(header::COOKIE, value);
            }
            if let Some(value) = cookie_value(&headers, SESSION_COOKIE) {
                proptest::prop_assert!(header.contains(value));
            }
        }
    }

    #[test]
    fn secrets_are_43_base64url_characters() {
        let secret = new_secret().unwrap_or_default();
        assert!(well_formed(&secret), "{secret}");
        assert!(!well_formed(&secret[1..]));
        assert!(!well_formed(&format!("{};", &secret[1..])));
    }

    #[test]
    fn csrf_tokens_differ_per_secret_and_never_are_the_secret() {
        let (a, b) = (
            new_secret().unwrap_or_default(),
            new_secret().unwrap_or_default(),
        );
        assert_ne!(csrf_token(&a), csrf_token(&b));
        assert_ne!(csrf_token(&a), a);
        assert_eq!(csrf_token(&a), csrf_token(&a));
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        assert_eq!(
            cookie("berth_session", "s", Some(60), true),
            "__Host-berth_session=s; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert_eq!(
            cookie("berth_csrf", "c", None, false),
            "berth_csrf=c; Path=/; HttpOnly; SameSite=Strict"
        );
    }
}
