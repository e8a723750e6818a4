//! Workload identity: a CI job logs in with the OpenID Connect ID token its
//! platform issues it (GitHub Actions, GitLab CI), and keeps no secret of its
//! own.
//!
//! Where the ID token comes from is the caller's choice: a file, a variable
//! (GitLab's `id_tokens:` fills one), or GitHub Actions' ID token request,
//! which [`ActionsTokenRequest`] makes as GitHub's toolkit (`@actions/core`
//! `getIDToken`) does; the job needs `permissions: id-token: write` for its two
//! variables to be set:
//!
//! ```text
//! GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD
//!     Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN
//!  -> 200 {"count": 1, "value": JWT}
//! ```
//!
//! The registry's token service trades it for a registry token with the RFC
//! 8693 token exchange (section 2.1), at the realm of the registry's Bearer
//! challenge ([`Transport::token_service`], [`Transport::exchange_id_token`]):
//!
//! ```text
//! POST realm   (application/x-www-form-urlencoded)
//!      grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=JWT
//!      &subject_token_type=urn:ietf:params:oauth:token-type:id_token
//!      [&service=S][&client_id=berth][&scope=SCOPE( SCOPE)*]
//!  -> 200 a token response (plus `issued_token_type`, `token_type`)
//!  -> 400 {"error": "invalid_grant" | "invalid_request", "error_description": MESSAGE}
//! ```
//!
//! That exchange is the login's check. From then on the ID token is the
//! password of the user `oidc` ([`OIDC_USERNAME`]), as after `docker login -u
//! oidc -p "$ID_TOKEN"`: the transport asks for registry tokens with it as
//! with any password (`GET` with Basic), and asks again when one expires. A
//! 401 there means the ID token expired or no rule trusts it any more
//! ([`AuthError::StoredIdTokenRefused`]).
//!
//! The ID token is a bearer secret: [`IdToken`]'s `Debug` redacts it, no
//! [`Event`] or log carries it, and no error quotes it or a body holding it.

use std::fmt;
use std::time::{Duration, SystemTime};

use berth_core::token::{Grant, TokenRequest};
use berth_core::{ParseError, Scopes, TokenResponse};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::cache::{CachedToken, jwt_payload};
use super::error::AuthError;
use super::trace::{AuthorizationKind, Event, GrantKind, Observer};
use super::transport::{
    CLIENT_ID, MAX_ERROR_BODY, MAX_TOKEN_BODY, Request, Transport, read_limited, shown,
};
use crate::credentials::Credential;

pub use berth_core::token::OIDC_USERNAME;

/// GitHub Actions' variable naming its ID token endpoint.
pub const ACTIONS_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// GitHub Actions' variable holding the bearer token for that endpoint.
pub const ACTIONS_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// The longest message of a service quoted in an error.
const MAX_QUOTED: usize = 500;

/// A workload's OpenID Connect ID token (a JWT), as read: the signature is
/// the registry's to verify. Its `Debug` shows no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdToken(String);

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdToken(<redacted>)")
    }
}

impl IdToken {
    /// `text` (surrounding white space dropped, as a file or a variable may
    /// end with a newline) when it has the shape of a JWT: three base64url
    /// parts joined by dots, the payload a JSON object. The error never
    /// quotes the text.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let token = text.trim();
        let not = |reason| Err(AuthError::NotAJwt { reason });
        if token.is_empty() {
            return not("it is empty");
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return not("it does not have three parts joined by dots");
        };
        let base64url = |part: &str| {
            part.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
        };
        if header.is_empty() || !base64url(header) || !base64url(payload) || !base64url(signature) {
            return not("a part holds characters base64url does not use");
        }
        if jwt_payload(token).is_none() {
            return not("its payload is not a base64url-encoded JSON object");
        }
        Ok(Self(token.to_owned()))
    }

    /// The token itself, to send.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The payload's claims, unverified (`iss`, `sub`, `aud`, `exp`, and the
    /// platform's own): for telling the user what the token says.
    pub fn claims(&self) -> Value {
        jwt_payload(&self.0).unwrap_or_default()
    }

    /// The credential that presents it: user `oidc`, the token as password.
    pub fn credential(&self) -> Credential {
        Credential::Basic {
            username: OIDC_USERNAME.to_owned(),
            password: self.0.clone(),
        }
    }
}

/// GitHub Actions' ID token request: its endpoint and the bearer token for
/// it, from `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
#[derive(Clone)]
pub struct ActionsTokenRequest {
    url: Url,
    token: String,
}

impl fmt::Debug for ActionsTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionsTokenRequest")
            .field("url", &shown(&self.url))
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ActionsTokenRequest {
    /// The request the variables describe, read through `var`; `None` unless
    /// both are set and not empty (a job without `permissions: id-token:
    /// write` has neither).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, AuthError> {
        let var = |name| var(name).filter(|v| !v.is_empty());
        let (Some(url), Some(token)) = (var(ACTIONS_URL_VAR), var(ACTIONS_TOKEN_VAR)) else {
            return Ok(None);
        };
        let parsed = Url::parse(&url).map_err(|e| AuthError::Url {
            url: format!("${ACTIONS_URL_VAR}"),
            reason: e.to_string(),
        })?;
        Ok(Some(Self { url: parsed, token }))
    }

    /// The endpoint with `audience` appended to its query (GitHub's own
    /// `api-version` kept), as the toolkit appends `&audience=`.
    pub fn url_for(&self, audience: Option<&str>) -> Url {
        let mut url = self.url.clone();
        if let Some(audience) = audience {
            url.query_pairs_mut().append_pair("audience", audience);
        }
        url
    }

    /// Asks the endpoint for an ID token for `audience` (GitHub's default
    /// audience, the repository owner's URL, when `None`). The observer sees
    /// the request and the answer, never the query or a token.
    pub async fn fetch(
        &self,
        audience: Option<&str>,
        observer: Option<&Observer>,
    ) -> Result<IdToken, AuthError> {
        let url = self.url_for(audience);
        let shown_url = shown(&url);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("berth/{}", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(AuthError::Build)?;
        let mut authorization =
            HeaderValue::from_str(&format!("bearer {}", self.token)).map_err(|_| {
                AuthError::IdTokenRequest {
                    url: shown_url.clone(),
                    reason: format!("{ACTIONS_TOKEN_VAR} holds characters a header cannot carry"),
                }
            })?;
        authorization.set_sensitive(true);
        let emit = |event: Event| {
            if let Some(observer) = observer {
                observer.emit(&event);
            }
        };
        emit(Event::Request {
            method: Method::GET,
            url: shown_url.clone(),
            authorization: AuthorizationKind::Bearer,
        });
        let response = http
            .get(url)
            .header(AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|source| AuthError::Http {
                url: shown_url.clone(),
                source: source.without_url(),
            })?;
        let status = response.status();
        emit(Event::Response {
            status: status.as_u16(),
            url: shown_url.clone(),
        });
        let limit = if status.is_success() {
            MAX_TOKEN_BODY
        } else {
            MAX_ERROR_BODY
        };
        let body = read_limited(response, limit).await?;
        read_actions_answer(status, &body).map_err(|reason| AuthError::IdTokenRequest {
            url: shown_url,
            reason,
        })
    }
}

/// The ID token of the Actions endpoint's answer, or why there is none
/// (the status and the endpoint's `message`; never the body of a success,
/// which holds the token).
fn read_actions_answer(status: StatusCode, body: &[u8]) -> Result<IdToken, String> {
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["message"].as_str().map(quoted))
            .unwrap_or_default();
        let advice = match status.as_u16() {
            401 | 403 => {
                "; the request token is refused: it lives as long as the job, so this step must \
                 run in the job that set ACTIONS_ID_TOKEN_REQUEST_TOKEN"
            }
            _ => "",
        };
        return Err(if message.is_empty() {
            format!("HTTP {status}{advice}")
        } else {
            format!("HTTP {status}: {message}{advice}")
        });
    }
    let answer: Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
    let value = answer["value"]
        .as_str()
        .ok_or_else(|| "the answer has no `value` string".to_owned())?;
    IdToken::parse(value).map_err(|e| format!("its `value`: {e}"))
}

/// Where a registry's token service is: the realm and `service` of the
/// Bearer challenge its `GET /v2/` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenService {
    /// The realm URL, as the challenge names it.
    pub realm: String,
    /// The challenge's `service`: the audience a trust rule expects by default.
    pub service: Option<String>,
}

/// The registry token a token exchange gave (its value is redacted from
/// `Debug`).
#[derive(Debug, Clone)]
pub struct Exchanged {
    token: CachedToken,
    claims: Option<Value>,
}

impl Exchanged {
    /// The registry token's claims, unverified, when it is a readable JWT.
    pub fn claims(&self) -> Option<&Value> {
        self.claims.as_ref()
    }

    /// Who the registry says the job is: the registry token's `sub` (berth:
    /// `trust:<ns>/<rule>:<ID token sub>[@run:<id>]`).
    pub fn subject(&self) -> Option<&str> {
        self.claims.as_ref()?["sub"].as_str()
    }

    /// When the registry token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.token.expires_at()
    }

    /// The scopes granted, when the service says.
    pub fn granted(&self) -> Option<&Scopes> {
        self.token.granted()
    }
}

/// The form of an RFC 8693 exchange of `id_token` for a token for `scopes`
/// (none: a token that only proves the exchange works) at `service`.
pub fn exchange_form(id_token: &IdToken, service: Option<&str>, scopes: &Scopes) -> String {
    TokenRequest {
        service: service.map(str::to_owned),
        scopes: scopes.clone(),
        client_id: Some(CLIENT_ID.to_owned()),
        grant: Some(Grant::IdToken {
            id_token: id_token.secret().to_owned(),
        }),
        ..TokenRequest::default()
    }
    .to_form()
}

/// Why an exchange gave no token, before the realm and registry are named.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The token was refused: the OAuth2 `error` and `error_description`.
    Refused {
        status: u16,
        error: String,
        description: String,
    },
    /// No token exchange there.
    Unsupported { status: u16 },
    /// Another failure (429, 5xx).
    Failed { status: u16, message: String },
    /// A 200 whose body is not a token response.
    Unreadable(ParseError),
}

/// Reads the token service's answer to an exchange: the token (received at
/// `now`), or the refusal. The description is the service's, verbatim
/// (cut at 500 bytes); an OCI error body (`{"errors": [...]}`) is read when
/// the OAuth2 fields are missing.
fn read_exchange_answer(
    status: u16,
    body: &[u8],
    now: SystemTime,
) -> Result<(TokenResponse, CachedToken), Refusal> {
    if (200..300).contains(&status) {
        let parsed = TokenResponse::parse(body).map_err(Refusal::Unreadable)?;
        let token = CachedToken::from_response(&parsed, now);
        return Ok((parsed, token));
    }
    let json: Value = serde_json::from_slice(body).unwrap_or_default();
    let first = &json["errors"][0];
    let text = |value: &Value| value.as_str().filter(|s| !s.is_empty()).map(quoted);
    let error = text(&json["error"]).or_else(|| text(&first["code"]));
    let description = text(&json["error_description"]).or_else(|| text(&first["message"]));
    if matches!(status, 404 | 405) || error.as_deref() == Some("unsupported_grant_type") {
        return Err(Refusal::Unsupported { status });
    }
    if matches!(status, 400 | 401 | 403) {
        return Err(Refusal::Refused {
            status,
            error: error.unwrap_or_else(|| "error".to_owned()),
            description: description.unwrap_or_else(|| "no description given".to_owned()),
        });
    }
    Err(Refusal::Failed {
        status,
        message: description
            .or(error)
            .unwrap_or_else(|| format!("HTTP {status}")),
    })
}

/// At most [`MAX_QUOTED`] bytes of a service's message, cut on a character
/// boundary, on one line.
fn quoted(text: &str) -> String {
    let mut end = text.len().min(MAX_QUOTED);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text
        .get(..end)
        .unwrap_or_default()
        .replace(['\n', '\r'], " ");
    if end < text.len() { cut + "..." } else { cut }
}

impl Transport {
    /// The registry's token service: `GET /v2/` without credentials, and
    /// the realm and `service` of the Bearer challenge of its 401.
    pub async fn token_service(&self) -> Result<TokenService, AuthError> {
        let none = || AuthError::NoTokenService {
            registry: self.registry().to_string(),
        };
        let request = Request::new(Method::GET, self.url("/v2/")?);
        let response = self.execute(&request, None).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Err(none());
        }
        let challenges = self.challenges(response.headers())?;
        let bearer = challenges.bearer().ok_or_else(none)?;
        let realm = bearer.realm().ok_or_else(|| AuthError::NoRealm {
            registry: self.registry().to_string(),
        })?;
        // A plain-HTTP realm of a remote registry is refused before an ID
        // token is fetched for it.
        self.realm_url(realm)?;
        Ok(TokenService {
            realm: realm.to_owned(),
            service: bearer
                .service()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }

    /// Trades `id_token` for a registry token for `scopes` at `at` (RFC
    /// 8693, see the module doc): the check of a workload identity login.
    /// The token is not cached (later requests present the ID token as a
    /// password).
    pub async fn exchange_id_token(
        &self,
        at: &TokenService,
        id_token: &IdToken,
        scopes: &Scopes,
    ) -> Result<Exchanged, AuthError> {
        let url = self.realm_url(&at.realm)?;
        self.emit(|| Event::TokenRequest {
            realm: shown(&url),
            method: Method::POST,
            grant: GrantKind::TokenExchange,
            service: at.service.clone(),
            scopes: scopes.clone(),
        });
        let request = Request::new(Method::POST, url)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(exchange_form(id_token, at.service.as_deref(), scopes));
        let response = self.execute(&request, None).await?;
        let status = response.status().as_u16();
        let limit = if response.status().is_success() {
            MAX_TOKEN_BODY
        } else {
            MAX_ERROR_BODY
        };
        let body = read_limited(response, limit).await?;
        let (realm, registry) = (at.realm.clone(), self.registry().to_string());
        match read_exchange_answer(status, &body, self.cache().now()) {
            Ok((parsed, token)) => {
                let claims = jwt_payload(token.token());
                self.emit(|| Event::TokenReceived {
                    claims: claims.clone(),
                    granted: token.granted().cloned(),
                    expires_in: parsed.expires_in,
                    expires_at: token.expires_at(),
                    lifetime: token.lifetime(),
                    expiry: token.expiry_source(),
                });
                Ok(Exchanged { token, claims })
            }
            Err(Refusal::Refused {
                status,
                error,
                description,
            }) => Err(AuthError::IdTokenRefused {
                realm,
                registry,
                status,
                error,
                description,
            }),
            Err(Refusal::Unsupported { status }) => Err(AuthError::TokenExchangeUnsupported {
                realm,
                registry,
                status,
            }),
            Err(Refusal::Failed { status, message }) => Err(AuthError::TokenService {
                realm,
                registry,
                status,
                message,
            }),
            Err(Refusal::Unreadable(source)) => Err(AuthError::TokenResponse { realm, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn jwt(claims: &Value) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.c2lnbmF0dXJl",
            part(&json!({"alg": "RS256", "typ": "JWT"})),
            part(claims)
        )
    }

    #[test]
    fn an_id_token_is_read_trimmed_and_never_shown() {
        let text = jwt(&json!({"iss": "https://gitlab.com", "sub": "project_path:acme/app"}));
        let token = IdToken::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(token.secret(), text);
        assert_eq!(token.claims()["sub"], "project_path:acme/app");
        assert_eq!(format!("{token:?}"), "IdToken(<redacted>)");
        let credential = token.credential();
        assert_eq!(
            credential,
            Credential::Basic {
                username: "oidc".into(),
                password: text.clone()
            }
        );
        assert!(!format!("{credential:?}").contains(&text));
    }

    #[test]
    fn what_is_not_a_jwt_is_refused_without_being_quoted() {
        let payload = URL_SAFE_NO_PAD.encode("[1]");
        for (text, reason) in [
            ("", "empty"),
            ("\n", "empty"),
            ("hunter2", "three parts"),
            ("a.b.c.d", "three parts"),
            ("a b.c.d", "base64url"),
            ("a.b%.c", "base64url"),
            (".e30.", "base64url"),
            ("eyJ.bm90IGpzb24.x", "JSON object"),
            (&format!("eyJ.{payload}.x"), "JSON object"),
        ] {
            let e = IdToken::parse(text).unwrap_err().to_string();
            assert!(
                e.contains(reason) && e.contains("not a JWT"),
                "{text:?}: {e}"
            );
            if !text.trim().is_empty() {
                assert!(!e.contains(text.trim()), "{e}");
            }
        }
        // An empty signature is the registry's to refuse (`alg: none`).
        assert!(IdToken::parse("eyJ.e30.").is_ok());
    }

    #[test]
    fn the_exchange_form_is_rfc_8693s() {
        let token = IdToken::parse(&jwt(&json!({"sub": "x"}))).unwrap();
        let scopes = Scopes::parse("repository:acme/app:pull,push").unwrap();
        let form = exchange_form(&token, Some("registry.example.com"), &scopes);
        assert_eq!(
            form,
            format!(
                "grant_type=urn:ietf:params:oauth:grant-type:token-exchange\
                 &subject_token={}\
                 &subject_token_type=urn:ietf:params:oauth:token-type:id_token\
                 &service=registry.example.com&client_id=berth\
                 &scope=repository:acme/app:pull,push",
                token.secret()
            )
        );
        let parsed = TokenRequest::from_form(&form).unwrap();
        assert_eq!(
            parsed.grant,
            Some(Grant::IdToken {
                id_token: token.secret().to_owned()
            })
        );
        assert_eq!(parsed.service.as_deref(), Some("registry.example.com"));
        assert_eq!(parsed.scopes, scopes);

        // No scope, no service: the bare exchange of a login check.
        let bare = exchange_form(&token, None, &Scopes::new());
        assert!(
            !bare.contains("scope=") && !bare.contains("service="),
            "{bare}"
        );
        assert!(bare.ends_with("&client_id=berth"), "{bare}");
        // Two scopes go space-separated in one `scope` (RFC 6749 section 3.3).
        let two = Scopes::parse("repository:a:pull repository:b:push").unwrap();
        assert!(
            exchange_form(&token, None, &two)
                .ends_with("&scope=repository:a:pull%20repository:b:push")
        );
    }

    #[test]
    fn a_granted_exchange_gives_the_token_its_subject_and_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = jwt(&json!({
            "iss": "registry.example.com",
            "sub": "trust:acme/release:repo:acme/app:ref:refs/heads/main@run:42",
            "aud": "registry.example.com",
            "exp": 1_800_000_300,
            "access": [],
            "berth_trust": [7],
        }));
        let body = json!({
            "token": token, "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer", "expires_in": 300,
            "issued_at": "2027-01-15T08:00:00Z", "scope": "",
        });
        let (parsed, cached) = read_exchange_answer(200, body.to_string().as_bytes(), now).unwrap();
        assert_eq!(parsed.expires_in, Some(300));
        assert_eq!(cached.token(), token);
        assert_eq!(
            cached.expires_at(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_300)
        );
        let exchanged = Exchanged {
            claims: jwt_payload(cached.token()),
            token: cached,
        };
        assert_eq!(
            exchanged.subject(),
            Some("trust:acme/release:repo:acme/app:ref:refs/heads/main@run:42")
        );
        assert!(!format!("{exchanged:?}").contains(&token));

        let e = read_exchange_answer(200, b"{\"token_type\":\"Bearer\"}", now).unwrap_err();
        assert!(matches!(e, Refusal::Unreadable(_)), "{e:?}");
    }

    #[test]
    fn refusals_carry_the_services_words() {
        let now = SystemTime::now();
        let read = |status, body: Value| {
            read_exchange_answer(status, body.to_string().as_bytes(), now).unwrap_err()
        };
        assert_eq!(
            read(
                400,
                json!({"error": "invalid_grant",
                       "error_description": "no trust rule accepts this token",
                       "errors": [{"code": "UNAUTHORIZED", "message": "other words"}]})
            ),
            Refusal::Refused {
                status: 400,
                error: "invalid_grant".into(),
                description: "no trust rule accepts this token".into()
            }
        );
        assert_eq!(
            read(
                400,
                json!({"error": "invalid_request", "error_description": "a token exchange needs a `subject_token`"})
            ),
            Refusal::Refused {
                status: 400,
                error: "invalid_request".into(),
                description: "a token exchange needs a `subject_token`".into()
            }
        );
        // An OCI error body where the OAuth2 fields are missing.
        assert_eq!(
            read(
                401,
                json!({"errors": [{"code": "UNAUTHORIZED", "message": "the ID token expired"}]})
            ),
            Refusal::Refused {
                status: 401,
                error: "UNAUTHORIZED".into(),
                description: "the ID token expired".into()
            }
        );
        assert_eq!(
            read_exchange_answer(403, b"<html>", now).unwrap_err(),
            Refusal::Refused {
                status: 403,
                error: "error".into(),
                description: "no description given".into()
            }
        );
        // No token exchange there: a registry of another kind.
        assert_eq!(
            read_exchange_answer(404, b"", now).unwrap_err(),
            Refusal::Unsupported { status: 404 }
        );
        assert_eq!(
            read(400, json!({"error": "unsupported_grant_type"})),
            Refusal::Unsupported { status: 400 }
        );
        assert_eq!(
            read(
                429,
                json!({"errors": [{"code": "TOOMANYREQUESTS", "message": "too many failed logins"}]})
            ),
            Refusal::Failed {
                status: 429,
                message: "too many failed logins".into()
            }
        );
        // A long description is cut, on one line.
        let long = format!("line\n{}", "é".repeat(400));
        let Refusal::Refused { description, .. } = read(
            400,
            json!({"error": "invalid_grant", "error_description": long}),
        ) else {
            panic!("refused")
        };
        assert!(description.len() <= MAX_QUOTED + 3 && description.ends_with("..."));
        assert!(description.starts_with("line "));
    }

    #[test]
    fn the_actions_request_appends_the_audience_and_reads_value() {
        let vars = |url: &'static str, token: &'static str| {
            move |name: &str| match name {
                ACTIONS_URL_VAR => Some(url.to_owned()),
                ACTIONS_TOKEN_VAR => Some(token.to_owned()),
                _ => None,
            }
        };
        let request = ActionsTokenRequest::from_vars(vars(
            "https://pipelines.actions.githubusercontent.com/abc/idtoken/x?api-version=2.0",
            "request-secret",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            request.url_for(Some("registry.example.com:5000")).as_str(),
            "https://pipelines.actions.githubusercontent.com/abc/idtoken/x?api-version=2.0\
             &audience=registry.example.com%3A5000"
        );
        assert_eq!(
            request.url_for(None).as_str(),
            "https://pipelines.actions.githubusercontent.com/abc/idtoken/x?api-version=2.0"
        );
        assert!(!format!("{request:?}").contains("request-secret"));
        assert!(
            ActionsTokenRequest::from_vars(vars("https://x/y", ""))
                .unwrap()
                .is_none()
        );
        assert!(ActionsTokenRequest::from_vars(|_| None).unwrap().is_none());
        let bad = ActionsTokenRequest::from_vars(vars("not a url", "t")).unwrap_err();
        assert!(bad.to_string().contains(ACTIONS_URL_VAR), "{bad}");

        let token = jwt(&json!({"sub": "repo:acme/app:ref:refs/heads/main"}));
        let body = json!({"count": 1, "value": token}).to_string();
        let read = read_actions_answer(StatusCode::OK, body.as_bytes()).unwrap();
        assert_eq!(read.secret(), token);
        let e = read_actions_answer(StatusCode::OK, b"{\"count\": 0}").unwrap_err();
        assert!(e.contains("no `value`"), "{e}");
        let e = read_actions_answer(StatusCode::OK, b"{\"value\": \"secretish\"}").unwrap_err();
        assert!(e.contains("not a JWT") && !e.contains("secretish"), "{e}");
        let e = read_actions_answer(
            StatusCode::UNAUTHORIZED,
            b"{\"message\": \"Bad credentials\"}",
        )
        .unwrap_err();
        assert!(
            e.starts_with("HTTP 401 Unauthorized: Bad credentials; the request token"),
            "{e}"
        );
        let e = read_actions_answer(StatusCode::INTERNAL_SERVER_ERROR, b"oops").unwrap_err();
        assert_eq!(e, "HTTP 500 Internal Server Error");
    }
}
