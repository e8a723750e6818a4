//! The client against berth's own server: anonymous and password pulls, the
//! OAuth2 password grant, a refresh (offline) token used as an identity
//! token, pagination, the token cache, refresh ahead of expiry, deletes.

use std::sync::Arc;
use std::time::Duration;

use berth_client::auth::{ManualClock, Operation, TokenCache, TransportOptions};
use berth_client::client::{ClientError, Ping};
use berth_core::TagOrDigest;

use crate::support::{Berth, admin, assert_delete_unsupported, recording, repo, user_password};

#[tokio::test]
async fn anonymous_pull_of_a_public_repository() {
    let berth = Berth::start().await;
    let image = berth.push_image("pub/app", "v1", b"layer one").await;
    berth.set_public("pub/app").await;
    let client = berth.client(None);
    let name = repo("pub/app");

    assert_eq!(client.ping().await.unwrap(), Ping { checked: true });
    assert_eq!(client.tags(&name, None).await.unwrap(), ["v1"]);
    let by_tag = TagOrDigest::parse("v1").unwrap();
    let manifest = client.get_manifest(&name, &by_tag, &[]).await.unwrap();
    assert_eq!(manifest.digest, image.digest);
    assert_eq!(manifest.bytes, image.manifest);
    assert_eq!(
        manifest.media_type,
        berth_core::media_type::OCI_IMAGE_MANIFEST
    );
    let by_digest = TagOrDigest::Digest(image.digest.clone());
    let head = client.head_manifest(&name, &by_digest).await.unwrap();
    assert_eq!(
        (head.digest, head.size),
        (image.digest.clone(), image.manifest.len() as u64)
    );
    let blob = client.get_blob(&name, &image.layer).await.unwrap();
    assert_eq!(blob.bytes().await.unwrap(), b"layer one");
}

#[tokio::test]
async fn password_pull_of_a_private_repository() {
    let berth = Berth::start().await;
    let image = berth
        .push_image("team/secret", "v1", b"private layer")
        .await;
    let name = repo("team/secret");
    let tag = TagOrDigest::parse("v1").unwrap();

    // Anonymous: the private repository looks absent.
    let err = berth
        .client(None)
        .get_manifest(&name, &tag, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::NotFound { .. } | ClientError::Unauthorized { .. }
        ),
        "{err}"
    );
    // Another user: the same.
    let eve = berth.user("eve").await;
    let err = berth.client(Some(eve)).tags(&name, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::NotFound { .. } | ClientError::Unauthorized { .. }
        ),
        "{err}"
    );
    // The owner (admin) with a password.
    let client = berth.client(Some(admin()));
    let manifest = client.get_manifest(&name, &tag, &[]).await.unwrap();
    assert_eq!(manifest.digest, image.digest);
    let blob = client.get_blob(&name, &image.layer).await.unwrap();
    assert_eq!(blob.bytes().await.unwrap(), b"private layer");

    // A wrong password is reported as such, without the password.
    let wrong = user_password("admin", "not-the-password");
    let err = berth
        .client(Some(wrong))
        .tags(&name, None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("rejected the credentials"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test]
async fn tags_and_catalog_follow_link_pages() {
    let berth = Berth::start().await;
    for tag in ["a", "b", "c", "d", "e"] {
        berth.push_image("lib/many", tag, tag.as_bytes()).await;
    }
    berth.push_image("lib/two", "x", b"x").await;
    berth.push_image("other/three", "y", b"y").await;
    let client = berth.client(Some(admin()));

    // n=2 over five tags: three pages, reachable only through Link.
    let tags = client.tags(&repo("lib/many"), Some(2)).await.unwrap();
    assert_eq!(tags, ["a", "b", "c", "d", "e"]);
    let repos = client.catalog(Some(1)).await.unwrap();
    assert_eq!(repos, ["lib/many", "lib/two", "other/three"]);
    // A page size of 1 catalog and the unbounded one agree.
    assert_eq!(client.catalog(None).await.unwrap(), repos);
}

#[tokio::test]
async fn the_token_cache_is_hit_for_the_same_scopes() {
    let berth = Berth::start().await;
    let image = berth.push_image("cache/me", "v1", b"cached").await;
    let name = repo("cache/me");
    let client = berth.client(Some(admin()));
    let before = berth.tokens_issued();

    client.tags(&name, None).await.unwrap();
    assert_eq!(
        berth.tokens_issued(),
        before + 1,
        "first request: one token"
    );
    client.tags(&name, None).await.unwrap();
    client
        .get_manifest(&name, &TagOrDigest::Digest(image.digest.clone()), &[])
        .await
        .unwrap();
    client.get_blob(&name, &image.layer).await.unwrap();
    assert_eq!(
        berth.tokens_issued(),
        before + 1,
        "same scope (pull on cache/me): the cached token serves every request"
    );
    // Another scope is another key.
    client.catalog(None).await.unwrap();
    assert_eq!(berth.tokens_issued(), before + 2);
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry() {
    let berth = Berth::start_with(|c| c.token_lifetime = Duration::from_secs(60)).await;
    berth.push_image("short/lived", "v1", b"l").await;
    let name = repo("short/lived");
    let clock = Arc::new(ManualClock::starting_now());
    let options = TransportOptions {
        cache: Some(Arc::new(TokenCache::with_clock(clock.clone()))),
        ..TransportOptions::default()
    };
    let client = berth.client_with(Some(admin()), options);
    let start = berth.tokens_issued();

    client.tags(&name, None).await.unwrap();
    assert_eq!(berth.tokens_issued(), start + 1);
    // 50 s into a 60 s token: 10 s left, margin max(6 s, 5 s): reused.
    clock.advance(Duration::from_secs(50));
    client.tags(&name, None).await.unwrap();
    assert_eq!(berth.tokens_issued(), start + 1, "still inside the margin");
    // 55 s: 5 s left, under the margin: refreshed before the request.
    clock.advance(Duration::from_secs(5));
    client.tags(&name, None).await.unwrap();
    assert_eq!(
        berth.tokens_issued(),
        start + 2,
        "refreshed ahead of expiry"
    );

    // Before a long upload: a token that would not last is refreshed first.
    let op = Operation::Pull(name.clone());
    let clock2 = Arc::new(ManualClock::starting_now());
    let options = TransportOptions {
        cache: Some(Arc::new(TokenCache::with_clock(clock2))),
        ..TransportOptions::default()
    };
    let client = berth.client_with(Some(admin()), options);
    client.tags(&name, None).await.unwrap();
    let issued = berth.tokens_issued();
    assert!(
        client
            .transport()
            .token_for_duration(&op, 30)
            .await
            .unwrap()
    );
    assert_eq!(berth.tokens_issued(), issued, "60 s covers 30 s + 6 s");
    assert!(
        client
            .transport()
            .token_for_duration(&op, 120)
            .await
            .unwrap()
    );
    assert_eq!(berth.tokens_issued(), issued + 1, "60 s cannot cover 120 s");
}

#[tokio::test]
async fn delete_works_and_a_disabled_delete_is_typed() {
    let berth = Berth::start().await;
    let image = berth.push_image("del/me", "v1", b"d").await;
    let name = repo("del/me");
    let client = berth.client(Some(admin()));
    let digest = TagOrDigest::Digest(image.digest.clone());
    client.delete_manifest(&name, &digest).await.unwrap();
    let err = client.head_manifest(&name, &digest).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err}");

    let berth = Berth::start_with(|c| c.delete_enabled = false).await;
    let image = berth.push_image("del/me", "v1", b"d").await;
    let client = berth.client(Some(admin()));
    let err = client
        .delete_manifest(&name, &TagOrDigest::Digest(image.digest))
        .await
        .unwrap_err();
    assert_delete_unsupported(&err);
}

#[tokio::test]
async fn concurrent_requests_share_one_token_fetch() {
    let berth = Berth::start().await;
    berth.push_image("busy/repo", "v1", b"b").await;
    let name = repo("busy/repo");
    let client = berth.client(Some(admin()));
    let before = berth.tokens_issued();
    let calls = (0..8).map(|_| client.tags(&name, None));
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result.unwrap(), ["v1"]);
    }
    assert_eq!(
        berth.tokens_issued(),
        before + 1,
        "one fetch in flight per key"
    );
}

/// The observer sees the whole flow (challenge, scopes, token request, the
/// grant and its expiry source) and nothing secret.
#[tokio::test]
async fn the_observer_sees_each_step_without_secrets() {
    use berth_client::auth::{Event, ExpirySource, GrantKind};

    let berth = Berth::start().await;
    berth.push_image("team/app", "v1", b"layer").await;
    let (options, events) = recording();
    let client = berth.client_with(Some(admin()), options);
    assert_eq!(client.tags(&repo("team/app"), None).await.unwrap(), ["v1"]);
    let events = events.lock().unwrap().clone();
    let all = format!("{events:?}");
    assert!(!all.contains(crate::support::ADMIN_PASSWORD), "{all}");

    let challenge = events.iter().find_map(|e| match e {
        Event::Challenges(c) => c.bearer().cloned(),
        _ => None,
    });
    let challenge = challenge.unwrap();
    assert!(challenge.realm().unwrap().ends_with("/token"));
    assert_eq!(challenge.scope(), Some("repository:team/app:pull"));
    let requested = events.iter().find_map(|e| match e {
        Event::Scopes {
            requested, kept, ..
        } => Some((requested.to_string(), kept.to_string())),
        _ => None,
    });
    assert_eq!(
        requested.unwrap(),
        (
            "repository:team/app:pull".to_owned(),
            "repository:team/app:pull".to_owned()
        )
    );
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TokenRequest {
            grant: GrantKind::Basic,
            ..
        }
    )));
    let received = events.iter().find_map(|e| match e {
        Event::TokenReceived { claims, expiry, .. } => Some((claims.clone(), *expiry)),
        _ => None,
    });
    let (claims, expiry) = received.unwrap();
    assert_eq!(expiry, ExpirySource::JwtExp);
    assert_eq!(claims.unwrap()["sub"], "admin");
}

#[tokio::test]
async fn the_password_grant_by_post_pulls_a_private_repository() {
    use berth_client::auth::{Event, GrantKind};
    let berth = Berth::start().await;
    let image = berth.push_image("team/grant", "v1", b"granted").await;
    let name = repo("team/grant");
    let (options, events) = recording();
    let options = TransportOptions {
        password_grant: true,
        ..options
    };
    let client = berth.client_with(Some(admin()), options);
    let manifest = client
        .get_manifest(&name, &TagOrDigest::parse("v1").unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(manifest.digest, image.digest);
    let requests: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::TokenRequest { method, grant, .. } => Some((method.clone(), *grant)),
            _ => None,
        })
        .collect();
    assert_eq!(
        requests,
        [(reqwest::Method::POST, GrantKind::Password)],
        "berth takes the password grant: no GET fallback"
    );
}

#[tokio::test]
async fn an_offline_token_works_as_an_identity_token() {
    use berth_client::credentials::Credential;
    let berth = Berth::start().await;
    let image = berth.push_image("team/offline", "v1", b"offline").await;
    let name = repo("team/offline");

    // Before a ping, the realm is unknown: nothing to ask.
    let client = berth.client(Some(admin()));
    assert!(client.transport().offline_token().await.unwrap().is_none());
    client.ping().await.unwrap();
    let before = berth.tokens_issued();
    let token = client.transport().offline_token().await.unwrap().unwrap();
    assert_eq!(berth.tokens_issued(), before + 1);
    let shown = format!("{token:?}");
    let Credential::IdentityToken(secret) = &token else {
        panic!("expected an identity token, got {shown}");
    };
    assert!(!secret.is_empty());
    assert!(
        !shown.contains(secret.as_str()),
        "Debug redacts it: {shown}"
    );

    // The refresh token alone pulls the private repository (refresh-token grant).
    let (options, events) = recording();
    let pulled = berth.client_with(Some(token.clone()), options);
    let manifest = pulled
        .get_manifest(&name, &TagOrDigest::parse("v1").unwrap(), &[])
        .await
        .unwrap();
    assert_eq!(manifest.digest, image.digest);
    let blob = pulled.get_blob(&name, &image.layer).await.unwrap();
    assert_eq!(blob.bytes().await.unwrap(), b"offline");
    let events = format!("{:?}", events.lock().unwrap());
    assert!(events.contains("RefreshToken"), "{events}");
    assert!(!events.contains(secret.as_str()), "no event carries it");

    // A client holding no password has nothing to trade for a refresh token.
    assert!(pulled.transport().offline_token().await.unwrap().is_none());
}
