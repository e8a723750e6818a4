//! Workload identity against berth in-process trusting berth-test-issuer: the
//! RFC 8693 exchange (`Transport::token_service`, `exchange_id_token`), then
//! the ID token as the password of `oidc`: registry tokens fetched with it by
//! `GET` with Basic, fetched again once one expires, and, once no rule trusts
//! the job any more, the error that says to log in again.

use std::sync::Arc;
use std::time::Duration;

use berth_client::auth::{
    AuthError, Event, GrantKind, IdToken, ManualClock, TokenCache, TransportOptions,
};
use berth_client::client::ClientError;
use berth_core::Scopes;
use berth_registry::trust::{IssuerKind, OidcIssuer};
use berth_test_issuer::Issuer;
use serde_json::json;

use crate::support::{ADMIN_PASSWORD, Berth, recording, repo};

/// berth trusting `issuer` as a GitHub Actions issuer, with admin's rule
/// `release`: jobs of acme/app on main may pull admin/app.
async fn berth_trusting(issuer: &Issuer) -> Berth {
    let url = issuer.url().to_owned();
    let berth = Berth::start_with(move |config| {
        config.oidc.issuers = vec![OidcIssuer {
            kind: IssuerKind::Github,
            url,
        }];
        config.oidc.allow_loopback = true;
    })
    .await;
    let rule = json!({
        "name": "release",
        "issuer": issuer.url(),
        "claims": {"repository": "acme/app", "ref": "refs/heads/main"},
        "actions": ["pull"],
        "repositories": ["admin/app"],
    });
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/trust/admin", berth.base))
        .basic_auth(berth_registry::ADMIN_USER, Some(ADMIN_PASSWORD))
        .header("content-type", "application/json")
        .body(rule.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "the rule is created");
    berth
}

/// A GitHub-shaped ID token of acme/app at `git_ref` for `audience`.
fn id_token(issuer: &Issuer, git_ref: &str, audience: &str) -> IdToken {
    IdToken::parse(&issuer.mint(issuer.github_claims("acme/app", git_ref, audience))).unwrap()
}

#[tokio::test]
async fn an_id_token_is_exchanged_at_the_realm_of_the_challenge() {
    let issuer = Issuer::start().await;
    let berth = berth_trusting(&issuer).await;
    let (options, events) = recording();
    let client = berth.client_with(None, options);
    let transport = client.transport();

    let service = transport.token_service().await.unwrap();
    assert_eq!(service.realm, format!("{}/token", berth.base));
    assert_eq!(
        service.service.as_deref(),
        Some(berth.host.to_string().as_str())
    );

    let audience = berth.host.to_string();
    let token = id_token(&issuer, "refs/heads/main", &audience);
    let asked = Scopes::parse("repository:admin/app:pull,push").unwrap();
    let exchanged = transport
        .exchange_id_token(&service, &token, &asked)
        .await
        .unwrap();
    let subject = exchanged.subject().unwrap();
    assert!(
        subject.starts_with("trust:admin/release:repo:acme/app:ref:refs/heads/main@run:"),
        "{subject}"
    );
    assert_eq!(
        exchanged.claims().unwrap()["access"],
        json!([{"type": "repository", "name": "admin/app", "actions": ["pull"]}]),
        "the grant is what was asked within what the rule gives"
    );
    let all = format!("{:?}", events.lock().unwrap());
    assert!(all.contains("TokenExchange"), "{all}");
    assert!(!all.contains(token.secret()), "no event holds the ID token");

    // A job of another branch: refused, in the service's words.
    let other = id_token(&issuer, "refs/heads/dev", &audience);
    let refused = transport
        .exchange_id_token(&service, &other, &Scopes::new())
        .await
        .unwrap_err();
    match &refused {
        AuthError::IdTokenRefused {
            status,
            error,
            description,
            ..
        } => {
            assert_eq!((*status, error.as_str()), (400, "invalid_grant"));
            assert!(description.contains("no trust rule"), "{description}");
        }
        other => panic!("not a refusal: {other}"),
    }
    assert!(!refused.to_string().contains(other.secret()));
}

#[tokio::test]
async fn the_id_token_as_password_gets_tokens_again_as_they_expire_until_the_rule_goes() {
    let issuer = Issuer::start().await;
    let berth = berth_trusting(&issuer).await;
    berth.push_image("admin/app", "v1", b"built by CI").await;
    let token = id_token(&issuer, "refs/heads/main", &berth.host.to_string());

    let clock = Arc::new(ManualClock::starting_now());
    let (options, events) = recording();
    let options = TransportOptions {
        cache: Some(Arc::new(TokenCache::with_clock(clock.clone()))),
        ..options
    };
    let client = berth.client_with(Some(token.credential()), options);
    let name = repo("admin/app");
    let fetches = || {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::TokenRequest {
                        grant: GrantKind::Basic,
                        ..
                    }
                )
            })
            .count()
    };
    assert_eq!(client.tags(&name, None).await.unwrap(), ["v1"]);
    assert_eq!(fetches(), 1);
    assert_eq!(client.tags(&name, None).await.unwrap(), ["v1"]);
    assert_eq!(fetches(), 1, "the registry token is reused while it lasts");
    clock.advance(Duration::from_secs(10 * 60));
    assert_eq!(client.tags(&name, None).await.unwrap(), ["v1"]);
    assert_eq!(fetches(), 2, "an expired registry token is fetched again");
    assert!(!format!("{:?}", events.lock().unwrap()).contains(token.secret()));

    // The rule removed, the token the client holds is refused, and so is
    // the ID token: the error says to log in again.
    let response = reqwest::Client::new()
        .delete(format!("{}/api/v1/trust/admin/release", berth.base))
        .basic_auth(berth_registry::ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "the rule is removed");
    let err = client.tags(&name, None).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Auth(AuthError::StoredIdTokenRefused { message, .. })
                if message.contains("no trust rule")
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("berth login --oidc {}", berth.host)),
        "{text}"
    );
    assert!(!text.contains(token.secret()));
}
