//! Workload identity: a CI job trades the OpenID Connect ID token its
//! platform issued it for a registry token, under rules its namespace's
//! owner set. No secret is stored anywhere.
//!
//! - [`rule`]: trust rules (issuer, audience, claim conditions, the actions
//!   and repository patterns they grant), parsed from the API's JSON, and
//!   whether one accepts a verified ID token.
//! - [`oidc`]: ID token verification: the configured issuers' discovery
//!   documents and keys (fetched, cached, fetched again for an unknown `kid`
//!   at most once per interval; cached keys keep working while the issuer
//!   is unreachable), RS256 and ES256 only, `iss`, `exp`, `nbf`, `iat`, age.
//! - [`exchange`]: the exchange itself, which the token service calls for
//!   the RFC 8693 grant and for Basic `oidc:<ID token>`: verify, find the
//!   rules that accept the token, name the workload, log the decision.
//!
//! What a workload may do is decided where everything else is,
//! [`crate::policy::allowed_actions`], from the rules that accepted its token
//! (carried in the registry token as `berth_trust`). Who may manage rules:
//! [`crate::policy::manage_trust`] and [`crate::policy::create_trust_rule`].
//!
//! Only the issuers the operator configured ([`OidcIssuer`], `--oidc-issuer`)
//! can be named by a rule, and a token of any other issuer is refused before
//! anything is fetched: a rule's author cannot make the registry fetch URLs
//! of their choosing.

pub mod exchange;
pub mod oidc;
pub mod rule;

use std::fmt;

pub use berth_core::token::OIDC_USERNAME;

/// Whether a Basic password is an ID token (a JWS in compact form) rather
/// than a password: three base64url parts whose header is a JSON object.
pub fn looks_like_id_token(password: &str) -> bool {
    password.starts_with("eyJ") && password.bytes().filter(|&b| b == b'.').count() == 2
}

/// The CI platforms whose tokens' claims berth knows, for checking the
/// claim names of rules (a misspelt claim would match nothing, silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerKind {
    /// GitHub Actions (github.com, or GitHub Enterprise Server).
    Github,
    /// GitLab CI (gitlab.com, or a self-managed GitLab).
    Gitlab,
    /// Any other OpenID Connect issuer: claim names are not checked.
    Generic,
}

impl IssuerKind {
    /// The name used in settings: `github`, `gitlab`, `generic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Generic => "generic",
        }
    }

    /// The claims this platform's ID tokens carry, from its published
    /// documentation (GitHub: "OpenID Connect reference", token claims;
    /// GitLab: "OpenID Connect (OIDC) authentication using ID tokens",
    /// token payload); `None` for a generic issuer.
    pub fn known_claims(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Github => Some(&[
                "sub",
                "aud",
                "iss",
                "jti",
                "actor",
                "actor_id",
                "base_ref",
                "check_run_id",
                "enterprise",
                "enterprise_id",
                "environment",
                "environment_node_id",
                "event_name",
                "head_ref",
                "job_workflow_ref",
                "job_workflow_sha",
                "ref",
                "ref_protected",
                "ref_type",
                "repository",
                "repository_id",
                "repository_owner",
                "repository_owner_id",
                "repository_visibility",
                "run_attempt",
                "run_id",
                "run_number",
                "runner_environment",
                "sha",
                "workflow",
                "workflow_ref",
                "workflow_sha",
            ]),
            Self::Gitlab => Some(&[
                "sub",
                "aud",
                "iss",
                "jti",
                "namespace_id",
                "namespace_path",
                "project_id",
                "project_path",
                "project_visibility",
                "user_id",
                "user_login",
                "user_email",
                "user_access_level",
                "user_identities",
                "pipeline_id",
                "pipeline_source",
                "job_id",
                "job_project_id",
                "job_project_path",
                "ref",
                "ref_type",
                "ref_path",
                "ref_protected",
                "groups_direct",
                "environment",
                "environment_protected",
                "environment_action",
                "deployment_tier",
                "runner_id",
                "runner_environment",
                "sha",
                "ci_config_ref_uri",
                "ci_config_sha",
            ]),
            Self::Generic => None,
        }
    }

    /// The claims that say whose job it is: a rule of a known platform must
    /// pin one of them (no wildcard in its first path segment), or it would
    /// accept the jobs of every account on that platform. Claims that name
    /// the workflow or CI file a job ran (`job_workflow_ref`,
    /// `ci_config_ref_uri`) are not among them: any repository may run a
    /// public reusable workflow, or another project's CI file; they narrow a
    /// rule, beside one of these.
    pub fn identifying_claims(self) -> &'static [&'static str] {
        match self {
            Self::Github => &[
                "repository",
                "repository_owner",
                "repository_id",
                "repository_owner_id",
                "sub",
                "workflow_ref",
            ],
            Self::Gitlab => &[
                "project_path",
                "namespace_path",
                "project_id",
                "namespace_id",
                "sub",
            ],
            Self::Generic => &[],
        }
    }

    /// The claim that tells one run of a job from another, appended to the
    /// registry token's `sub` (`@run:<id>`, `@job:<id>`).
    pub fn run_claim(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Github => Some(("run_id", "run")),
            Self::Gitlab => Some(("job_id", "job")),
            Self::Generic => None,
        }
    }
}

/// The issuer URL of GitHub Actions' ID tokens.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The issuer URL of gitlab.com's ID tokens.
pub const GITLAB_ISSUER: &str = "https://gitlab.com";

/// An OpenID Connect issuer the operator allows rules to name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIssuer {
    /// Whose tokens they are (which claims to expect).
    pub kind: IssuerKind,
    /// The issuer URL, exactly as its tokens' `iss` (no trailing `/`).
    pub url: String,
}

impl OidcIssuer {
    /// GitHub Actions and gitlab.com.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self {
                kind: IssuerKind::Github,
                url: GITHUB_ISSUER.to_owned(),
            },
            Self {
                kind: IssuerKind::Gitlab,
                url: GITLAB_ISSUER.to_owned(),
            },
        ]
    }

    /// Parses `[KIND=]URL` (`github=https://github.example.com/_services/token`,
    /// `https://gitlab.com`): without a kind, the two well-known URLs are
    /// their platforms and anything else is generic.
    pub fn parse(text: &str, allow_loopback: bool) -> Result<Self, String> {
        let (kind, url) = match text.split_once('=') {
            Some((kind, url)) => {
                let kind = match kind {
                    "github" => IssuerKind::Github,
                    "gitlab" => IssuerKind::Gitlab,
                    "generic" => IssuerKind::Generic,
                    other => {
                        return Err(format!(
                            "unknown issuer kind `{other}` in `{text}`: use github=URL, \
                             gitlab=URL, generic=URL or just the URL"
                        ));
                    }
                };
                (Some(kind), url)
            }
            None => (None, text),
        };
        let url = url.trim_end_matches('/').to_owned();
        check_issuer_url(&url, allow_loopback)?;
        let kind = kind.unwrap_or(match url.as_str() {
            GITHUB_ISSUER => IssuerKind::Github,
            GITLAB_ISSUER => IssuerKind::Gitlab,
            _ => IssuerKind::Generic,
        });
        Ok(Self { kind, url })
    }
}

impl fmt::Display for OidcIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind.as_str(), self.url)
    }
}

/// An issuer (or a URL its discovery document names) must be `https://`,
/// or `http://` on a loopback address when allowed (tests).
pub fn check_issuer_url(url: &str, allow_loopback: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" if parsed.host_str().is_some() => Ok(()),
        "http" if is_loopback(&parsed) => {
            if allow_loopback {
                Ok(())
            } else {
                Err(format!(
                    "`{url}` is plain HTTP: an OpenID Connect issuer must be https:// \
                     (a loopback issuer for tests needs --oidc-allow-loopback-issuers)"
                ))
            }
        }
        _ => Err(format!(
            "`{url}` is not an https:// URL: an OpenID Connect issuer's keys must come over TLS"
        )),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_parse_with_or_without_a_kind() {
        let github = OidcIssuer::parse("https://token.actions.githubusercontent.com/", false);
        assert_eq!(
            github,
            Ok(OidcIssuer {
                kind: IssuerKind::Github,
                url: GITHUB_ISSUER.to_owned()
            })
        );
        let ghes = OidcIssuer::parse("github=https://github.example.com/_services/token", false);
        assert_eq!(ghes.map(|i| i.kind), Ok(IssuerKind::Github));
        let other = OidcIssuer::parse("https://idp.example.com", false);
        assert_eq!(other.map(|i| i.kind), Ok(IssuerKind::Generic));
        assert!(OidcIssuer::parse("gitea=https://x.example", false).is_err());
    }

    #[test]
    fn issuers_are_https_unless_loopback_is_allowed() {
        assert!(OidcIssuer::parse("http://idp.example.com", true).is_err());
        let local = OidcIssuer::parse("github=http://127.0.0.1:8080", false).unwrap_err();
        assert!(local.contains("--oidc-allow-loopback-issuers"), "{local}");
        assert!(OidcIssuer::parse("github=http://127.0.0.1:8080", true).is_ok());
        assert!(OidcIssuer::parse("http://[::1]:9", true).is_ok());
        assert!(OidcIssuer::parse("http://localhost:9", true).is_ok());
        assert!(OidcIssuer::parse("ftp://127.0.0.1", true).is_err());
    }

    #[test]
    fn id_tokens_are_told_from_passwords() {
        assert!(looks_like_id_token(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
        ));
        assert!(!looks_like_id_token("hunter2"));
        assert!(!looks_like_id_token("berth_pat_abc"));
        assert!(!looks_like_id_token("eyJ.only-one-dot"));
    }
}
