//! The exchange: a verified ID token and the rules that accept it become a
//! [`Workload`] subject, which the token service grants as any other
//! (requested ∩ [`crate::policy::allowed_actions`]).
//!
//! Only the rules of the namespaces the request asks about are read, and
//! only those that accept the token go into the registry token (its `sub`
//! and `berth_trust`): a rule of another namespace that happens to accept a
//! job neither grows nor ends that job's tokens for this one, nor is shown to
//! it. A request that names no repository (a login's check) needs some rule
//! of the issuer to accept the token, and gets a token that grants nothing.
//!
//! Every exchange, granted or refused, is one `berth::audit` line with the
//! token's issuer, `sub`, `jti` and the claims the issuer's rules look at,
//! never the token itself. A refusal tells the client why (a verification
//! failure exactly; "no trust rule accepts" without naming any rule, so that
//! the rules of a namespace are not read through the token endpoint).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use super::oidc::{IdTokenError, VerifiedIdToken, Verifier};
use super::rule::{TrustRule, claim_text};
use crate::config::OidcConfig;
use crate::identity::{IdentityError, IdentityStore};
use crate::policy::{TrustGrant, Workload};

/// The longest part of an ID token's `sub` copied into a registry token's.
const MAX_SUB_CHARS: usize = 200;

/// Why an exchange was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The ID token did not verify.
    #[error(transparent)]
    Token(#[from] IdTokenError),
    /// It verified, and no rule accepts it.
    #[error(
        "no trust rule {where_} accepts this ID token (issuer {issuer}, subject \
         {subject:?}, audience {audience}): the namespace's owner adds one with `berth trust add`"
    )]
    NoRule {
        /// `of namespace acme`, or `of this registry`.
        where_: String,
        /// The token's issuer.
        issuer: String,
        /// The token's `sub`.
        subject: String,
        /// The token's `aud`, as text.
        audience: String,
    },
    /// The rules could not be read.
    #[error(transparent)]
    Store(#[from] IdentityError),
}

/// ID tokens to workloads.
pub struct Exchange {
    verifier: Verifier,
    identity: Arc<dyn IdentityStore>,
}

impl Exchange {
    /// An exchange over the rules of `identity`, verifying with the issuers
    /// of `config`.
    pub fn new(config: &OidcConfig, identity: Arc<dyn IdentityStore>) -> Self {
        Self {
            verifier: Verifier::new(config),
            identity,
        }
    }

    /// The workload `id_token` stands for in `namespaces` (those of the
    /// repositories the request names), at `now`; `client` for the log.
    pub async fn workload(
        &self,
        id_token: &str,
        namespaces: &[String],
        client: IpAddr,
        now: i64,
    ) -> Result<Workload, ExchangeError> {
        let token = match self.verifier.verify(id_token, now).await {
            Ok(token) => token,
            Err(e) => {
                tracing::info!(
                    target: "berth::audit",
                    client = %client,
                    reason = %e,
                    "workload identity refused: the ID token does not verify"
                );
                return Err(e.into());
            }
        };
        let mut rules = Vec::new();
        if namespaces.is_empty() {
            rules = self
                .identity
                .trust_rules_for_issuer(&token.issuer.url, None)
                .await?;
        }
        for namespace in namespaces {
            let of_namespace = self
                .identity
                .trust_rules_for_issuer(&token.issuer.url, Some(namespace))
                .await?;
            rules.extend(of_namespace);
        }
        let accepting: Vec<&TrustRule> = rules
            .iter()
            .filter(|rule| rule.accepts(&token.issuer.url, &token.claims))
            .collect();
        let looked_at = deciding_claims(&token, &rules);
        if accepting.is_empty() {
            tracing::info!(
                target: "berth::audit",
                client = %client,
                iss = %token.issuer.url,
                sub = token.subject(),
                jti = claim(&token, "jti"),
                claims = %looked_at,
                "workload identity refused: no trust rule accepts the ID token"
            );
            return Err(ExchangeError::NoRule {
                where_: match namespaces {
                    [] => "of this registry".to_owned(),
                    [one] => format!("of namespace {one}"),
                    many => format!("of namespaces {}", many.join(", ")),
                },
                issuer: token.issuer.url.clone(),
                subject: token.subject().chars().take(MAX_SUB_CHARS).collect(),
                audience: token
                    .claims
                    .get("aud")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "(none)".to_owned()),
            });
        }
        // A login's check (no namespace asked about) proves the identity
        // and grants nothing: no rule is named in its token.
        let granting: &[&TrustRule] = if namespaces.is_empty() {
            &[]
        } else {
            &accepting
        };
        let workload = Workload {
            name: workload_name(&token, granting),
            grants: granting.iter().map(|rule| grant_of(rule)).collect(),
        };
        let rule_names: Vec<String> = accepting.iter().map(|r| r.qualified_name()).collect();
        tracing::info!(
            target: "berth::audit",
            client = %client,
            iss = %token.issuer.url,
            sub = token.subject(),
            jti = claim(&token, "jti"),
            claims = %looked_at,
            rules = %rule_names.join(","),
            workload = %workload.name,
            "workload identity accepted"
        );
        Ok(workload)
    }
}

/// What a rule grants, as policy reads it.
pub fn grant_of(rule: &TrustRule) -> TrustGrant {
    TrustGrant {
        rule_id: rule.id,
        namespace: rule.namespace.clone(),
        actions: rule.actions.clone(),
        repositories: rule.repositories.clone(),
    }
}

/// `trust:<ns>/<rule>[+<ns>/<rule>...]:<sub>[@run:<id>]`, or without the
/// rules (`trust:<sub>...`) for a token that grants nothing.
fn workload_name(token: &VerifiedIdToken, rules: &[&TrustRule]) -> String {
    let rules: Vec<String> = rules.iter().map(|r| r.qualified_name()).collect();
    let sub: String = token.subject().chars().take(MAX_SUB_CHARS).collect();
    let mut name = if rules.is_empty() {
        format!("trust:{sub}")
    } else {
        format!("trust:{}:{sub}", rules.join("+"))
    };
    if let Some((claim, label)) = token.issuer.kind.run_claim()
        && let Some(run) = claim_text(token.claims.get(claim))
    {
        name.push_str(&format!(
            "@{label}:{}",
            run.chars().take(40).collect::<String>()
        ));
    }
    name
}

/// `name=value` for each claim the issuer's rules have conditions on, for
/// the audit line.
fn deciding_claims(token: &VerifiedIdToken, rules: &[TrustRule]) -> String {
    let names: BTreeSet<&str> = rules
        .iter()
        .flat_map(|r| r.claims.keys().map(String::as_str))
        .collect();
    names
        .into_iter()
        .map(|name| {
            let value = claim_text(token.claims.get(name)).unwrap_or_else(|| "(absent)".into());
            format!("{name}={}", value.chars().take(120).collect::<String>())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn claim<'a>(token: &'a VerifiedIdToken, name: &str) -> &'a str {
    token.claims.get(name).and_then(Value::as_str).unwrap_or("")
}
