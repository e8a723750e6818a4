//! `berth login --oidc REGISTRY`: a CI job logs in with its OpenID Connect
//! ID token (workload identity), as berth-client's `auth/workload.rs`
//! describes: find the ID token (a file, `BERTH_ID_TOKEN`, GitHub Actions'
//! ID token request), find the registry's token service (its Bearer
//! challenge), trade the ID token there (RFC 8693) to check it, then store it
//! as the password of the user `oidc` where docker keeps passwords.
//!
//! The ID token is a secret: it is never printed, and the `-v` trace shows
//! only that a bearer token or Basic credential was sent. Its claims (issuer,
//! audience, subject, expiry) are shown when the registry refuses it, to
//! compare with the trust rules.

use std::path::Path;

use anyhow::{Context, bail};
use berth_client::auth::{ActionsTokenRequest, AuthError, IdToken, TokenService};
use berth_client::client::RegistryClient;
use berth_client::credentials::CredentialStore;
use berth_core::Scopes;
use berth_core::reference::Registry;
use berth_core::token::format_rfc3339;
use serde_json::Value;

use crate::client::{Common, block_on, print_out, unix};

/// The variable a GitLab job names under `id_tokens:` for berth.
const ID_TOKEN_VAR: &str = "BERTH_ID_TOKEN";

/// Where the ID token comes from, settled before any request.
enum Source {
    /// Read from `--id-token-file` or `BERTH_ID_TOKEN`.
    Given(IdToken),
    /// Asked of GitHub Actions once the audience is known.
    Actions(ActionsTokenRequest),
}

/// Runs `berth login --oidc REGISTRY`.
pub(super) fn run(
    registry: &Registry,
    id_token_file: Option<&Path>,
    audience: Option<&str>,
    common: &Common,
) -> anyhow::Result<()> {
    let key = registry.credential_key();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let source = if let Some(path) = id_token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the ID token file {}", path.display()))?;
        let token = IdToken::parse(&text)
            .with_context(|| format!("the ID token file {} holds no ID token", path.display()))?;
        Source::Given(token)
    } else if let Some(text) = var(ID_TOKEN_VAR) {
        Source::Given(
            IdToken::parse(&text)
                .with_context(|| format!("{ID_TOKEN_VAR} does not hold an ID token"))?,
        )
    } else if let Some(request) = ActionsTokenRequest::from_vars(var)? {
        Source::Actions(request)
    } else if var("GITHUB_ACTIONS").as_deref() == Some("true") {
        bail!(
            "this GitHub Actions job cannot ask for an ID token: ACTIONS_ID_TOKEN_REQUEST_URL and \
             ACTIONS_ID_TOKEN_REQUEST_TOKEN are set only for a job with `permissions: id-token: \
             write`; add it to the workflow (or the job)"
        );
    } else {
        bail!(
            "no ID token to log in with; give --id-token-file FILE, or set {ID_TOKEN_VAR} \
             (GitLab CI: `id_tokens: {ID_TOKEN_VAR}: aud: {key}`), or run in a GitHub Actions \
             job with `permissions: id-token: write`"
        );
    };
    if let (Source::Given(_), Some(audience)) = (&source, audience) {
        eprintln!(
            "note: --audience {audience} is not used: the ID token given carries the audience it \
             was made for"
        );
    }

    let options = common.options(registry)?;
    let observer = options.observer.clone();
    let client = RegistryClient::new(registry.clone(), None, options)
        .with_context(|| format!("cannot set up a client for {registry}"))?;
    let transport = client.transport();
    // One runtime for every request: the client's connections belong to it.
    let (id_token, exchanged) = block_on(async {
        let service: TokenService = transport
            .token_service()
            .await
            .with_context(|| format!("cannot log in to {registry} with an ID token"))?;
        let id_token = match source {
            Source::Given(token) => token,
            Source::Actions(request) => {
                // The audience is never the registry's own say-so alone: a
                // registry naming another's service would be handed an ID
                // token that works there.
                let audience = match (audience, service.service.as_deref()) {
                    (Some(given), _) => given,
                    (None, Some(named)) if named != key.as_str() => anyhow::bail!(
                        "{registry} names its service `{named}` in its challenge, not `{key}`: \
                         berth asks GitHub Actions for an ID token only for the registry given. \
                         If `{named}` is this registry's name (its --service), log in with \
                         --audience {named}"
                    ),
                    (None, _) => key.as_str(),
                };
                request
                    .fetch(Some(audience), observer.as_ref())
                    .await
                    .with_context(|| {
                        format!("cannot get this job's ID token (audience {audience}) from GitHub Actions")
                    })?
            }
        };
        let exchanged = transport
            .exchange_id_token(&service, &id_token, &Scopes::new())
            .await;
        anyhow::Ok((id_token, exchanged))
    })??;
    let exchanged = match exchanged {
        Ok(exchanged) => exchanged,
        Err(e @ AuthError::IdTokenRefused { .. }) => {
            // Issuer, audience and claims are what trust rules look at; they
            // are named unless the registry's words already do.
            let words = e.to_string();
            let claims = id_token.claims();
            let said = claims["sub"]
                .as_str()
                .is_some_and(|sub| words.contains(sub));
            let what = if said {
                String::new()
            } else {
                format!(" The ID token says {}.", describe(&claims))
            };
            let compare = if words.contains("trust rule") {
                " Compare with the namespace's trust rules: `berth trust list NAMESPACE`."
            } else {
                ""
            };
            bail!("login to {registry} failed: {words}; nothing stored.{what}{compare}")
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot check the ID token against {registry}; nothing stored")
            });
        }
    };

    let store = CredentialStore::from_env();
    let stored = store
        .store(&key, &id_token.credential())
        .with_context(|| format!("cannot store the credential for {key}"))?;
    if let Some(winner) = store.source(&key)
        && winner != stored.to_string()
    {
        eprintln!("note: {winner} also holds a credential for {key}, and it is used first");
    }
    if let Some(exp) = id_token.claims()["exp"].as_i64() {
        eprintln!(
            "note: the ID token, stored as the password of `oidc`, expires at {}: log in again \
             with a fresh one for later commands",
            format_rfc3339(exp)
        );
    }
    let who = exchanged
        .subject()
        .map_or_else(|| "the ID token's workload".to_owned(), str::to_owned);
    print_out(&format!(
        "logged in to {registry} as {who} (registry token valid until {}); credential stored \
         in {stored}\n",
        format_rfc3339(unix(exchanged.expires_at()))
    ))
}

/// What an ID token says of itself, for comparing with trust rules:
/// `iss X, aud Y, sub Z, expires T` (the claims it has).
fn describe(claims: &Value) -> String {
    let text = |value: &Value| match value {
        Value::String(s) => format!("`{s}`"),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => format!("`{s}`"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    let mut parts: Vec<String> = ["iss", "aud", "sub"]
        .iter()
        .filter(|name| !claims[**name].is_null())
        .map(|name| format!("{name} {}", text(&claims[*name])))
        .collect();
    if let Some(exp) = claims["exp"].as_i64() {
        parts.push(format!("expires {}", format_rfc3339(exp)));
    }
    if parts.is_empty() {
        "nothing readable of itself".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_id_token_is_described_by_its_claims() {
        let claims = json!({
            "iss": "https://token.actions.githubusercontent.com",
            "aud": ["registry.example.com", "other"],
            "sub": "repo:acme/app:ref:refs/heads/main",
            "exp": 1_800_000_000,
            "repository": "acme/app",
        });
        assert_eq!(
            describe(&claims),
            "iss `https://token.actions.githubusercontent.com`, aud `registry.example.com` \
             `other`, sub `repo:acme/app:ref:refs/heads/main`, expires 2027-01-15T08:00:00Z"
        );
        assert_eq!(describe(&json!({})), "nothing readable of itself");
    }
}
