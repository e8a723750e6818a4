//! Token endpoint requests: `GET /token` queries and OAuth2 `POST /token` forms.
//!
//! Grammars, from the Docker token specifications kept in CNCF distribution
//! (`docs/spec/auth/token.md` and `oauth.md`), encoded as
//! `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte, the
//! result must be UTF-8):
//!
//! ```text
//! GET  /token?service=S&scope=SCOPE[&scope=SCOPE...][&offline_token=true][&client_id=C][&account=A]
//! POST /token
//!      grant_type=password&username=U&password=P | grant_type=refresh_token&refresh_token=R
//!      | grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=JWT
//!        &subject_token_type=urn:ietf:params:oauth:token-type:id_token
//!      [&service=S][&client_id=C][&scope=SCOPE( SCOPE)*][&access_type=offline]
//! ```
//!
//! The token exchange (RFC 8693, section 2.1) trades a workload's OpenID
//! Connect ID token for a registry token; `subject_token_type` is the ID
//! token type, or the plain JWT type (section 3), which names the same thing.
//!
//! A `scope` value may itself hold several space-separated scopes (see
//! [`crate::scope`]). Passwords and refresh tokens never appear in `Debug`
//! output, and errors quote the input with their values replaced by `<redacted>`.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::Redacted;
use crate::error::{ParseError, ParseErrorKind};
use crate::scope::Scopes;

/// Query characters left unescaped when printing: unreserved ones plus the
/// scope punctuation `:/,*`, which RFC 3986 allows in a query, for readability.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'/')
    .remove(b',')
    .remove(b'*');

/// Form parameters whose values are secrets, redacted from error messages.
const SECRET_PARAMS: [&str; 5] = [
    "password",
    "refresh_token",
    "access_token",
    "client_secret",
    "subject_token",
];

/// RFC 8693's `grant_type` for a token exchange.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's token type of an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693's token type of a JWT (an ID token is one).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The user name under which an ID token is sent as an HTTP Basic password
/// to be exchanged (`docker login -u oidc -p "$ID_TOKEN"`): berth's token
/// service and client agree on it.
pub const OIDC_USERNAME: &str = "oidc";
/// RFC 8693's token type of the access token a token exchange issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The credentials of an OAuth2 token request (`POST /token`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Grant {
    /// `grant_type=password`: a user name and password (or personal access token).
    Password {
        /// The account name.
        username: String,
        /// The secret; redacted from `Debug`.
        password: String,
    },
    /// `grant_type=refresh_token`: a refresh token issued earlier with offline access.
    RefreshToken {
        /// The secret; redacted from `Debug`.
        refresh_token: String,
    },
    /// RFC 8693 token exchange of an OpenID Connect ID token (a CI job's
    /// workload identity) for a registry token.
    IdToken {
        /// The ID token (a JWT); redacted from `Debug`.
        id_token: String,
    },
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &Redacted)
                .finish(),
            Self::RefreshToken { .. } => f
                .debug_struct("RefreshToken")
                .field("refresh_token", &Redacted)
                .finish(),
            Self::IdToken { .. } => f
                .debug_struct("IdToken")
                .field("id_token", &Redacted)
                .finish(),
        }
    }
}

/// A request to the token endpoint, from a `GET` query or an OAuth2 `POST` form.
///
/// On `GET`, credentials travel in an HTTP Basic `Authorization` header, so
/// [`TokenRequest::from_query`] leaves `grant` empty for the server to fill.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// The service the token is for (the challenge's `service`).
    pub service: Option<String>,
    /// The scopes asked for, merged per resource.
    pub scopes: Scopes,
    /// Whether a refresh token is wanted (`offline_token=true` or `access_type=offline`).
    pub offline: bool,
    /// The client's self-chosen name, for logs.
    pub client_id: Option<String>,
    /// The account the client believes it authenticates as (`GET` only).
    pub account: Option<String>,
    /// The credentials of an OAuth2 request.
    pub grant: Option<Grant>,
}

impl TokenRequest {
    /// Parses the query string of `GET /token` (with or without its leading `?`).
    ///
    /// Unknown parameters are ignored; `scope` may repeat, each value possibly a
    /// space-separated list; `offline_token` is true when `true` or `1`.
    pub fn from_query(query: &str) -> Result<Self, ParseError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut request = Self::default();
        let mut scopes = Vec::new();
        for param in form_params(query)? {
            match param.key.as_str() {
                "service" => set_once(&mut request.service, query, &param)?,
                "client_id" => set_once(&mut request.client_id, query, &param)?,
                "account" => set_once(&mut request.account, query, &param)?,
                "offline_token" => {
                    request.offline = param.value.eq_ignore_ascii_case("true") || param.value == "1"
                }
                "scope" => scopes.push(param.value),
                _ => {}
            }
        }
        request.scopes = parse_scopes(&scopes)?;
        Ok(request)
    }

    /// Parses the form body of an OAuth2 `POST /token`.
    ///
    /// `grant_type` is required: `password` needs `username` and `password`,
    /// `refresh_token` needs `refresh_token`, a token exchange needs
    /// `subject_token` and an ID token (or JWT) `subject_token_type`.
    /// Unknown parameters are ignored.
    pub fn from_form(body: &str) -> Result<Self, ParseError> {
        let mut request = Self::default();
        let (mut grant_type, mut username, mut password, mut refresh) = (None, None, None, None);
        let (mut subject_token, mut subject_token_type) = (None, None);
        let mut grant_param = None;
        let mut scopes = Vec::new();
        for param in form_params(body)? {
            match param.key.as_str() {
                "grant_type" => {
                    set_once(&mut grant_type, body, &param)?;
                    grant_param = Some(param);
                }
                "username" => set_once(&mut username, body, &param)?,
                "password" => set_once(&mut password, body, &param)?,
                "refresh_token" => set_once(&mut refresh, body, &param)?,
                "subject_token" => set_once(&mut subject_token, body, &param)?,
                "subject_token_type" => set_once(&mut subject_token_type, body, &param)?,
                "service" => set_once(&mut request.service, body, &param)?,
                "client_id" => set_once(&mut request.client_id, body, &param)?,
                "access_type" => request.offline = param.value == "offline",
                "scope" => scopes.push(param.value),
                _ => {}
            }
        }
        let grant = match (grant_type.as_deref(), username, password, refresh) {
            (Some("password"), Some(username), Some(password), _) => {
                Grant::Password { username, password }
            }
            (Some("password"), ..) => {
                return Err(request_err(
                    body,
                    body.len(),
                    0,
                    "`grant_type=password` needs both `username` and `password`",
                ));
            }
            (Some("refresh_token"), _, _, Some(refresh_token)) => {
                Grant::RefreshToken { refresh_token }
            }
            (Some("refresh_token"), ..) => {
                return Err(request_err(
                    body,
                    body.len(),
                    0,
                    "`grant_type=refresh_token` needs a `refresh_token` parameter",
                ));
            }
            (Some(TOKEN_EXCHANGE_GRANT), ..) => {
                exchanged_token(body, subject_token, subject_token_type.as_deref())?
            }
            (Some(other), ..) => {
                let at = grant_param.as_ref().map_or(0, |p| p.start);
                let value_at = grant_param.as_ref().map_or(0, |p| p.value_at);
                return Err(request_err(
                    body,
                    at,
                    value_at,
                    format!(
                        "unsupported grant_type `{}`: use `password`, `refresh_token` or \
                         `{TOKEN_EXCHANGE_GRANT}`",
                        excerpt(other)
                    ),
                ));
            }
            (None, ..) => {
                return Err(request_err(
                    body,
                    body.len(),
                    0,
                    "`grant_type` is required: use `password`, `refresh_token` or \
                     `urn:ietf:params:oauth:grant-type:token-exchange`",
                ));
            }
        };
        request.grant = Some(grant);
        request.scopes = parse_scopes(&scopes)?;
        Ok(request)
    }

    /// The canonical query string for `GET /token` (without `?`): `service`,
    /// one `scope` per resource, `offline_token`, `client_id`, `account`.
    /// The grant is not included: on `GET` it travels as HTTP Basic credentials.
    pub fn to_query(&self) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        params.extend(self.service.iter().map(|s| ("service", s.clone())));
        params.extend(self.scopes.iter().map(|s| ("scope", s.to_string())));
        if self.offline {
            params.push(("offline_token", "true".to_owned()));
        }
        params.extend(self.client_id.iter().map(|c| ("client_id", c.clone())));
        params.extend(self.account.iter().map(|a| ("account", a.clone())));
        encode_params(&params)
    }

    /// The canonical OAuth2 form body for `POST /token`: the grant, `service`,
    /// `client_id`, one space-separated `scope`, `access_type=offline`.
    /// `account` has no place in the form and is left out; a request without a
    /// grant yields a body without `grant_type`, which servers refuse.
    pub fn to_form(&self) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        match &self.grant {
            Some(Grant::Password { username, password }) => {
                params.push(("grant_type", "password".to_owned()));
                params.push(("username", username.clone()));
                params.push(("password", password.clone()));
            }
            Some(Grant::RefreshToken { refresh_token }) => {
                params.push(("grant_type", "refresh_token".to_owned()));
                params.push(("refresh_token", refresh_token.clone()));
            }
            Some(Grant::IdToken { id_token }) => {
                params.push(("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()));
                params.push(("subject_token", id_token.clone()));
                params.push(("subject_token_type", ID_TOKEN_TYPE.to_owned()));
            }
            None => {}
        }
        params.extend(self.service.iter().map(|s| ("service", s.clone())));
        params.extend(self.client_id.iter().map(|c| ("client_id", c.clone())));
        if !self.scopes.is_empty() {
            params.push(("scope", self.scopes.to_string()));
        }
        if self.offline {
            params.push(("access_type", "offline".to_owned()));
        }
        encode_params(&params)
    }
}

/// The grant of a token exchange: the subject token, which must be an ID
/// token (or a JWT, the type RFC 8693 also allows for one).
fn exchanged_token(
    body: &str,
    subject_token: Option<String>,
    subject_token_type: Option<&str>,
) -> Result<Grant, ParseError> {
    let Some(id_token) = subject_token.filter(|t| !t.is_empty()) else {
        return Err(request_err(
            body,
            body.len(),
            0,
            "a token exchange needs a `subject_token` parameter: the workload's OpenID Connect ID token",
        ));
    };
    match subject_token_type {
        Some(ID_TOKEN_TYPE | JWT_TOKEN_TYPE) => Ok(Grant::IdToken { id_token }),
        Some(other) => Err(request_err(
            body,
            body.len(),
            0,
            format!(
                "unsupported subject_token_type `{}`: use `{ID_TOKEN_TYPE}` (or `{JWT_TOKEN_TYPE}`)",
                excerpt(other)
            ),
        )),
        None => Err(request_err(
            body,
            body.len(),
            0,
            format!("a token exchange needs `subject_token_type={ID_TOKEN_TYPE}`"),
        )),
    }
}

/// One decoded `key=value` pair and where it sits in the raw input.
struct FormParam {
    key: String,
    value: String,
    /// Byte offset of the pair in the raw input.
    start: usize,
    /// Byte offset of the value within the pair.
    value_at: usize,
}

/// Splits and decodes an `application/x-www-form-urlencoded` string.
fn form_params(raw: &str) -> Result<Vec<FormParam>, ParseError> {
    let mut params = Vec::new();
    let mut start = 0;
    for pair in raw.split('&') {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let value_at = raw_key.len() + 1;
        if !pair.is_empty() {
            let key = form_decode(raw_key).map_err(|(at, why)| request_err(raw, start, at, why))?;
            let value = form_decode(raw_value).map_err(|(at, why)| {
                let at = if is_secret(&key) { 0 } else { at };
                request_err(raw, start, value_at + at, why)
            })?;
            params.push(FormParam {
                key,
                value,
                start,
                value_at,
            });
        }
        start += pair.len() + 1;
    }
    Ok(params)
}

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be
/// UTF-8. Fails with the offset in `s` and a reason.
fn form_decode(s: &str) -> Result<String, (usize, &'static str)> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|c| (*c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Err((i, "`%` must be followed by two hex digits, e.g. `%20`"));
                };
                out.push(u8::try_from(hi * 16 + lo).unwrap_or_default());
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| (0, "the value is not UTF-8 once percent-decoded"))
}

/// Percent-encodes parameters into `k=v&k=v`.
fn encode_params(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret(key: &str) -> bool {
    SECRET_PARAMS.contains(&key)
}

/// `raw` with the values of secret parameters replaced by `<redacted>`.
fn redact(raw: &str) -> String {
    raw.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret(&form_decode(key).unwrap_or_default()) => {
                format!("{key}=<redacted>")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A request error at byte `local` of the pair starting at `pair_start` of
/// `raw`, quoting `raw` with its secrets redacted (positions follow the
/// redacted text).
fn request_err(
    raw: &str,
    pair_start: usize,
    local: usize,
    reason: impl Into<String>,
) -> ParseError {
    let before = redact(raw.get(..pair_start).unwrap_or_default()).len();
    ParseError::new(
        ParseErrorKind::TokenRequest,
        &redact(raw),
        before + local,
        reason,
    )
}

/// Sets a single-valued parameter; repeating it with another value is an
/// error, since two services or two passwords leave the request ambiguous.
fn set_once(slot: &mut Option<String>, raw: &str, param: &FormParam) -> Result<(), ParseError> {
    match slot {
        Some(existing) if *existing != param.value => Err(request_err(
            raw,
            param.start,
            0,
            format!(
                "`{}` is given twice with different values; send it once",
                excerpt(&param.key)
            ),
        )),
        _ => {
            *slot = Some(param.value.clone());
            Ok(())
        }
    }
}

/// Parses the `scope` values; an error quotes the scope that failed.
fn parse_scopes(values: &[String]) -> Result<Scopes, ParseError> {
    Scopes::parse_all(values.iter().map(String::as_str)).map_err(|e| {
        ParseError::new(
            ParseErrorKind::TokenRequest,
            e.input(),
            e.position(),
            format!("bad `scope` parameter: {}", e.reason()),
        )
    })
}

/// At most 32 bytes of `s`, cut on a character boundary, for quoting a value
/// inside a reason without letting a huge one flood a log.
fn excerpt(s: &str) -> &str {
    let mut end = s.len().min(32);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn query(s: &str) -> TokenRequest {
        TokenRequest::from_query(s).unwrap()
    }

    fn form(s: &str) -> TokenRequest {
        TokenRequest::from_form(s).unwrap()
    }

    #[test]
    fn get_query_from_the_token_spec() {
        let q = "service=registry.docker.io&scope=repository:samalba/my-app:pull,push\
                 &scope=repository:other:pull&offline_token=true&client_id=berth";
        let r = query(q);
        assert_eq!(r.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(
            r.scopes.to_string(),
            "repository:other:pull repository:samalba/my-app:pull,push"
        );
        assert!(r.offline);
        assert_eq!(r.client_id.as_deref(), Some("berth"));
        assert_eq!((r.account, r.grant), (None, None));
        assert_eq!(
            query(q).to_query(),
            "service=registry.docker.io&scope=repository:other:pull\
             &scope=repository:samalba/my-app:pull,push&offline_token=true&client_id=berth"
        );
    }

    #[test]
    fn one_scope_param_may_hold_a_list() {
        for q in [
            "?scope=repository:a:pull%20repository:b:push",
            "scope=repository:a:pull+repository:b:push&unknown=1&&",
            "scope=repository%3Aa%3Apull&scope=repository:b:push&scope=",
        ] {
            let r = query(q);
            assert_eq!(r.scopes.to_string(), "repository:a:pull repository:b:push");
            assert!(!r.offline && r.service.is_none());
        }
        let r = query("service=ghcr.io&account=toddysm&offline_token=1");
        assert!(r.offline && r.scopes.is_empty());
        assert_eq!(r.account.as_deref(), Some("toddysm"));
        assert!(!query("offline_token=false").offline);
    }

    #[test]
    fn bad_queries_name_the_problem() {
        let e = TokenRequest::from_query("service=x&scope=repository:foo").unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::TokenRequest);
        assert_eq!((e.input(), e.position()), ("repository:foo", 14));
        assert!(
            e.reason()
                .starts_with("bad `scope` parameter: expected `type:name:actions`")
        );
        let e = TokenRequest::from_query("service=x&client_id=%zz").unwrap_err();
        assert_eq!((e.input(), e.position()), ("service=x&client_id=%zz", 20));
        assert!(e.reason().contains("two hex digits"));
        let e = TokenRequest::from_query("service=%FF").unwrap_err();
        assert!(e.reason().contains("not UTF-8"));
        let e = TokenRequest::from_query("service=a&service=b").unwrap_err();
        assert_eq!(e.position(), 10);
        assert!(e.reason().contains("given twice"));
        assert_eq!(query("service=a&service=a").service.as_deref(), Some("a"));
    }

    #[test]
    fn post_forms_for_both_grants() {
        let r = form(
            "grant_type=password&username=toddysm&password=s3cr%26t+x&service=ghcr.io\
             &client_id=berth&access_type=offline&scope=repository:toddysm/python:pull,push",
        );
        let grant = Grant::Password {
            username: "toddysm".into(),
            password: "s3cr&t x".into(),
        };
        assert_eq!(r.grant.as_ref(), Some(&grant));
        assert_eq!(r.service.as_deref(), Some("ghcr.io"));
        assert_eq!(r.client_id.as_deref(), Some("berth"));
        assert!(r.offline);
        assert_eq!(r.scopes.to_string(), "repository:toddysm/python:pull,push");
        assert_eq!(
            r.to_form(),
            "grant_type=password&username=toddysm&password=s3cr%26t%20x&service=ghcr.io\
             &client_id=berth&scope=repository:toddysm/python:pull,push&access_type=offline"
        );

        let r = form(
            "grant_type=refresh_token&refresh_token=eyJ.a-b&service=ghcr.io&scope=repository:a:pull%20repository:b:pull",
        );
        let grant = Grant::RefreshToken {
            refresh_token: "eyJ.a-b".into(),
        };
        assert_eq!(r.grant, Some(grant));
        assert_eq!(r.scopes.len(), 2);
        assert!(!r.offline);
    }

    #[test]
    fn bad_forms_name_the_problem_and_hide_secrets() {
        let cases = [
            (
                "grant_type=client_credentials",
                11,
                "unsupported grant_type `client_credentials`: use `password`, `refresh_token` or \
                 `urn:ietf:params:oauth:grant-type:token-exchange`",
            ),
            (
                "service=x",
                9,
                "`grant_type` is required: use `password`, `refresh_token` or",
            ),
            (
                "grant_type=password&username=u",
                30,
                "needs both `username` and `password`",
            ),
            (
                "grant_type=refresh_token",
                24,
                "needs a `refresh_token` parameter",
            ),
        ];
        for (body, position, reason) in cases {
            let e = TokenRequest::from_form(body).unwrap_err();
            assert_eq!(e.kind(), ParseErrorKind::TokenRequest);
            assert_eq!((e.input(), e.position()), (body, position));
            assert!(e.reason().contains(reason), "{e}");
        }
        let e = TokenRequest::from_form("password=hun%zzter2&grant_type=password").unwrap_err();
        assert_eq!(e.input(), "password=<redacted>&grant_type=password");
        assert_eq!(e.position(), 9);
        let e =
            TokenRequest::from_form("password=hunter2&username=u&service=a&service=b").unwrap_err();
        assert_eq!(
            e.input(),
            "password=<redacted>&username=u&service=a&service=b"
        );
        assert_eq!(e.position(), 41);
        let e = TokenRequest::from_form("grant_type=password&username=u&password=hunter2")
            .map(|r| format!("{r:?}"))
            .unwrap();
        assert!(!e.contains("hunter2") && e.contains("<redacted>"), "{e}");
    }

    fn scopes() -> impl Strategy<Value = Scopes> {
        let scope =
            "(repository|registry|plugin):[a-z0-9/:._-]{1,12}:(pull|push|delete|\\*|pull,push)";
        proptest::collection::vec(scope, 0..4)
            .prop_map(|v| Scopes::parse_all(v.iter().map(String::as_str)).unwrap())
    }

    #[test]
    fn a_token_exchange_of_an_id_token() {
        let r = form(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &subject_token=eyJ.eyJ.sig&subject_token_type=urn:ietf:params:oauth:token-type:id_token\
             &scope=repository:acme/app:pull,push&service=berth",
        );
        assert_eq!(
            r.grant,
            Some(Grant::IdToken {
                id_token: "eyJ.eyJ.sig".to_owned()
            })
        );
        assert_eq!(r.scopes.to_string(), "repository:acme/app:pull,push");
        assert!(!format!("{:?}", r.grant).contains("eyJ"));
        let jwt = form(
            "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=a.b.c\
             &subject_token_type=urn:ietf:params:oauth:token-type:jwt",
        );
        assert!(matches!(jwt.grant, Some(Grant::IdToken { .. })));
        let exchange = "grant_type=urn:ietf:params:oauth:grant-type:token-exchange";
        let no_token = TokenRequest::from_form(exchange).unwrap_err().to_string();
        assert!(no_token.contains("`subject_token`"), "{no_token}");
        let wrong_type = TokenRequest::from_form(&format!(
            "{exchange}&subject_token=secret.jwt.sig\
             &subject_token_type=urn:ietf:params:oauth:token-type:access_token"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            wrong_type.contains("unsupported subject_token_type"),
            "{wrong_type}"
        );
        assert!(!wrong_type.contains("secret.jwt"), "{wrong_type}");
    }

    fn grant() -> impl Strategy<Value = Grant> {
        prop_oneof![
            (any::<String>(), any::<String>())
                .prop_map(|(username, password)| Grant::Password { username, password }),
            any::<String>().prop_map(|refresh_token| Grant::RefreshToken { refresh_token }),
            "[A-Za-z0-9._-]{1,40}".prop_map(|id_token| Grant::IdToken { id_token }),
        ]
    }

    fn request() -> impl Strategy<Value = TokenRequest> {
        let text = proptest::option::of(any::<String>());
        (text.clone(), scopes(), any::<bool>(), text.clone(), text).prop_map(
            |(service, scopes, offline, client_id, account)| TokenRequest {
                service,
                scopes,
                offline,
                client_id,
                account,
                grant: None,
            },
        )
    }

    proptest! {
        #[test]
        fn query_round_trips(r in request()) {
            prop_assert_eq!(TokenRequest::from_query(&r.to_query()).unwrap(), r);
        }

        #[test]
        fn form_round_trips(r in request(), grant in grant()) {
            let r = TokenRequest { account: None, grant: Some(grant), ..r };
            prop_assert_eq!(TokenRequest::from_form(&r.to_form()).unwrap(), r);
        }

        #[test]
        fn printing_is_canonical(s in "(service|scope|grant_type|password|offline_token|[a-z]{1,3})=[a-z0-9%:+ ,&=]{0,20}") {
            if let Ok(r) = TokenRequest::from_query(&s) {
                let printed = r.to_query();
                prop_assert_eq!(TokenRequest::from_query(&printed).unwrap().to_query(), printed);
            }
            if let Ok(r) = TokenRequest::from_form(&s) {
                let printed = r.to_form();
                prop_assert_eq!(TokenRequest::from_form(&printed).unwrap().to_form(), printed);
            }
        }

        #[test]
        fn parsing_never_panics(s in any::<String>()) {
            let _ = TokenRequest::from_query(&s);
            let _ = TokenRequest::from_form(&s);
        }
    }
}
