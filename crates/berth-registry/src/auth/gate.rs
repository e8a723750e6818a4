//! The request gate: what a request needs, and whether the caller has it.
//!
//! Every `/v2` request reaches its handler only through [`admit`], with the
//! scopes [`Endpoint::required_access`] computes from method, path and query.
//!
//! - No bearer token: 401 with `Bearer realm="<public-url>/token",service=...`
//!   and the exact `scope` the request needs (none on `/v2/`; a mount's
//!   source with `pull` beside its target).
//! - A token that does not verify (signature, algorithm, `iss`, `aud`,
//!   `exp`/`nbf` with 60 s leeway): 401 `error="invalid_token"`.
//! - A token issued before a revocation that applies to it (its subject
//!   deleted or removed from an organisation, its password changed, its
//!   personal access token revoked, the repository made private or deleted):
//!   401 `error="invalid_token"` too, so the client asks for a new one and
//!   gets what policy grants now ([`revocation`]: an
//!   in-memory check, no database round trip).
//! - A valid token that covers the request: admitted. `/v2/` and `_catalog`
//!   admit any valid token, anonymous ones included; the catalog then lists
//!   only what the token's subject may pull.
//! - A valid token that lacks an action: [`policy`](crate::policy) decides.
//!   Policy would allow it: 401 `error="insufficient_scope"` (ask for a token
//!   with this scope). The subject may not pull the repository: the answer of
//!   a repository that does not exist, whether it exists or not (anonymous
//!   callers get the 401 that asks them to log in; users get 404
//!   `NAME_UNKNOWN`); no existence oracle. Otherwise 403 `DENIED`, naming the
//!   action.
//! - Except that a user's request needing more than pull (a push, a delete)
//!   is never given the hidden answer: the user is creating or changing a
//!   repository, and "not known" would send them the wrong way. It gets 403
//!   `DENIED` saying where the user may do it (their own namespace, the
//!   organisations whose role allows it, a robot's organisation), or, when the
//!   personal access token's limits are what refuses, the token's name and
//!   what it carries. The message depends on the caller and the name only,
//!   never on whether the repository exists. (Policy decides; this only
//!   words the decision.)
//! - A mount whose source the caller may not pull is not refused: the mount is
//!   dropped and the request starts a plain upload, exactly as for a source
//!   that does not exist.

use axum::http::{HeaderMap, header};
use berth_core::challenge::Challenge;
use berth_core::endpoint::{Endpoint, Mount};
use berth_core::name::RepositoryName;
use berth_core::oci_error::ErrorCode;
use berth_core::scope::{Action, ResourceType, Scope, Scopes};
use serde_json::json;

use crate::Registry;
use crate::auth::jwt::TokenError;
use crate::auth::{key_sync, revocation};
use crate::clock::now_unix;
use crate::error::RegistryError;
use crate::meta::CatalogFilter;
use crate::policy::{self, Principal, Reach, Refusal, Standing, Subject};

/// What the gate let through, and what handlers need to know of it.
#[derive(Debug)]
pub struct Admission {
    /// Which repositories a catalog listing may show this caller.
    pub catalog: CatalogFilter,
    /// Whether the request's mount (if any) may be performed.
    pub mount_allowed: bool,
    /// Who is asking, when the gate had to find out (the catalog does).
    pub subject: Option<Subject>,
    /// The verified token's `sub` (user or robot name); `None` when access
    /// control is off or the token is anonymous. Upload sessions are counted
    /// against it.
    pub token_subject: Option<String>,
}

impl Admission {
    fn open() -> Self {
        Self {
            catalog: CatalogFilter::All,
            mount_allowed: true,
            subject: None,
            token_subject: None,
        }
    }
}

/// Decides whether a request may proceed.
pub async fn admit(
    r: &Registry,
    endpoint: &Endpoint,
    method: &str,
    headers: &HeaderMap,
) -> Result<Admission, RegistryError> {
    if !r.config.access_control {
        return Ok(Admission::open());
    }
    let Some(tokens) = &r.tokens else {
        return Ok(Admission::open());
    };
    // Challenges name everything the request needs, a mount's source
    // included; admission needs only the target (an unusable source drops the
    // mount, below).
    let needed = endpoint.required_access(method);
    let mut required = needed.clone();
    let mount_source = match endpoint {
        Endpoint::Uploads {
            mount: Some(Mount {
                from: Some(from), ..
            }),
            name,
        } if from != name => Some(from.clone()),
        _ => None,
    };
    if let Some(from) = &mount_source {
        required = required
            .iter()
            .filter(|s| s.name() != from.as_str())
            .cloned()
            .collect();
    }

    let Some(token) = bearer_token(headers) else {
        return Err(challenge(
            r,
            &needed,
            None,
            "authentication required: get a token from the realm in WWW-Authenticate",
        ));
    };
    let verified = match tokens.verify(token, now_unix()) {
        // A key another node sharing the database created since this node
        // last copied the keys: look once, then verify again.
        Err(TokenError::UnknownKey(_)) if key_sync::refresh_for_unknown_kid(r).await => {
            tokens.verify(token, now_unix())
        }
        verified => verified,
    };
    let claims = match verified {
        Ok(claims) => claims,
        Err(e) => {
            tracing::info!(target: "berth::audit", reason = %e, "gate: invalid token");
            return Err(challenge(
                r,
                &needed,
                Some("invalid_token"),
                "the bearer token is invalid or expired: get a new one from the realm",
            ));
        }
    };
    let repositories = needed
        .iter()
        .filter(|s| *s.resource_type() == ResourceType::Repository)
        .map(Scope::name);
    if let Some(refusal) = revocation::check(r, &claims, repositories).await? {
        tracing::info!(
            target: "berth::audit",
            subject = claims.sub.as_str(),
            reason = refusal.as_str(),
            "gate: token issued before a revocation"
        );
        return Err(challenge(
            r,
            &needed,
            Some("invalid_token"),
            "the bearer token was issued before a change of access rights and no longer \
             counts: get a new one from the realm",
        ));
    }
    let granted = claims.scopes();
    let subject_name = claims.sub.clone();
    let pat = claims.pat;

    match endpoint {
        Endpoint::Base => return Ok(admitted(true, &subject_name)),
        Endpoint::Catalog => {
            let subject = subject_of(r, &subject_name, pat, &claims.trust).await?;
            return Ok(Admission {
                catalog: policy::catalog_filter(&subject),
                mount_allowed: false,
                subject: Some(subject),
                token_subject: None,
            });
        }
        _ => {}
    }

    let mount_allowed = match &mount_source {
        Some(from) => granted
            .get(&ResourceType::Repository, from.as_str())
            .is_some_and(|a| a.contains(&Action::Pull)),
        None => true,
    };
    if required.is_subset(&granted) {
        return Ok(admitted(mount_allowed, &subject_name));
    }

    // The token lacks something: policy tells "ask for it" from "you may not".
    let subject = subject_of(r, &subject_name, pat, &claims.trust).await?;
    for scope in required.iter() {
        let have = granted.get(scope.resource_type(), scope.name());
        let lacking: Vec<&Action> = scope
            .actions()
            .iter()
            .filter(|a| !have.is_some_and(|h| h.contains(a)))
            .collect();
        if lacking.is_empty() {
            continue;
        }
        let Ok(name) = RepositoryName::parse(scope.name()) else {
            continue;
        };
        let facts = r.repository_facts(&name).await?;
        let allowed = policy::allowed_actions(&subject, &name, facts);
        if lacking.iter().all(|a| allowed.contains(a)) {
            return Err(challenge(
                r,
                &needed,
                Some("insufficient_scope"),
                "the token does not cover this request: get a token for the scope in WWW-Authenticate",
            ));
        }
        // A refused action; one beyond pull first: what the user came to do.
        let refused: Vec<&Action> = lacking
            .iter()
            .copied()
            .filter(|a| !allowed.contains(a))
            .collect();
        let action = refused
            .iter()
            .find(|a| ***a != Action::Pull)
            .or(refused.first())
            .copied()
            .unwrap_or(&Action::Pull);
        let beyond_pull = scope.actions().iter().any(|a| *a != Action::Pull);
        if beyond_pull
            && allowed.contains(&Action::Pull)
            && let Some(target) = r.proxies.find(&name)
        {
            tracing::info!(
                target: "berth::audit",
                subject = subject_name.as_str(),
                repository = name.as_str(),
                action = action.as_str(),
                "gate: denied, pull-through cache"
            );
            return Err(target.refusal(&name, action));
        }
        if let Subject::Workload(workload) = &subject
            && beyond_pull
        {
            tracing::info!(
                target: "berth::audit",
                subject = subject_name.as_str(),
                repository = name.as_str(),
                action = action.as_str(),
                "gate: denied"
            );
            return Err(RegistryError::spec(
                ErrorCode::Denied,
                workload_denial(workload, &name, action),
            ));
        }
        if let Subject::User(principal) = &subject
            && beyond_pull
        {
            let why = policy::refusal(&subject, &name, facts, action).unwrap_or(Refusal::Rights);
            tracing::info!(
                target: "berth::audit",
                subject = subject_name.as_str(),
                repository = name.as_str(),
                action = action.as_str(),
                by_token = why == Refusal::TokenLimits,
                "gate: denied"
            );
            return Err(RegistryError::spec(
                ErrorCode::Denied,
                denial(principal, &name, action, why),
            ));
        }
        if !allowed.contains(&Action::Pull) {
            tracing::info!(
                target: "berth::audit",
                subject = subject_name.as_str(),
                repository = name.as_str(),
                "gate: denied, repository hidden"
            );
            return Err(hidden(r, &subject, &needed, &name));
        }
        let action = action.as_str();
        tracing::info!(
            target: "berth::audit",
            subject = subject_name.as_str(),
            repository = name.as_str(),
            action,
            "gate: denied"
        );
        return Err(RegistryError::spec(
            ErrorCode::Denied,
            format!("{} may not {action} repository {name}", describe(&subject)),
        ));
    }
    Ok(admitted(mount_allowed, &subject_name))
}

fn admitted(mount_allowed: bool, token_subject: &str) -> Admission {
    Admission {
        catalog: CatalogFilter::Visible {
            namespaces: Vec::new(),
        },
        mount_allowed,
        subject: None,
        token_subject: (!token_subject.is_empty()).then(|| token_subject.to_owned()),
    }
}

/// The subject a token's `sub` stands for (anonymous for `""` or a user that
/// no longer exists; a workload by the trust rules it was granted through).
async fn subject_of(
    r: &Registry,
    name: &str,
    pat: Option<i64>,
    trust: &[i64],
) -> Result<Subject, RegistryError> {
    if name.is_empty() {
        return Ok(Subject::Anonymous);
    }
    if !trust.is_empty() {
        return match r.authn.workload(name, trust).await {
            Ok(workload) => Ok(Subject::Workload(workload)),
            Err(e) => Err(RegistryError::Internal(e.to_string())),
        };
    }
    match r.authn.principal(name, pat).await {
        Ok(Some(principal)) => Ok(Subject::User(principal)),
        Ok(None) => Ok(Subject::Anonymous),
        Err(e) => Err(RegistryError::Internal(e.to_string())),
    }
}

/// The answer for a repository the subject may not pull: the same whether it
/// exists or not.
fn hidden(
    r: &Registry,
    subject: &Subject,
    required: &Scopes,
    name: &RepositoryName,
) -> RegistryError {
    match subject {
        Subject::Anonymous => challenge(
            r,
            required,
            Some("insufficient_scope"),
            "authentication required: log in to pull from this repository",
        ),
        Subject::User(_) | Subject::Workload(_) => RegistryError::spec(
            ErrorCode::NameUnknown,
            format!("repository {name} is not known to this registry"),
        ),
    }
}

/// 401 with a Bearer challenge for `required` (no `scope` when it is empty).
fn challenge(r: &Registry, required: &Scopes, error: Option<&str>, message: &str) -> RegistryError {
    let mut c = Challenge::bearer(&r.config.realm(), &r.config.service);
    if !required.is_empty() {
        c = c.with_param("scope", &required.to_string());
    }
    if let Some(error) = error {
        c = c.with_param("error", error);
    }
    let detail: Vec<serde_json::Value> = required
        .iter()
        .flat_map(|s: &Scope| {
            s.actions().iter().map(move |a| {
                json!({"Type": s.resource_type().as_str(), "Name": s.name(), "Action": a.as_str()})
            })
        })
        .collect();
    RegistryError::Unauthorized {
        challenge: c.to_string(),
        message: message.to_owned(),
        detail: (!detail.is_empty()).then(|| json!(detail)),
    }
}

/// The 403 message for a user refused `action` on `name`: what refused it
/// (the user's rights, or the limits of their personal access token) and
/// where they may do it instead. It names the caller and the repository,
/// nothing about whether the repository exists.
fn denial(principal: &Principal, name: &RepositoryName, action: &Action, why: Refusal) -> String {
    let (verb, preposition) = match action {
        Action::Push => ("push", "to"),
        Action::Delete => ("delete", "in"),
        _ => ("pull", "from"),
    };
    let who = match &principal.robot_of {
        Some(_) => format!("robot account {}", principal.name),
        None => format!("user {}", principal.name),
    };
    if why == Refusal::TokenLimits
        && let Some(limits) = &principal.token
    {
        let token = if limits.name.is_empty() {
            format!("the personal access token {who} logged in with")
        } else {
            format!("{who}'s personal access token `{}`", limits.name)
        };
        let actions: Vec<&str> = limits.actions.iter().map(Action::as_str).collect();
        let actions = if actions.is_empty() {
            "no action".to_owned()
        } else {
            actions.join(",")
        };
        let repositories = if limits.repositories.is_empty() {
            "every repository".to_owned()
        } else {
            limits.repositories.join(" ")
        };
        return format!(
            "{token} carries {actions} on {repositories}, so it may not {verb} {preposition} \
             {name}: log in with a token that carries {verb} for {name}, or with the password"
        );
    }
    let places = match policy::reach(principal, action) {
        Reach::Everywhere => "every repository".to_owned(),
        Reach::Namespaces(namespaces) if namespaces.is_empty() => "no namespace".to_owned(),
        Reach::Namespaces(namespaces) => namespaces
            .iter()
            .map(|(namespace, standing)| match standing {
                Standing::Own => format!("{namespace}/... (their own namespace)"),
                Standing::Member(role) => format!("{namespace}/... ({role} of {namespace})"),
                Standing::Robot => format!("{namespace}/... (its organisation)"),
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!(
        "{who} may not {verb} {preposition} {name}; {} may {verb} {preposition} {places}",
        principal.name
    )
}

fn describe(subject: &Subject) -> String {
    match subject {
        Subject::Anonymous => "an anonymous caller".to_owned(),
        Subject::User(p) => format!("user {}", p.name),
        Subject::Workload(w) => format!("workload {}", w.name),
    }
}

/// The 403 message for a workload refused `action` on `name`: what its
/// trust rules grant, so the rule's owner knows what to change.
fn workload_denial(workload: &policy::Workload, name: &RepositoryName, action: &Action) -> String {
    let grants: Vec<String> = workload
        .grants
        .iter()
        .map(|g| {
            let actions: Vec<&str> = g.actions.iter().map(Action::as_str).collect();
            format!("{} on {}", actions.join(","), g.repositories.join(" "))
        })
        .collect();
    format!(
        "workload {} may not {} {name}: its trust rules grant {}; the namespace's owner \
         widens a rule with `berth trust add`",
        workload.name,
        action.as_str(),
        grants.join("; ")
    )
}

/// The token of `Authorization: Bearer <token>`, if that is what was sent.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
