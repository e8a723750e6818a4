//! The fixture proves itself: its tokens verify against the keys it publishes
//! (and its forgeries do not), rotation unpublishes the old key, a down
//! issuer answers 503, and the Actions endpoint checks its request token.

#![expect(
    clippy::unwrap_used,
    reason = "a test reports a failure by panicking, helpers included"
)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_test_issuer::Issuer;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

async fn get(url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn jwks(issuer: &Issuer) -> JwkSet {
    let (status, body) = get(&format!("{}/jwks", issuer.url()), None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Verifies `token` as a relying party would: the key by `kid` from `set`,
/// the algorithm fixed by the key (never taken from the token), `iss` and
/// `aud` checked.
fn verify(set: &JwkSet, token: &str, issuer: &str, audience: &str) -> Result<Value, String> {
    let head = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = head.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("unknown kid")?;
    let algorithm = match jwk.common.key_algorithm {
        Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => Algorithm::ES256,
        other => return Err(format!("unexpected key algorithm {other:?}")),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn discovery_names_the_issuer_and_its_jwks() {
    let issuer = Issuer::start().await;
    assert!(issuer.url().starts_with("http://127.0.0.1:"));
    assert!(!issuer.url().ends_with('/'));
    let (status, doc) = get(
        &format!("{}/.well-known/openid-configuration", issuer.url()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], issuer.url());
    assert_eq!(doc["jwks_uri"], format!("{}/jwks", issuer.url()));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );

    let (_, body) = get(&format!("{}/jwks", issuer.url()), None).await;
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{body}");
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").unwrap();
    assert_eq!(rsa["kid"], issuer.active_kid());
    assert_eq!(rsa["alg"], "RS256");
    assert_eq!(rsa["use"], "sig");
    assert_eq!(rsa["e"], "AQAB");
    // 2048-bit modulus: 256 bytes, 342 base64url characters.
    assert_eq!(rsa["n"].as_str().unwrap().len(), 342);
    let ec = keys.iter().find(|k| k["kty"] == "EC").unwrap();
    assert_eq!(ec["kid"], issuer.es256_kid());
    assert_eq!(ec["alg"], "ES256");
    assert_eq!(ec["use"], "sig");
    assert_eq!(ec["crv"], "P-256");
    assert_eq!(ec["x"].as_str().unwrap().len(), 43);
    assert_eq!(ec["y"].as_str().unwrap().len(), 43);
    assert_eq!(issuer.fetches(), (1, 1));
}

#[tokio::test]
async fn tokens_verify_against_the_published_keys_and_forgeries_do_not() {
    let issuer = Issuer::start().await;
    let set = jwks(&issuer).await;
    let claims = issuer.github_claims("acme/app", "refs/heads/main", "registry.example");

    let rs = issuer.mint(claims.clone());
    let head = header(&rs);
    assert_eq!(head["alg"], "RS256");
    assert_eq!(head["typ"], "JWT");
    assert_eq!(head["kid"], issuer.active_kid());
    let verified = verify(&set, &rs, issuer.url(), "registry.example").unwrap();
    assert_eq!(verified, claims);

    let es = issuer.mint_es256(claims.clone());
    assert_eq!(header(&es)["alg"], "ES256");
    assert_eq!(header(&es)["kid"], issuer.es256_kid());
    assert_eq!(
        verify(&set, &es, issuer.url(), "registry.example").unwrap(),
        claims
    );

    let rogue = issuer.mint_unknown_kid(claims.clone());
    assert_ne!(header(&rogue)["kid"], issuer.active_kid());
    assert_eq!(
        verify(&set, &rogue, issuer.url(), "registry.example"),
        Err("unknown kid".to_owned())
    );

    // alg none: the header says none, the signature is empty.
    let none = issuer.forge_alg_none(claims.clone());
    assert!(none.ends_with('.'));
    assert_eq!(header(&none)["alg"], "none");
    assert_eq!(header(&none)["kid"], issuer.active_kid());
    assert!(verify(&set, &none, issuer.url(), "registry.example").is_err());

    // HS256 keyed with the public PEM: a verifier taking the algorithm from
    // the token and the PEM as the secret accepts it; one that fixes the
    // algorithm by the key does not.
    let hs = issuer.forge_hs256_with_public_key(claims.clone());
    assert_eq!(header(&hs)["alg"], "HS256");
    assert_eq!(header(&hs)["kid"], issuer.active_kid());
    assert!(verify(&set, &hs, issuer.url(), "registry.example").is_err());
    let pem = issuer.active_public_key_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let mut confused = Validation::new(Algorithm::HS256);
    confused.set_audience(&["registry.example"]);
    let accepted =
        jsonwebtoken::decode::<Value>(&hs, &DecodingKey::from_secret(pem.as_bytes()), &confused)
            .unwrap();
    assert_eq!(accepted.claims, claims);

    // The wrong audience is refused by a relying party.
    assert!(verify(&set, &rs, issuer.url(), "another").is_err());
}

#[tokio::test]
async fn rotation_publishes_the_new_key_and_drops_the_old() {
    let issuer = Issuer::start().await;
    let old_kid = issuer.active_kid();
    let old_token = issuer.mint(issuer.github_claims("acme/app", "refs/heads/main", "aud"));
    let new_kid = issuer.rotate();
    assert_ne!(new_kid, old_kid);
    assert_eq!(issuer.active_kid(), new_kid);

    let set = jwks(&issuer).await;
    let kids: Vec<_> = set
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, [new_kid.clone(), issuer.es256_kid()]);
    let new_token = issuer.mint(issuer.github_claims("acme/app", "refs/heads/main", "aud"));
    assert_eq!(header(&new_token)["kid"], new_kid);
    verify(&set, &new_token, issuer.url(), "aud").unwrap();
    assert_eq!(
        verify(&set, &old_token, issuer.url(), "aud"),
        Err("unknown kid".to_owned())
    );
}

#[tokio::test]
async fn down_answers_503_and_counts_the_attempts() {
    let issuer = Issuer::start().await;
    let discovery = format!("{}/.well-known/openid-configuration", issuer.url());
    let jwks = format!("{}/jwks", issuer.url());
    issuer.set_down(true);
    assert_eq!(get(&discovery, None).await.0, 503);
    assert_eq!(get(&jwks, None).await.0, 503);
    assert_eq!(get(&jwks, None).await.0, 503);
    assert_eq!(issuer.fetches(), (1, 2));
    issuer.set_down(false);
    assert_eq!(get(&discovery, None).await.0, 200);
    assert_eq!(get(&jwks, None).await.0, 200);
    assert_eq!(issuer.fetches(), (2, 3));
}

#[tokio::test]
async fn the_actions_endpoint_checks_its_request_token() {
    let issuer = Issuer::start().await;
    assert_eq!(
        issuer.actions_request_url(),
        format!("{}/actions/token?api-version=2.0", issuer.url())
    );
    issuer.set_actions_repository("acme/tools", "refs/tags/v1.2.0");
    let url = format!("{}&audience=registry.example", issuer.actions_request_url());

    assert_eq!(get(&url, None).await.0, 401);
    assert_eq!(get(&url, Some("not-the-token")).await.0, 401);

    let (status, body) = get(&url, Some(issuer.actions_request_token())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1);
    let token = body["value"].as_str().unwrap();
    let claims = verify(
        &jwks(&issuer).await,
        token,
        issuer.url(),
        "registry.example",
    )
    .unwrap();
    assert_eq!(claims["repository"], "acme/tools");
    assert_eq!(claims["ref"], "refs/tags/v1.2.0");
    assert_eq!(claims["ref_type"], "tag");
    assert_eq!(claims["sub"], "repo:acme/tools:ref:refs/tags/v1.2.0");

    // Without an audience, GitHub's default: the owner's URL.
    let (status, body) = get(
        &issuer.actions_request_url(),
        Some(issuer.actions_request_token()),
    )
    .await;
    assert_eq!(status, 200);
    let claims = verify(
        &jwks(&issuer).await,
        body["value"].as_str().unwrap(),
        issuer.url(),
        "https://github.com/acme",
    )
    .unwrap();
    assert_eq!(claims["repository_owner"], "acme");
}

#[tokio::test]
async fn claims_have_the_platforms_names_and_shapes() {
    let issuer = Issuer::start().await;
    let now = berth_test_issuer::now();

    let gh = issuer.github_claims("acme/app", "refs/heads/main", "aud");
    assert_eq!(gh["iss"], issuer.url());
    assert_eq!(gh["aud"], "aud");
    assert_eq!(gh["sub"], "repo:acme/app:ref:refs/heads/main");
    assert_eq!(gh["repository_owner"], "acme");
    assert_eq!(gh["ref_type"], "branch");
    assert_eq!(
        gh["workflow_ref"],
        "acme/app/.github/workflows/release.yml@refs/heads/main"
    );
    assert_eq!(gh["job_workflow_ref"], gh["workflow_ref"]);
    for name in [
        "repository_id",
        "repository_owner_id",
        "run_id",
        "run_number",
        "run_attempt",
        "actor_id",
    ] {
        let value = gh[name].as_str().unwrap();
        assert!(value.bytes().all(|b| b.is_ascii_digit()), "{name}: {value}");
    }
    assert_eq!(gh["sha"].as_str().unwrap().len(), 40);
    assert!(gh["iat"].as_u64().unwrap().abs_diff(now) <= 2);
    assert_eq!(gh["nbf"], gh["iat"]);
    assert_eq!(
        gh["exp"].as_u64().unwrap(),
        gh["iat"].as_u64().unwrap() + 300
    );
    // Stable per repository, distinct per run.
    let again = issuer.github_claims("acme/app", "refs/heads/main", "aud");
    assert_eq!(again["repository_id"], gh["repository_id"]);
    assert_ne!(again["run_id"], gh["run_id"]);
    assert_ne!(again["jti"], gh["jti"]);

    let gl = issuer.gitlab_claims("acme/platform/app", "main", "aud");
    assert_eq!(
        gl["sub"],
        "project_path:acme/platform/app:ref_type:branch:ref:main"
    );
    assert_eq!(gl["namespace_path"], "acme/platform");
    assert_eq!(gl["ref"], "main");
    assert_eq!(gl["ref_path"], "refs/heads/main");
    assert_eq!(gl["ref_protected"], "true");
    assert!(gl["runner_id"].is_u64());
    assert!(
        gl["ci_config_ref_uri"]
            .as_str()
            .unwrap()
            .ends_with("/acme/platform/app//.gitlab-ci.yml@refs/heads/main")
    );
    let tag = issuer.gitlab_claims("acme/app", "refs/tags/v2", "aud");
    assert_eq!(tag["ref"], "v2");
    assert_eq!(tag["ref_type"], "tag");
    assert_eq!(tag["sub"], "project_path:acme/app:ref_type:tag:ref:v2");
}

#[tokio::test]
async fn the_binary_writes_a_token_and_prints_its_url() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("berth-test-issuer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token.jwt");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-test-issuer"))
        .args([
            "--audience",
            "registry.example",
            "--claims-repository",
            "acme/app",
        ])
        .args(["--lifetime-secs", "1200", "--token-out"])
        .arg(&token_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let url = url.trim_end().to_owned();
    let token = std::fs::read_to_string(&token_file).unwrap();
    let (status, body) = get(&format!("{url}/jwks"), None).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, 200);
    let set: JwkSet = serde_json::from_value(body).unwrap();
    let claims = verify(&set, &token, &url, "registry.example").unwrap();
    assert_eq!(claims["repository"], "acme/app");
    assert_eq!(claims["ref"], "refs/heads/main");
    assert_eq!(
        claims["exp"].as_u64().unwrap(),
        claims["iat"].as_u64().unwrap() + 1200
    );
}
