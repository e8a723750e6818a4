//! The token endpoint's request and response, and the claims of the JWT it issues.
//!
//! The response grammar, from the Docker token specification kept in CNCF
//! distribution (`docs/spec/auth/token.md`, "Token Response Fields"):
//!
//! ```text
//! response := JSON object {"token"?, "access_token"?, "expires_in"?, "issued_at"?,
//!                          "refresh_token"?, "scope"?}   (token or access_token required)
//! ```
//!
//! `issued_at` is an RFC 3339 date-time (`2024-02-05T04:59:31Z`, see
//! [`parse_rfc3339`]). Requests are in [`TokenRequest`], the JWT's claims in
//! [`Claims`]. Tokens never appear in `Debug` output nor in error messages: a
//! JSON response body is never quoted, since it may hold one.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{ParseError, ParseErrorKind};

mod claims;
mod request;
mod rfc3339;

pub use claims::{AccessEntry, Audience, Claims};
pub use request::{
    ACCESS_TOKEN_TYPE, Grant, ID_TOKEN_TYPE, JWT_TOKEN_TYPE, OIDC_USERNAME, TOKEN_EXCHANGE_GRANT,
    TokenRequest,
};
pub use rfc3339::{format_rfc3339, parse_rfc3339};

/// The shortest lifetime the token specification allows, and what clients
/// assume when a response has no `expires_in` (GHCR sends none).
const MIN_LIFETIME_SECS: u64 = 60;

/// Prints as `<redacted>` in `Debug` output, in place of a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The token endpoint's JSON answer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenResponse {
    /// The bearer token (Docker's name for it); redacted from `Debug`.
    pub token: String,
    /// The bearer token under its OAuth2 name; redacted from `Debug`.
    pub access_token: Option<String>,
    /// Seconds the token stays valid, as sent.
    pub expires_in: Option<u64>,
    /// When the token was issued, RFC 3339, as sent.
    pub issued_at: Option<String>,
    /// A refresh token, when offline access was asked for; redacted from `Debug`.
    pub refresh_token: Option<String>,
    /// The granted scopes, as OAuth2 servers echo them.
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token", &Redacted)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| Redacted),
            )
            .field("expires_in", &self.expires_in)
            .field("issued_at", &self.issued_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| Redacted),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

/// The fields of a token response as found, before the checks of [`TokenResponse::parse`].
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with `token` or `access_token`")]
struct RawTokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<Value>,
    issued_at: Option<Value>,
    refresh_token: Option<String>,
    scope: Option<Value>,
}

impl TokenResponse {
    /// What a server sends: `token` and `access_token` equal, `expires_in`
    /// (raised to the minimum of 60 s) and `issued_at` in RFC 3339 UTC.
    pub fn issued(token: String, lifetime_secs: u64, issued_at_unix: i64) -> Self {
        Self {
            access_token: Some(token.clone()),
            token,
            expires_in: Some(lifetime_secs.max(MIN_LIFETIME_SECS)),
            issued_at: Some(format_rfc3339(issued_at_unix)),
            refresh_token: None,
            scope: None,
        }
    }

    /// Parses a token response body.
    ///
    /// `token` or `access_token` is required (Docker Hub sends both, some OAuth2
    /// servers only `access_token`, GHCR only `token`); `token` wins when both
    /// differ. Unknown fields are ignored. `expires_in` is read leniently (a
    /// float or a numeric string is accepted; a negative or unusable value
    /// counts as absent), and so are `issued_at` and `scope` when not strings.
    pub fn parse(body: &[u8]) -> Result<Self, ParseError> {
        let raw: RawTokenResponse = serde_json::from_slice(body)
            .map_err(|e| json_err(ParseErrorKind::TokenResponse, body, &e, false))?;
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let access_token = non_empty(raw.access_token);
        let Some(token) = non_empty(raw.token).or_else(|| access_token.clone()) else {
            return Err(ParseError::new(
                ParseErrorKind::TokenResponse,
                &quote_body(body),
                body.len(),
                "expected a non-empty `token` or `access_token` field",
            ));
        };
        let string = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(Self {
            token,
            access_token,
            expires_in: raw.expires_in.as_ref().and_then(lenient_seconds),
            issued_at: string(raw.issued_at),
            refresh_token: non_empty(raw.refresh_token),
            scope: string(raw.scope),
        })
    }

    /// The token to send as `Authorization: Bearer <token>`.
    pub fn bearer_token(&self) -> &str {
        if self.token.is_empty() {
            self.access_token.as_deref().unwrap_or_default()
        } else {
            &self.token
        }
    }

    /// How long the token may be used: `expires_in`, or 60 s when absent, and
    /// never below the specification's minimum of 60 s.
    pub fn lifetime_secs(&self) -> u64 {
        self.expires_in
            .unwrap_or(MIN_LIFETIME_SECS)
            .max(MIN_LIFETIME_SECS)
    }

    /// `issued_at` as Unix seconds, when present and valid RFC 3339.
    pub fn issued_at_unix(&self) -> Option<i64> {
        self.issued_at
            .as_deref()
            .and_then(|s| parse_rfc3339(s).ok())
    }

    /// The JSON body a server sends: always `token`, `access_token`,
    /// `expires_in` (at least 60) and, when known, `issued_at`; `refresh_token`
    /// and `scope` only when present.
    pub fn to_json(&self) -> String {
        self.to_json_with(&[])
    }

    /// [`Self::to_json`] with more string fields after the others (an RFC
    /// 8693 answer's `issued_token_type` and `token_type`).
    pub fn to_json_with(&self, extra: &[(&str, &str)]) -> String {
        let bearer = self.bearer_token();
        let mut fields = vec![
            ("token", Value::from(bearer)),
            (
                "access_token",
                Value::from(self.access_token.as_deref().unwrap_or(bearer)),
            ),
            ("expires_in", Value::from(self.lifetime_secs())),
        ];
        let optional = [
            ("issued_at", &self.issued_at),
            ("refresh_token", &self.refresh_token),
            ("scope", &self.scope),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                fields.push((key, Value::from(value.as_str())));
            }
        }
        fields.extend(extra.iter().map(|(key, value)| (*key, Value::from(*value))));
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    }
}

/// Reads `expires_in` leniently: an integer, a non-negative float (truncated)
/// or a string holding either. Anything else is treated as absent, so that the
/// client falls back to the safe minimum lifetime.
fn lenient_seconds(value: &Value) -> Option<u64> {
    let from_float = |f: f64| (f.is_finite() && f >= 0.0).then_some(f as u64);
    match value {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(from_float)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(from_float))
        }
        _ => None,
    }
}

/// The body to quote in a token response error: a JSON body may hold a token,
/// so only something that is not JSON (an HTML error page) is quoted.
fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.trim_start().starts_with(['{', '[']) {
        format!(
            "<{} bytes of JSON, not quoted: it may hold a token>",
            body.len()
        )
    } else {
        text.into_owned()
    }
}

/// A JSON error as a [`ParseError`], positioned at the byte serde stopped at.
fn json_err(kind: ParseErrorKind, body: &[u8], e: &serde_json::Error, quote: bool) -> ParseError {
    // serde_json reports a 1-based line and column; turn them into a byte offset.
    let line_start = body
        .split(|b| *b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(|line| line.len() + 1)
        .sum::<usize>();
    let position = (line_start + e.column().saturating_sub(1)).min(body.len());
    let input = if quote {
        String::from_utf8_lossy(body).into_owned()
    } else {
        quote_body(body)
    };
    ParseError::new(kind, &input, position, format!("not valid JSON here: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn response(s: &str) -> TokenResponse {
        TokenResponse::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn ghcr_response_has_only_token() {
        let r = response(r#"{"token": "djE6dG9kZHl..."}"#);
        assert_eq!(r.bearer_token(), "djE6dG9kZHl...");
        assert_eq!((r.lifetime_secs(), r.issued_at_unix()), (60, None));
        assert_eq!(r.access_token, None);
    }

    #[test]
    fn docker_hub_response() {
        let r = response(
            r#"{"token":"eyJhbGci.a.b","access_token":"eyJhbGci.a.b","expires_in":300,
                "issued_at":"2024-02-05T04:47:32.123456789Z"}"#,
        );
        assert_eq!(r.bearer_token(), "eyJhbGci.a.b");
        assert_eq!(r.lifetime_secs(), 300);
        assert_eq!(r.issued_at_unix(), Some(1_707_108_452));
    }

    #[test]
    fn oauth2_response_has_only_access_token() {
        let r = response(
            r#"{"access_token":"at","expires_in":3600,"refresh_token":"rt",
                "scope":"repository:a:pull","unknown":{"x":[1]}}"#,
        );
        assert_eq!((r.bearer_token(), r.lifetime_secs()), ("at", 3600));
        assert_eq!(r.refresh_token.as_deref(), Some("rt"));
        assert_eq!(r.scope.as_deref(), Some("repository:a:pull"));
        let r = response(r#"{"token":"t","access_token":"a"}"#);
        assert_eq!(r.bearer_token(), "t");
        let debug = format!("{r:?}");
        assert!(
            !debug.contains("\"t\"") && !debug.contains("\"a\""),
            "{debug}"
        );
    }

    #[test]
    fn expires_in_is_read_leniently() {
        let cases = [
            ("10", 60, Some(10)),
            ("300.9", 300, Some(300)),
            (r#""120""#, 120, Some(120)),
            (r#"" 90.5 ""#, 90, Some(90)),
            ("-5", 60, None),
            (r#""soon""#, 60, None),
            ("true", 60, None),
            ("null", 60, None),
        ];
        for (value, lifetime, expires_in) in cases {
            let r = response(&format!(r#"{{"token":"t","expires_in":{value}}}"#));
            assert_eq!(
                (r.lifetime_secs(), r.expires_in),
                (lifetime, expires_in),
                "{value}"
            );
        }
    }

    #[test]
    fn bad_responses_are_refused_without_quoting_tokens() {
        let e = TokenResponse::parse(b"<html>502 Bad Gateway</html>").unwrap_err();
        assert_eq!(
            (e.kind(), e.input(), e.position()),
            (
                ParseErrorKind::TokenResponse,
                "<html>502 Bad Gateway</html>",
                0
            )
        );
        for body in [
            r#"{"expires_in":300}"#,
            r#"{"token":"","access_token":null}"#,
        ] {
            let e = TokenResponse::parse(body.as_bytes()).unwrap_err();
            assert!(e.reason().contains("`token` or `access_token`"), "{e}");
        }
        let e = TokenResponse::parse(br#"{"token":"secret", "token": 5}"#).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = TokenResponse::parse(b"{\n\"token\": 5}").unwrap_err();
        assert_eq!(e.position(), 11);
        assert!(TokenResponse::parse(b"[]").is_err());
    }

    #[test]
    fn server_json_is_complete() {
        let r = TokenResponse::issued("abc".into(), 10, 1_707_109_171);
        assert_eq!(
            r.to_json(),
            r#"{"token":"abc","access_token":"abc","expires_in":60,"issued_at":"2024-02-05T04:59:31Z"}"#
        );
        let r = TokenResponse {
            refresh_token: Some("r\"t".into()),
            scope: Some("repository:a:pull".into()),
            ..TokenResponse::issued("abc".into(), 300, 0)
        };
        assert_eq!(
            r.to_json(),
            r#"{"token":"abc","access_token":"abc","expires_in":300,"issued_at":"1970-01-01T00:00:00Z","refresh_token":"r\"t","scope":"repository:a:pull"}"#
        );
        let exchanged = TokenResponse::issued("abc".into(), 300, 0).to_json_with(&[
            ("issued_token_type", ACCESS_TOKEN_TYPE),
            ("token_type", "Bearer"),
        ]);
        assert_eq!(
            exchanged,
            r#"{"token":"abc","access_token":"abc","expires_in":300,"issued_at":"1970-01-01T00:00:00Z","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer"}"#
        );
    }

    fn a_response() -> impl Strategy<Value = TokenResponse> {
        let text = proptest::option::of(any::<String>());
        (
            "[A-Za-z0-9._-]{1,20}",
            proptest::option::of(any::<u64>()),
            proptest::option::of(-62_167_219_200i64..253_402_300_799),
            text.clone(),
            text,
        )
            .prop_map(
                |(token, expires_in, issued, refresh_token, scope)| TokenResponse {
                    token: token.clone(),
                    access_token: Some(token),
                    expires_in: expires_in.map(|e| e.max(60)),
                    issued_at: issued.map(format_rfc3339),
                    refresh_token: refresh_token.filter(|r| !r.is_empty()),
                    scope,
                },
            )
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in any::<String>(), bytes in any::<Vec<u8>>()) {
            let _ = TokenResponse::parse(s.as_bytes());
            let _ = TokenResponse::parse(&bytes);
        }

        #[test]
        fn response_round_trips(r in a_response()) {
            let parsed = TokenResponse::parse(r.to_json().as_bytes()).unwrap();
            prop_assert_eq!(parsed.to_json(), r.to_json());
            prop_assert_eq!(parsed, TokenResponse { expires_in: Some(r.lifetime_secs()), ..r });
        }
    }
}
