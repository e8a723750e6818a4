//! Trust rules: which ID tokens a namespace accepts, and what they grant.
//!
//! ```text
//! rule      := namespace, name, issuer, audience, claims, actions, repositories
//! claims    := { claim-name: pattern }      (at least one)
//! pattern   := exact text | path glob       (`*` within a `/` segment, `**` across)
//! ```
//!
//! A rule accepts a verified ID token when the token's `iss` is the rule's
//! issuer, its `aud` contains the rule's audience, and every condition holds:
//! the claim is present, a string (numbers and booleans compare by their
//! JSON text, as GitLab sends `"true"` and GitHub `"42"` but another issuer
//! may not), and equal to the value, or matched by it when it holds `*`
//! (globbed as repository patterns are: `refs/tags/v*`,
//! `acme/app/.github/workflows/release.yml@refs/heads/*`).
//!
//! What a rule grants is bounded at creation: its repository patterns lie in
//! its namespace (a literal first component), which is all a namespace's
//! owner holds; its actions are pull, push, delete. Who may create it is
//! policy's ([`crate::policy::create_trust_rule`]).

use std::collections::BTreeMap;

use berth_core::scope::{Action, Actions};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{IssuerKind, OidcIssuer};
use crate::identity::patterns::{repo_pattern_matches, validate_repo_pattern};

/// The longest claim value or pattern accepted in a rule.
const MAX_VALUE_LEN: usize = 512;
/// The most claim conditions in one rule.
const MAX_CONDITIONS: usize = 16;
/// The most repository patterns in one rule.
const MAX_PATTERNS: usize = 32;

/// A condition on one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimPattern {
    /// The claim must be exactly this.
    Exact(String),
    /// The claim must match this path glob.
    Glob(String),
}

impl ClaimPattern {
    fn parse(text: &str) -> Self {
        if text.contains('*') {
            Self::Glob(text.to_owned())
        } else {
            Self::Exact(text.to_owned())
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Exact(s) | Self::Glob(s) => s,
        }
    }

    /// Whether `value` satisfies the condition.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => s == value,
            Self::Glob(pattern) => repo_pattern_matches(pattern, value),
        }
    }

    /// Whether the first `/` segment is fixed (no wildcard): the pattern
    /// names one account, not any.
    fn pins_owner(&self) -> bool {
        match self {
            Self::Exact(s) => !s.is_empty(),
            Self::Glob(s) => s
                .split('/')
                .next()
                .is_some_and(|first| !first.is_empty() && !first.contains('*')),
        }
    }
}

/// A stored trust rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRule {
    /// The rule's id (carried in registry tokens as `berth_trust`).
    pub id: i64,
    /// The user or organisation whose rule it is.
    pub namespace: String,
    /// Unique within the namespace.
    pub name: String,
    /// The issuer URL, as the tokens' `iss`.
    pub issuer: String,
    /// The audience the tokens must carry.
    pub audience: String,
    /// Claim name -> condition; all must hold.
    pub claims: BTreeMap<String, ClaimPattern>,
    /// What the rule grants on its repositories.
    pub actions: Actions,
    /// Repository patterns inside the namespace.
    pub repositories: Vec<String>,
    /// Who created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl TrustRule {
    /// Whether the rule accepts an ID token of `issuer` with `claims` (the
    /// token's payload, already verified).
    pub fn accepts(&self, issuer: &str, claims: &serde_json::Map<String, Value>) -> bool {
        self.issuer == issuer
            && audiences(claims).any(|aud| aud == self.audience)
            && self.claims.iter().all(|(name, pattern)| {
                claim_text(claims.get(name)).is_some_and(|value| pattern.matches(&value))
            })
    }

    /// `<namespace>/<name>`.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The rule as the API shows it.
    pub fn to_json(&self) -> Value {
        let claims = plain_claims(&self.claims);
        let actions: Vec<&str> = self.actions.iter().map(Action::as_str).collect();
        json!({
            "namespace": self.namespace,
            "name": self.name,
            "issuer": self.issuer,
            "audience": self.audience,
            "claims": claims,
            "actions": actions,
            "repositories": self.repositories,
            "created_by": self.created_by,
            "created_at": berth_core::token::format_rfc3339(self.created_at),
        })
    }

    /// The conditions as stored (a JSON object).
    pub fn claims_json(claims: &BTreeMap<String, ClaimPattern>) -> String {
        json!(plain_claims(claims)).to_string()
    }

    /// The conditions from their stored form.
    pub fn claims_from_json(text: &str) -> Result<BTreeMap<String, ClaimPattern>, String> {
        let plain: BTreeMap<String, String> =
            serde_json::from_str(text).map_err(|e| format!("claims `{text}`: {e}"))?;
        Ok(plain
            .into_iter()
            .map(|(k, v)| {
                let pattern = ClaimPattern::parse(&v);
                (k, pattern)
            })
            .collect())
    }
}

/// Claim name -> the condition as written.
fn plain_claims(claims: &BTreeMap<String, ClaimPattern>) -> BTreeMap<&str, &str> {
    claims
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The audiences of a token: `aud` as a string or an array of strings.
fn audiences(claims: &serde_json::Map<String, Value>) -> impl Iterator<Item = &str> {
    let values: Vec<&Value> = match claims.get("aud") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    values.into_iter().filter_map(Value::as_str)
}

/// A claim's value as text: strings as they are, numbers and booleans as
/// their JSON text; arrays, objects and null match nothing.
pub fn claim_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A rule as the API's `POST` body states it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// Unique within the namespace; a free `rule-N` when absent.
    pub name: Option<String>,
    /// One of the configured issuers' URLs.
    pub issuer: String,
    /// The audience tokens must carry; the registry's service when absent.
    pub audience: Option<String>,
    /// Claim name -> exact value or glob.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// Pull, push, delete; pull and push when absent.
    pub actions: Option<Vec<String>>,
    /// Repository patterns inside the namespace.
    #[serde(default)]
    pub repositories: Vec<String>,
}

/// A rule checked and ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRule {
    /// The namespace.
    pub namespace: String,
    /// `None`: the store picks a free `rule-N`.
    pub name: Option<String>,
    /// The issuer URL.
    pub issuer: String,
    /// The audience.
    pub audience: String,
    /// The conditions.
    pub claims: BTreeMap<String, ClaimPattern>,
    /// The actions.
    pub actions: Actions,
    /// The repository patterns.
    pub repositories: Vec<String>,
}

impl NewRule {
    /// Checks `body` as a rule of `namespace` on a registry whose service is
    /// `service` and whose operator allows `issuers`; the error says what is
    /// wrong and how to write it.
    pub fn parse(
        namespace: &str,
        body: RuleBody,
        issuers: &[OidcIssuer],
        service: &str,
    ) -> Result<Self, String> {
        if let Some(name) = &body.name {
            check_rule_name(name)?;
        }
        let issuer_url = body.issuer.trim_end_matches('/');
        let Some(issuer) = issuers.iter().find(|i| i.url == issuer_url) else {
            let allowed: Vec<&str> = issuers.iter().map(|i| i.url.as_str()).collect();
            return Err(format!(
                "issuer `{}` is not one this registry trusts; it trusts {} (the operator \
                 adds others with --oidc-issuer)",
                body.issuer,
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ));
        };
        let audience = match body.audience {
            Some(a) if a.is_empty() || a.len() > MAX_VALUE_LEN => {
                return Err(format!(
                    "the audience must be 1 to {MAX_VALUE_LEN} characters; leave it out for \
                     this registry's service name `{service}`"
                ));
            }
            Some(a) => a,
            None => service.to_owned(),
        };
        let claims = check_claims(issuer.kind, body.claims)?;
        let actions = match body.actions {
            None => [Action::Pull, Action::Push].into_iter().collect(),
            Some(names) if names.is_empty() => {
                return Err(
                    "`actions` is empty: a rule grants some of pull, push, delete".to_owned(),
                );
            }
            Some(names) => names
                .iter()
                .map(|a| match a.as_str() {
                    "pull" => Ok(Action::Pull),
                    "push" => Ok(Action::Push),
                    "delete" => Ok(Action::Delete),
                    other => Err(format!(
                        "unknown action `{other}`: a rule grants pull, push or delete"
                    )),
                })
                .collect::<Result<Actions, String>>()?,
        };
        let repositories = check_repositories(namespace, body.repositories)?;
        Ok(Self {
            namespace: namespace.to_owned(),
            name: body.name,
            issuer: issuer.url.clone(),
            audience,
            claims,
            actions,
            repositories,
        })
    }
}

/// `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn check_rule_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "rule name `{name}`: use 1 to 64 lower-case letters, digits, `.`, `_`, `-`, \
             starting with a letter or digit"
        ))
    }
}

fn check_claims(
    kind: IssuerKind,
    claims: BTreeMap<String, String>,
) -> Result<BTreeMap<String, ClaimPattern>, String> {
    if claims.is_empty() {
        return Err(match kind.identifying_claims().first() {
            Some(claim) => format!(
                "a rule needs claim conditions, or it would accept every job on the platform: \
                 e.g. \"claims\": {{\"{claim}\": \"...\"}}"
            ),
            None => "a rule needs at least one claim condition (e.g. on `sub`), or it would \
                     accept every token of the issuer"
                .to_owned(),
        });
    }
    if claims.len() > MAX_CONDITIONS {
        return Err(format!(
            "a rule has at most {MAX_CONDITIONS} claim conditions"
        ));
    }
    let mut parsed = BTreeMap::new();
    for (name, value) in claims {
        if name.is_empty() || name.len() > 64 {
            return Err(format!("claim name `{name}`: 1 to 64 characters"));
        }
        if matches!(name.as_str(), "iss" | "aud" | "exp" | "nbf" | "iat") {
            return Err(format!(
                "claim `{name}` is checked by the registry itself (issuer, audience, times): \
                 set `issuer` or `audience` instead"
            ));
        }
        if let Some(known) = kind.known_claims()
            && !known.contains(&name.as_str())
        {
            let close = known
                .iter()
                .find(|k| k.contains(name.as_str()) || name.contains(**k))
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "{} ID tokens carry no claim `{name}`{close}; their claims are: {}",
                match kind {
                    IssuerKind::Github => "GitHub Actions",
                    _ => "GitLab CI",
                },
                known.join(", ")
            ));
        }
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Err(format!(
                "the condition on `{name}` must be 1 to {MAX_VALUE_LEN} characters"
            ));
        }
        parsed.insert(name, ClaimPattern::parse(&value));
    }
    let identifying = kind.identifying_claims();
    if !identifying.is_empty()
        && !identifying
            .iter()
            .any(|claim| parsed.get(*claim).is_some_and(ClaimPattern::pins_owner))
    {
        return Err(format!(
            "a rule must name whose jobs it accepts: a condition on one of {} whose first \
             segment has no wildcard (e.g. `repository=acme/app` or `project_path=acme/*`)",
            identifying.join(", ")
        ));
    }
    Ok(parsed)
}

fn check_repositories(namespace: &str, patterns: Vec<String>) -> Result<Vec<String>, String> {
    if patterns.is_empty() {
        return Err(format!(
            "a rule names the repositories it grants access to: e.g. \"repositories\": \
             [\"{namespace}/app\"] or [\"{namespace}/**\"]"
        ));
    }
    if patterns.len() > MAX_PATTERNS {
        return Err(format!(
            "a rule has at most {MAX_PATTERNS} repository patterns"
        ));
    }
    for pattern in &patterns {
        validate_repo_pattern(pattern)
            .map_err(|e| format!("repository pattern `{pattern}`: {e}"))?;
        if pattern.split('/').next() != Some(namespace) {
            return Err(format!(
                "repository pattern `{pattern}` is outside namespace {namespace}: a rule of \
                 {namespace} grants access to {namespace}/... only"
            ));
        }
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github() -> Vec<OidcIssuer> {
        OidcIssuer::defaults()
    }

    fn body(claims: &[(&str, &str)], repositories: &[&str]) -> RuleBody {
        RuleBody {
            name: Some("release".into()),
            issuer: super::super::GITHUB_ISSUER.into(),
            audience: None,
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            actions: None,
            repositories: repositories.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn rule(claims: &[(&str, &str)]) -> TrustRule {
        let new =
            NewRule::parse("acme", body(claims, &["acme/app"]), &github(), "berth.test").unwrap();
        TrustRule {
            id: 1,
            namespace: new.namespace,
            name: "release".into(),
            issuer: new.issuer,
            audience: new.audience,
            claims: new.claims,
            actions: new.actions,
            repositories: new.repositories,
            created_by: "alice".into(),
            created_at: 0,
        }
    }

    fn token(claims: Value) -> serde_json::Map<String, Value> {
        let mut map = claims.as_object().unwrap().clone();
        map.entry("aud").or_insert(json!("berth.test"));
        map
    }

    #[test]
    fn a_rule_accepts_tokens_whose_claims_hold() {
        let r = rule(&[("repository", "acme/app"), ("ref", "refs/heads/main")]);
        let iss = super::super::GITHUB_ISSUER;
        let ok = token(json!({"repository": "acme/app", "ref": "refs/heads/main"}));
        assert!(r.accepts(iss, &ok));
        assert!(!r.accepts("https://gitlab.com", &ok), "another issuer");
        let branch = token(json!({"repository": "acme/app", "ref": "refs/heads/dev"}));
        assert!(!r.accepts(iss, &branch));
        let missing = token(json!({"repository": "acme/app"}));
        assert!(!r.accepts(iss, &missing));
        let mut other_aud = ok.clone();
        other_aud.insert("aud".into(), json!(["sts.example", "other"]));
        assert!(!r.accepts(iss, &other_aud));
        other_aud.insert("aud".into(), json!(["sts.example", "berth.test"]));
        assert!(r.accepts(iss, &other_aud), "one of several audiences");
    }

    #[test]
    fn globs_stay_within_path_segments() {
        let r = rule(&[("repository", "acme/app"), ("ref", "refs/tags/v*")]);
        let iss = super::super::GITHUB_ISSUER;
        let with_ref = |r: &str| token(json!({"repository": "acme/app", "ref": r}));
        assert!(r.accepts(iss, &with_ref("refs/tags/v1.2.0")));
        assert!(!r.accepts(iss, &with_ref("refs/tags/x1")));
        assert!(!r.accepts(iss, &with_ref("refs/tags/v1/evil")));
        let any = rule(&[("repository", "acme/*"), ("ref", "refs/**")]);
        let t = token(json!({"repository": "acme/lib", "ref": "refs/heads/a/b"}));
        assert!(any.accepts(iss, &t));
        let t = token(json!({"repository": "acmex/lib", "ref": "refs/heads/a"}));
        assert!(!any.accepts(iss, &t));
    }

    #[test]
    fn numbers_and_booleans_compare_as_text() {
        let r = rule(&[("repository_id", "42"), ("ref_protected", "true")]);
        let iss = super::super::GITHUB_ISSUER;
        assert!(r.accepts(
            iss,
            &token(json!({"repository_id": 42, "ref_protected": true}))
        ));
        assert!(r.accepts(
            iss,
            &token(json!({"repository_id": "42", "ref_protected": "true"}))
        ));
        assert!(!r.accepts(
            iss,
            &token(json!({"repository_id": [42], "ref_protected": true}))
        ));
    }

    #[test]
    fn rules_that_would_grant_too_much_are_refused() {
        let parse = |claims: &[(&str, &str)], repos: &[&str]| {
            NewRule::parse("acme", body(claims, repos), &github(), "berth.test")
        };
        let outside = parse(&[("repository", "acme/app")], &["other/app"]).unwrap_err();
        assert!(outside.contains("outside namespace acme"), "{outside}");
        let everyone = parse(&[("repository", "**")], &["acme/**"]).unwrap_err();
        assert!(everyone.contains("whose jobs"), "{everyone}");
        assert!(parse(&[("repository", "acme/**")], &["acme/**"]).is_ok());
        assert!(parse(&[("ref", "refs/heads/main")], &["acme/app"]).is_err());
        assert!(parse(&[("repository", "*/app")], &["acme/app"]).is_err());
        assert!(parse(&[], &["acme/app"]).is_err());
        assert!(parse(&[("repository", "acme/app")], &[]).is_err());
        let typo = parse(&[("repository", "acme/app"), ("repo", "x")], &["acme/app"]).unwrap_err();
        assert!(
            typo.contains("`repo`") && typo.contains("repository"),
            "{typo}"
        );
        let exp = parse(&[("repository", "acme/app"), ("aud", "x")], &["acme/app"]).unwrap_err();
        assert!(exp.contains("audience"), "{exp}");
        assert!(parse(&[("repository", "acme/app")], &["acme/**"]).is_ok());
    }

    #[test]
    fn only_configured_issuers_are_named() {
        let mut b = body(&[("sub", "x")], &["acme/app"]);
        b.issuer = "https://idp.example.com".into();
        let e = NewRule::parse("acme", b, &github(), "s").unwrap_err();
        assert!(e.contains("not one this registry trusts"), "{e}");
    }

    #[test]
    fn stored_claims_round_trip() {
        let r = rule(&[("repository", "acme/app"), ("ref", "refs/tags/*")]);
        let text = TrustRule::claims_json(&r.claims);
        assert_eq!(TrustRule::claims_from_json(&text).unwrap(), r.claims);
    }
}
