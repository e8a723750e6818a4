//! Fixture servers that behave as real registries do (PROTOCOL.md section 7,
//! the GHCR seed), each with a test that fails if the client mishandles the
//! quirk.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use berth_client::auth::{CacheKey, ManualClock, Operation, TokenCache, TransportOptions};
use berth_client::client::{ClientError, Ping};
use berth_client::credentials::Credential;
use berth_core::reference::Registry;
use berth_core::{Digest, TagOrDigest};

use crate::support::{
    Recorder, Responder, assert_delete_unsupported, basic, fixture_client, oci_error, repo,
    respond, serve, serve_fixture, user_password,
};

const PLACEHOLDER: &str = "repository:user/image:pull";
const GHCR_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;

/// GHCR as the seed found it.
#[derive(Default)]
struct Ghcr {
    rec: Recorder,
    /// Issued tokens and the scopes they were issued for.
    tokens: Mutex<HashMap<String, String>>,
    n: AtomicU32,
}

impl Responder for Ghcr {
    fn handle(
        &self,
        addr: SocketAddr,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        if uri.path() == "/token" {
            let seen = self.rec.record("token", method, uri, headers, body);
            let scopes = seen.params("scope");
            let denied = || {
                oci_error(
                    403,
                    "DENIED",
                    "requested access to the resource is denied",
                    &[],
                )
            };
            if scopes.is_empty() || scopes.iter().any(|s| s.contains("user/image")) {
                return denied();
            }
            let wants_more_than_pull = scopes
                .iter()
                .any(|s| s.starts_with("repository:") && !s.ends_with(":pull"));
            match seen.authorization.as_deref() {
                None if wants_more_than_pull => return denied(),
                None => {}
                Some(a) if a == basic("toddysm", "ghp_secret") => {}
                Some(_) => {
                    return oci_error(
                        401,
                        "UNAUTHORIZED",
                        "bad credentials",
                        &[("www-authenticate", r#"Basic realm="ghcr.io""#)],
                    );
                }
            }
            let token = format!("djE6{}", self.n.fetch_add(1, Ordering::SeqCst));
            self.tokens
                .lock()
                .unwrap()
                .insert(token.clone(), scopes.join(" "));
            // No expires_in, no issued_at: the client must assume 60 s.
            return respond(
                200,
                &[("content-type", "application/json")],
                format!(r#"{{"token":"{token}"}}"#),
            );
        }
        let seen = self.rec.record("registry", method, uri, headers, body);
        let granted = seen
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| self.tokens.lock().unwrap().get(t).cloned());
        let challenge = |scope: &str| {
            let value =
                format!(r#"Bearer realm="http://{addr}/token",service="ghcr.io",scope="{scope}""#);
            oci_error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                &[("www-authenticate", &value)],
            )
        };
        let path = seen.path.as_str();
        match (path, granted) {
            ("/v2/" | "/v2", None) => challenge(PLACEHOLDER),
            ("/v2/" | "/v2", Some(_)) => respond(200, &[], ""),
            ("/v2/_catalog", Some(scope)) if scope.starts_with("repository:") => respond(
                200,
                &[("content-type", "application/json")],
                r#"{"repositories":["toddysm/python"]}"#,
            ),
            ("/v2/_catalog", _) => challenge(PLACEHOLDER),
            (p, None) if p.starts_with("/v2/toddysm/python/") => {
                challenge("repository:toddysm/python:pull")
            }
            ("/v2/toddysm/python/tags/list", Some(_)) => respond(
                200,
                &[("content-type", "application/json")],
                r#"{"name":"toddysm/python","tags":["3.10"]}"#,
            ),
            ("/v2/toddysm/python/manifests/3.10", Some(_)) if *method == Method::DELETE => {
                oci_error(405, "UNSUPPORTED", "The operation is unsupported.", &[])
            }
            ("/v2/toddysm/python/manifests/3.10", Some(_)) => {
                let digest = Digest::sha256_of(GHCR_MANIFEST.as_bytes()).to_string();
                let length = GHCR_MANIFEST.len().to_string();
                let headers = [
                    (
                        "content-type",
                        "application/vnd.docker.distribution.manifest.v2+json",
                    ),
                    ("docker-content-digest", digest.as_str()),
                    ("content-length", length.as_str()),
                ];
                let body = if *method == Method::HEAD {
                    ""
                } else {
                    GHCR_MANIFEST
                };
                respond(200, &headers, body)
            }
            _ => oci_error(
                404,
                "NAME_UNKNOWN",
                "repository name not known to registry",
                &[],
            ),
        }
    }
}

async fn start_ghcr() -> (SocketAddr, Arc<Ghcr>) {
    let ghcr = Arc::new(Ghcr::default());
    let addr = serve_fixture(ghcr.clone()).await;
    (addr, ghcr)
}

fn ghcr_user() -> Credential {
    user_password("toddysm", "ghp_secret")
}

/// The token requests' scopes, one list per request.
fn token_scopes(rec: &Recorder) -> Vec<Vec<String>> {
    rec.of("token")
        .iter()
        .map(|s| s.params("scope").into_iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn ghcr_placeholder_scope_is_never_requested() {
    let (addr, ghcr) = start_ghcr().await;
    for credential in [None, Some(ghcr_user())] {
        let client = fixture_client(addr, credential, TransportOptions::default());
        // /v2/: no token without a repository; the ping still succeeds.
        assert_eq!(client.ping().await.unwrap(), Ping { checked: false });
        // Catalog: GHCR grants registry:catalog:* but the catalog refuses it.
        let err = client.catalog(None).await.unwrap_err();
        assert!(
            matches!(err, ClientError::CatalogUnsupported { .. }),
            "{err}"
        );
        // A real repository works.
        let tags = client.tags(&repo("toddysm/python"), None).await.unwrap();
        assert_eq!(tags, ["3.10"]);
        let manifest = client
            .get_manifest(
                &repo("toddysm/python"),
                &TagOrDigest::parse("3.10").unwrap(),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(manifest.bytes, GHCR_MANIFEST.as_bytes());
        let head = client
            .head_manifest(
                &repo("toddysm/python"),
                &TagOrDigest::parse("3.10").unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(head.digest, manifest.digest);
    }
    let scopes = token_scopes(&ghcr.rec);
    assert!(
        scopes.iter().flatten().all(|s| !s.contains("user/image")),
        "the placeholder scope was sent: {scopes:?}"
    );
    assert!(
        scopes
            .iter()
            .filter(|s| s.iter().any(|s| s == "registry:catalog:*"))
            .all(|s| s.len() == 1),
        "a repository scope was merged into a catalog request: {scopes:?}"
    );
    assert!(
        scopes.contains(&vec![]),
        "ping asks for no scope: {scopes:?}"
    );
    // Re-authentication is bounded: per catalog call, at most two requests.
    let catalog_requests = ghcr
        .rec
        .of("registry")
        .iter()
        .filter(|s| s.path == "/v2/_catalog")
        .count();
    assert!(
        catalog_requests <= 4,
        "{catalog_requests} catalog requests for two calls"
    );
}

#[tokio::test]
async fn ghcr_token_without_expires_in_lives_60_seconds() {
    let (addr, ghcr) = start_ghcr().await;
    let clock = Arc::new(ManualClock::starting_now());
    let cache = Arc::new(TokenCache::with_clock(clock.clone()));
    let options = TransportOptions {
        cache: Some(cache.clone()),
        ..TransportOptions::default()
    };
    let client = fixture_client(addr, None, options);
    let name = repo("toddysm/python");
    client.tags(&name, None).await.unwrap();
    let key = CacheKey::new(
        &Registry::parse(&addr.to_string()).unwrap(),
        &format!("http://{addr}/token"),
        Some("ghcr.io"),
        None,
        &Operation::Pull(name.clone()).scopes(),
    );
    let token = cache
        .peek(&key)
        .expect("the token is cached under the operation's key");
    assert_eq!(token.lifetime(), Duration::from_secs(60));
    assert_eq!(ghcr.rec.of("token").len(), 1);
    clock.advance(Duration::from_secs(50));
    client.tags(&name, None).await.unwrap();
    assert_eq!(ghcr.rec.of("token").len(), 1, "10 s left of 60: reused");
    clock.advance(Duration::from_secs(5));
    client.tags(&name, None).await.unwrap();
    assert_eq!(
        ghcr.rec.of("token").len(),
        2,
        "5 s left of 60: refreshed first"
    );
}

#[tokio::test]
async fn ghcr_delete_405_is_delete_unsupported_and_anonymous_asks_pull_only() {
    let (addr, ghcr) = start_ghcr().await;
    let client = fixture_client(addr, Some(ghcr_user()), TransportOptions::default());
    let err = client
        .delete_manifest(
            &repo("toddysm/python"),
            &TagOrDigest::parse("3.10").unwrap(),
        )
        .await
        .unwrap_err();
    assert_delete_unsupported(&err);
    // The operation's `delete`, plus the challenge's hint (`pull`) on the
    // same repository.
    assert!(
        token_scopes(&ghcr.rec)
            .iter()
            .flatten()
            .any(|s| s == "repository:toddysm/python:delete,pull"),
        "a delete asks for `delete`: {:?}",
        token_scopes(&ghcr.rec)
    );

    // Anonymous: GHCR answers 403 to anything beyond pull, so the client
    // must not ask for it.
    let (addr, ghcr) = start_ghcr().await;
    let client = fixture_client(addr, None, TransportOptions::default());
    let err = client
        .delete_manifest(
            &repo("toddysm/python"),
            &TagOrDigest::parse("3.10").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::DeleteUnsupported { .. }),
        "{err}"
    );
    for scope in token_scopes(&ghcr.rec).iter().flatten() {
        assert!(scope.ends_with(":pull"), "anonymous asked for {scope}");
    }
}

// ----- Docker Hub: realm on another host and port; blobs redirect -----

const HUB_LAYER: &[u8] = b"hub layer bytes";

#[tokio::test]
async fn docker_hub_credentials_go_to_the_realm_and_never_follow_a_redirect() {
    let rec = Recorder::default();
    let r = rec.clone();
    let storage = serve(move |_| {
        Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    r.record("storage", &method, &uri, &headers, &body);
                    respond(
                        200,
                        &[("content-type", "application/octet-stream")],
                        HUB_LAYER,
                    )
                }
            },
        )
    })
    .await;
    let r = rec.clone();
    let n = Arc::new(AtomicU32::new(0));
    let auth = serve(move |_| {
        Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (r, n) = (r.clone(), n.clone());
                async move {
                    let seen = r.record("token", &method, &uri, &headers, &body);
                    if seen.authorization.as_deref() != Some(basic("hubuser", "hubpass").as_str()) {
                        return oci_error(
                            401,
                            "UNAUTHORIZED",
                            "incorrect username or password",
                            &[],
                        );
                    }
                    let token = format!("hub-{}", n.fetch_add(1, Ordering::SeqCst));
                    let body = format!(
                        r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#
                    );
                    respond(200, &[("content-type", "application/json")], body)
                }
            },
        )
    })
    .await;
    let r = rec.clone();
    let registry = serve(move |_| {
        Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let r = r.clone();
            async move {
                let seen = r.record("registry", &method, &uri, &headers, &body);
                let authorised = seen.authorization.as_deref().is_some_and(|a| a.starts_with("Bearer hub-"));
                if !authorised {
                    // The realm is on another host (localhost, not 127.0.0.1) and port.
                    let value = format!(
                        r#"Bearer realm="http://localhost:{}/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
                        auth.port()
                    );
                    return oci_error(401, "UNAUTHORIZED", "authentication required", &[("www-authenticate", &value)]);
                }
                let location = format!("http://127.0.0.1:{}/blob?X-Amz-Signature=abc", storage.port());
                respond(307, &[("location", &location)], "")
            }
        })
    })
    .await;

    let credential = user_password("hubuser", "hubpass");
    let client = fixture_client(registry, Some(credential), TransportOptions::default());
    let blob = client
        .get_blob(&repo("library/alpine"), &Digest::sha256_of(HUB_LAYER))
        .await
        .unwrap();
    assert_eq!(blob.bytes().await.unwrap(), HUB_LAYER);

    let tokens = rec.of("token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0].authorization.as_deref(),
        Some(basic("hubuser", "hubpass").as_str())
    );
    assert_eq!(tokens[0].params("service"), ["registry.docker.io"]);
    assert_eq!(
        tokens[0].params("scope"),
        ["repository:library/alpine:pull"]
    );
    for seen in rec.of("registry") {
        assert!(
            !seen
                .authorization
                .as_deref()
                .unwrap_or_default()
                .starts_with("Basic"),
            "the password went to the registry instead of the realm"
        );
    }
    let storage_seen = rec.of("storage");
    assert_eq!(storage_seen.len(), 1);
    assert_eq!(
        storage_seen[0].authorization, None,
        "Authorization followed a redirect to another port"
    );
}

// ----- zot: lower-case scheme, unquoted realm, empty scope -----

#[tokio::test]
async fn zot_lower_case_bearer_unquoted_realm_and_empty_scope() {
    let rec = Recorder::default();
    let r = rec.clone();
    let addr = serve(move |addr| {
        Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    if uri.path() == "/auth/token" {
                        r.record("token", &method, &uri, &headers, &body);
                        return respond(
                            200,
                            &[("content-type", "application/json")],
                            r#"{"token":"zot-token","expires_in":3600}"#,
                        );
                    }
                    let seen = r.record("registry", &method, &uri, &headers, &body);
                    if seen.authorization.as_deref() != Some("Bearer zot-token") {
                        let value = format!(
                            r#"bearer realm=http://{addr}/auth/token,service="zot",scope="""#
                        );
                        return oci_error(
                            401,
                            "UNAUTHORIZED",
                            "authentication required",
                            &[("www-authenticate", &value)],
                        );
                    }
                    respond(
                        200,
                        &[("content-type", "application/json")],
                        r#"{"name":"zot/repo","tags":["1","2"]}"#,
                    )
                }
            },
        )
    })
    .await;
    let client = fixture_client(addr, None, TransportOptions::default());
    assert_eq!(
        client.tags(&repo("zot/repo"), None).await.unwrap(),
        ["1", "2"]
    );
    let tokens = rec.of("token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].params("service"), ["zot"]);
    assert_eq!(tokens[0].params("scope"), ["repository:zot/repo:pull"]);
}

// ----- Quay: deletion only under `*` -----

#[tokio::test]
async fn quay_delete_retries_once_asking_star() {
    let rec = Recorder::default();
    let r = rec.clone();
    let tokens: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let addr = serve(move |addr| {
        Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (r, tokens) = (r.clone(), tokens.clone());
            async move {
                if uri.path() == "/v2/auth" {
                    let seen = r.record("token", &method, &uri, &headers, &body);
                    let mut all = tokens.lock().unwrap();
                    let token = format!("quay-{}", all.len());
                    all.insert(token.clone(), seen.params("scope").into_iter().map(str::to_owned).collect());
                    return respond(200, &[("content-type", "application/json")], format!(r#"{{"token":"{token}"}}"#));
                }
                let seen = r.record("registry", &method, &uri, &headers, &body);
                let scopes = seen
                    .authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .and_then(|t| tokens.lock().unwrap().get(t).cloned());
                match scopes {
                    Some(s) if s.iter().any(|s| s == "repository:q/repo:*") => respond(202, &[], ""),
                    Some(_) => {
                        let value = format!(r#"Bearer realm="http://{addr}/v2/auth",service="quay",scope="repository:q/repo:delete",error="insufficient_scope""#);
                        oci_error(401, "UNAUTHORIZED", "access to the requested resource is not authorized", &[("www-authenticate", &value)])
                    }
                    None => {
                        let value = format!(r#"Bearer realm="http://{addr}/v2/auth",service="quay""#);
                        oci_error(401, "UNAUTHORIZED", "access to the requested resource is not authorized", &[("www-authenticate", &value)])
                    }
                }
            }
        })
    })
    .await;
    let credential = user_password("robot", "quay-secret");
    let client = fixture_client(addr, Some(credential), TransportOptions::default());
    let digest = Digest::sha256_of(b"m");
    client
        .delete_manifest(&repo("q/repo"), &TagOrDigest::Digest(digest))
        .await
        .unwrap();
    let scopes = token_scopes(&rec);
    assert_eq!(
        scopes,
        [
            vec!["repository:q/repo:delete".to_owned()],
            vec!["repository:q/repo:*".to_owned()]
        ]
    );
    assert_eq!(
        rec.of("registry").len(),
        3,
        "no auth, `delete`, then `*`: bounded"
    );
}

// ----- ECR: an expired token answers 400 -----

#[tokio::test]
async fn ecr_expired_token_400_triggers_exactly_one_refresh() {
    let rec = Recorder::default();
    let r = rec.clone();
    let issued = Arc::new(AtomicU32::new(0));
    let first_uses = Arc::new(AtomicU32::new(0));
    let addr = serve(move |addr| {
        Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (r, issued, first_uses) = (r.clone(), issued.clone(), first_uses.clone());
            async move {
                if uri.path() == "/token" {
                    r.record("token", &method, &uri, &headers, &body);
                    let token = format!("ecr-{}", issued.fetch_add(1, Ordering::SeqCst) + 1);
                    return respond(200, &[("content-type", "application/json")], format!(r#"{{"token":"{token}","expires_in":43200}}"#));
                }
                let seen = r.record("registry", &method, &uri, &headers, &body);
                match seen.authorization.as_deref() {
                    // The first token works once, then "expires" (ECR's 400).
                    Some("Bearer ecr-1") if first_uses.fetch_add(1, Ordering::SeqCst) > 0 => oci_error(
                        400,
                        "DENIED",
                        "Your authorization token has expired. Reauthenticate and try again.",
                        &[],
                    ),
                    Some(a) if a.starts_with("Bearer ecr-") => respond(
                        200,
                        &[("content-type", "application/json")],
                        r#"{"name":"e/repo","tags":["t"]}"#,
                    ),
                    _ => {
                        let value = format!(r#"Bearer realm="http://{addr}/token",service="ecr.aws""#);
                        oci_error(401, "UNAUTHORIZED", "authentication required", &[("www-authenticate", &value)])
                    }
                }
            }
        })
    })
    .await;
    let client = fixture_client(addr, None, TransportOptions::default());
    let name = repo("e/repo");
    assert_eq!(client.tags(&name, None).await.unwrap(), ["t"]);
    assert_eq!(client.tags(&name, None).await.unwrap(), ["t"]);
    assert_eq!(rec.of("token").len(), 2, "one refresh after the 400");
    let auths: Vec<_> = rec
        .of("registry")
        .iter()
        .map(|s| s.authorization.clone())
        .collect();
    assert_eq!(
        auths,
        [
            None,
            Some("Bearer ecr-1".into()),
            Some("Bearer ecr-1".into()),
            Some("Bearer ecr-2".into())
        ]
    );
}

// ----- Basic-only registries -----

#[tokio::test]
async fn basic_only_registry_gets_basic_on_every_request() {
    let rec = Recorder::default();
    let r = rec.clone();
    let addr = serve(move |_| {
        Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    let seen = r.record("registry", &method, &uri, &headers, &body);
                    if seen.authorization.as_deref() != Some(basic("u", "p").as_str()) {
                        return oci_error(
                            401,
                            "UNAUTHORIZED",
                            "authentication required",
                            &[("www-authenticate", r#"Basic realm="registry""#)],
                        );
                    }
                    respond(
                        200,
                        &[("content-type", "application/json")],
                        r#"{"name":"b/repo","tags":["x"]}"#,
                    )
                }
            },
        )
    })
    .await;
    let credential = user_password("u", "p");
    let client = fixture_client(addr, Some(credential), TransportOptions::default());
    client.tags(&repo("b/repo"), None).await.unwrap();
    client.tags(&repo("b/repo"), None).await.unwrap();
    let auths: Vec<_> = rec
        .of("registry")
        .iter()
        .map(|s| s.authorization.clone())
        .collect();
    let b = Some(basic("u", "p"));
    assert_eq!(
        auths,
        [None, b.clone(), b],
        "Basic sent up front once the scheme is known"
    );
    assert!(rec.of("token").is_empty());
}

// ----- a registry that never accepts: the retry is bounded -----

#[tokio::test]
async fn a_refused_token_is_retried_once_only() {
    let rec = Recorder::default();
    let r = rec.clone();
    let n = Arc::new(AtomicU32::new(0));
    let addr = serve(move |addr| {
        Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (r, n) = (r.clone(), n.clone());
            async move {
                if uri.path() == "/token" {
                    r.record("token", &method, &uri, &headers, &body);
                    let token = format!("t{}", n.fetch_add(1, Ordering::SeqCst));
                    return respond(200, &[("content-type", "application/json")], format!(r#"{{"token":"{token}"}}"#));
                }
                r.record("registry", &method, &uri, &headers, &body);
                let value = format!(r#"Bearer realm="http://{addr}/token",service="s",scope="repository:x/y:pull",error="invalid_token""#);
                oci_error(401, "UNAUTHORIZED", "token invalid", &[("www-authenticate", &value)])
            }
        })
    })
    .await;
    let client = fixture_client(addr, None, TransportOptions::default());
    let err = client.tags(&repo("x/y"), None).await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
    assert_eq!(rec.of("registry").len(), 2);
    assert_eq!(rec.of("token").len(), 1);
    // The next request uses the known realm: one token (the refused one is
    // not reused), one retry, then it stops.
    let _ = client.tags(&repo("x/y"), None).await.unwrap_err();
    assert_eq!(rec.of("registry").len(), 4);
    assert!(rec.of("token").len() <= 3);
}

// ----- identity tokens: the OAuth2 refresh-token grant -----

async fn start_oauth(oauth: bool) -> (SocketAddr, Recorder) {
    let rec = Recorder::default();
    let r = rec.clone();
    let addr = serve(move |addr| {
        Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    if uri.path() == "/token" {
                        let seen = r.record("token", &method, &uri, &headers, &body);
                        let grant_ok = seen.method == "POST"
                            && seen.form.contains(&("grant_type".into(), "refresh_token".into()))
                            && seen.form.contains(&("refresh_token".into(), "rt-secret".into()));
                        if !oauth {
                            return oci_error(404, "NOT_FOUND", "no such route", &[]);
                        }
                        if !grant_ok {
                            return oci_error(401, "UNAUTHORIZED", "bad grant", &[]);
                        }
                        return respond(
                            200,
                            &[("content-type", "application/json")],
                            r#"{"access_token":"oauth-token","expires_in":300,"scope":"repository:i/repo:pull"}"#,
                        );
                    }
                    let seen = r.record("registry", &method, &uri, &headers, &body);
                    if seen.authorization.as_deref() != Some("Bearer oauth-token") {
                        let value = format!(r#"Bearer realm="http://{addr}/token",service="oauth""#);
                        return oci_error(
                            401,
                            "UNAUTHORIZED",
                            "authentication required",
                            &[("www-authenticate", &value)],
                        );
                    }
                    respond(
                        200,
                        &[("content-type", "application/json")],
                        r#"{"name":"i/repo","tags":["a"]}"#,
                    )
                }
            },
        )
    })
    .await;
    (addr, rec)
}

#[tokio::test]
async fn identity_token_uses_the_refresh_token_grant() {
    let (addr, rec) = start_oauth(true).await;
    let credential = Credential::IdentityToken("rt-secret".into());
    let client = fixture_client(addr, Some(credential), TransportOptions::default());
    assert_eq!(client.tags(&repo("i/repo"), None).await.unwrap(), ["a"]);
    let tokens = rec.of("token");
    assert_eq!(tokens.len(), 1);
    let form = &tokens[0].form;
    for pair in [
        ("grant_type", "refresh_token"),
        ("client_id", "berth"),
        ("service", "oauth"),
        ("scope", "repository:i/repo:pull"),
    ] {
        assert!(
            form.contains(&(pair.0.to_owned(), pair.1.to_owned())),
            "{pair:?} missing from the form"
        );
    }
    assert_eq!(
        tokens[0].authorization, None,
        "the refresh token travels in the form only"
    );
}

#[tokio::test]
async fn identity_token_refused_when_the_service_has_no_oauth2() {
    let (addr, rec) = start_oauth(false).await;
    let credential = Credential::IdentityToken("rt-secret".into());
    let client = fixture_client(addr, Some(credential), TransportOptions::default());
    let err = client.tags(&repo("i/repo"), None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            ClientError::Auth(berth_client::auth::AuthError::RefreshTokenRefused {
                status: 404,
                ..
            })
        ),
        "{text}"
    );
    assert!(!text.contains("rt-secret") && !format!("{err:?}").contains("rt-secret"));
    // No GET carrying the identity token as a password.
    assert!(rec.of("token").iter().all(|s| s.method == "POST"));
}

// ----- OAuth2 POST and its fallbacks (containerd's list: GCR 404, Artifactory 401, ACR 400) -----

/// A token service whose OAuth2 `POST` answers `post` (status, body) unless
/// it is 200, in which case a password grant for alice gets `post-token`;
/// `GET` with alice's Basic credentials gets `get-token`. The registry takes
/// either token for the tags of any repository.
async fn start_post_fixture(post: (u16, &'static str)) -> (SocketAddr, Recorder) {
    let rec = Recorder::default();
    let r = rec.clone();
    let addr = serve(move |addr| {
        Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    let json = [("content-type", "application/json")];
                    if uri.path() == "/token" {
                        let seen = r.record("token", &method, &uri, &headers, &body);
                        if seen.method == "POST" {
                            let (status, answer) = post;
                            if status != 200 {
                                return respond(status, &json, answer);
                            }
                            let password_grant = [
                                ("grant_type", "password"),
                                ("username", "alice"),
                                ("password", "alice-pw"),
                            ]
                            .iter()
                            .all(|(k, v)| seen.form.contains(&((*k).into(), (*v).into())));
                            if !password_grant {
                                return oci_error(401, "UNAUTHORIZED", "bad grant", &[]);
                            }
                            return respond(
                                200,
                                &json,
                                r#"{"access_token":"post-token","expires_in":300}"#,
                            );
                        }
                        if seen.authorization.as_deref() != Some(&basic("alice", "alice-pw")) {
                            return oci_error(401, "UNAUTHORIZED", "bad credentials", &[]);
                        }
                        return respond(200, &json, r#"{"token":"get-token","expires_in":300}"#);
                    }
                    let seen = r.record("registry", &method, &uri, &headers, &body);
                    let ok = matches!(
                        seen.authorization.as_deref(),
                        Some("Bearer get-token" | "Bearer post-token")
                    );
                    let Some(name) = seen
                        .path
                        .strip_prefix("/v2/")
                        .and_then(|p| p.strip_suffix("/tags/list"))
                    else {
                        return respond(404, &[], "");
                    };
                    if !ok {
                        let value = format!(
                            r#"Bearer realm="http://{addr}/token",service="fixture",scope="repository:{name}:pull""#
                        );
                        return oci_error(
                            401,
                            "UNAUTHORIZED",
                            "authentication required",
                            &[("www-authenticate", &value)],
                        );
                    }
                    respond(200, &json, format!(r#"{{"name":"{name}","tags":["t"]}}"#))
                }
            },
        )
    })
    .await;
    (addr, rec)
}

fn alice() -> Credential {
    user_password("alice", "alice-pw")
}

fn with_password_grant() -> TransportOptions {
    TransportOptions {
        password_grant: true,
        ..TransportOptions::default()
    }
}

#[tokio::test]
async fn the_password_grant_posts_when_the_service_offers_it() {
    let (addr, rec) = start_post_fixture((200, "")).await;
    let client = fixture_client(addr, Some(alice()), with_password_grant());
    assert_eq!(client.tags(&repo("i/one"), None).await.unwrap(), ["t"]);
    let tokens = rec.of("token");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0].method, "POST");
    for pair in [
        ("grant_type", "password"),
        ("username", "alice"),
        ("client_id", "berth"),
        ("service", "fixture"),
        ("scope", "repository:i/one:pull"),
    ] {
        assert!(
            tokens[0]
                .form
                .contains(&(pair.0.to_owned(), pair.1.to_owned())),
            "{pair:?} missing from the form"
        );
    }
    assert_eq!(
        tokens[0].authorization, None,
        "the password is in the form only"
    );
    // Without the option: GET with Basic, as before.
    let (addr, rec) = start_post_fixture((200, "")).await;
    let client = fixture_client(addr, Some(alice()), TransportOptions::default());
    assert_eq!(client.tags(&repo("i/one"), None).await.unwrap(), ["t"]);
    assert!(rec.of("token").iter().all(|s| s.method == "GET"));
}

#[tokio::test]
async fn the_password_grant_falls_back_to_get_and_remembers() {
    for (status, body) in [
        (404, "404 page not found"),                      // GCR
        (405, ""),                                        // a GET-only router
        (401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#), // Artifactory
        (400, r#"{"error":"unsupported_grant_type"}"#),   // ACR
    ] {
        let (addr, rec) = start_post_fixture((status, body)).await;
        let client = fixture_client(addr, Some(alice()), with_password_grant());
        assert_eq!(client.tags(&repo("i/one"), None).await.unwrap(), ["t"]);
        // Another scope, another token: straight to GET this time.
        assert_eq!(client.tags(&repo("i/two"), None).await.unwrap(), ["t"]);
        let tokens = rec.of("token");
        let posts = tokens.iter().filter(|s| s.method == "POST").count();
        let gets: Vec<_> = tokens.iter().filter(|s| s.method == "GET").collect();
        assert_eq!(
            posts, 1,
            "HTTP {status}: one POST, then GET only: {tokens:?}"
        );
        assert_eq!(gets.len(), 2, "HTTP {status}: {tokens:?}");
        assert!(
            gets.iter()
                .all(|s| s.authorization.as_deref() == Some(&basic("alice", "alice-pw"))),
            "HTTP {status}: the fallback sends Basic credentials"
        );
    }
}

#[tokio::test]
async fn a_refused_identity_token_says_to_log_in_again() {
    use berth_client::auth::AuthError;
    // 401 (berth, distribution) and RFC 6749's 400 invalid_grant: expired or revoked.
    for (status, body) in [
        (
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid token"}]}"#,
        ),
        (
            400,
            r#"{"error":"invalid_grant","error_description":"expired"}"#,
        ),
    ] {
        let (addr, rec) = start_post_fixture((status, body)).await;
        let credential = Credential::IdentityToken("rt-revoked".into());
        let client = fixture_client(addr, Some(credential), TransportOptions::default());
        let err = client.tags(&repo("i/one"), None).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, ClientError::Auth(AuthError::LoginExpired { status: s, .. }) if *s == status),
            "HTTP {status}: {text}"
        );
        assert!(text.contains("expired or was revoked"), "{text}");
        assert!(text.contains(&format!("berth login {addr}")), "{text}");
        assert!(!text.contains("rt-revoked") && !format!("{err:?}").contains("rt-revoked"));
        assert!(
            rec.of("token").iter().all(|s| s.method == "POST"),
            "an identity token is never sent by GET"
        );
    }
    // A 405 (or a 400 other than invalid_grant): no refresh-token grant there.
    let (addr, _) = start_post_fixture((405, "")).await;
    let credential = Credential::IdentityToken("rt-secret".into());
    let client = fixture_client(addr, Some(credential), TransportOptions::default());
    let err = client.tags(&repo("i/one"), None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            ClientError::Auth(AuthError::RefreshTokenRefused { status: 405, .. })
        ),
        "{text}"
    );
    assert!(text.contains("--store-password"), "{text}");
}
