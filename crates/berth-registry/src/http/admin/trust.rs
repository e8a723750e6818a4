//! `/api/v1/trust/{namespace}`: the trust rules of a namespace (workload
//! identity, `trust/`): which CI jobs' ID tokens it accepts and what they
//! may do. Managed by the namespace's user, its organisation's owners and
//! administrators ([`policy::manage_trust`]), asked before the namespace is
//! looked up (the same refusal whether it exists or not).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{ApiError, Caller, json_response, no_content, read_json, reload_revocations};
use crate::http::router::AppState;
use crate::identity::validate_name;
use crate::policy;
use crate::trust::rule::{NewRule, RuleBody, check_rule_name};

/// `GET /api/v1/trust/{namespace}`: its rules, by name.
pub(super) async fn list_rules(
    State(app): State<AppState>,
    caller: Caller,
    Path(namespace): Path<String>,
) -> Result<Response, ApiError> {
    caller.ask(policy::manage_trust(&caller.principal, &namespace))?;
    validate_name(&namespace)?;
    let r = &app.registry;
    if r.identity.namespace_owner(&namespace).await?.is_none() {
        return Err(missing_namespace(&namespace));
    }
    let rules = r.identity.trust_rules(&namespace).await?;
    let rules: Vec<_> = rules.iter().map(|rule| rule.to_json()).collect();
    Ok(json_response(StatusCode::OK, &json!({"rules": rules})))
}

/// `POST /api/v1/trust/{namespace}`: a new rule (201 with it).
pub(super) async fn create_rule(
    State(app): State<AppState>,
    caller: Caller,
    Path(namespace): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    caller.ask(policy::manage_trust(&caller.principal, &namespace))?;
    validate_name(&namespace)?;
    let r = &app.registry;
    if !r.config.access_control {
        return Err(ApiError::bad_request(
            "this registry runs without access control and issues no tokens: trust rules \
             have nothing to grant",
        ));
    }
    let body: RuleBody = read_json(body).await?;
    let rule = NewRule::parse(&namespace, body, &r.config.oidc.issuers, &r.config.service)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "RULE_INVALID", e))?;
    let stored = r.identity.create_trust_rule(&rule, &caller.name).await?;
    audit!(
        caller,
        "trust.create",
        namespace = %stored.namespace,
        rule = %stored.name,
        issuer = %stored.issuer,
        audience = %stored.audience,
        claims = %crate::trust::rule::TrustRule::claims_json(&stored.claims),
        actions = %stored.actions,
        repositories = %stored.repositories.join(" "),
        "trust rule created"
    );
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"rule": stored.to_json()}),
    ))
}

/// `DELETE /api/v1/trust/{namespace}/{name}`: the rule, and the registry
/// tokens issued through it (before the answer).
pub(super) async fn delete_rule(
    State(app): State<AppState>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.ask(policy::manage_trust(&caller.principal, &namespace))?;
    validate_name(&namespace)?;
    check_rule_name(&name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "RULE_INVALID", e))?;
    let r = &app.registry;
    if !r.identity.delete_trust_rule(&namespace, &name).await? {
        return Err(ApiError::not_found(
            "RULE_UNKNOWN",
            format!(
                "namespace `{namespace}` has no trust rule named `{name}`; \
                 `berth trust list {namespace}` shows its rules"
            ),
        ));
    }
    reload_revocations(r).await;
    audit!(caller, "trust.delete", namespace = %namespace, rule = %name, "trust rule removed");
    Ok(no_content())
}

fn missing_namespace(namespace: &str) -> ApiError {
    ApiError::not_found(
        "NOT_FOUND",
        format!("namespace `{namespace}` does not exist (no user or organisation has that name)"),
    )
}
