//! Time per parse of the protocol strings a registry and a client read on every
//! request: `WWW-Authenticate` challenges as real registries send them, token
//! scopes, an image reference, a digest and a request path.
//!
//! `cargo bench -p berth-core --bench parse` prints one row per input (divan:
//! fastest, slowest, median and mean time per parse).

use std::hint::black_box;

use berth_core::{
    Challenges, Digest, Endpoint, EndpointError, ParseError, Reference, Scope, Scopes,
};

const GHCR: &str =
    r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull""#;
const DOCKER_HUB: &str = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
const TWO_CHALLENGES: &str =
    r#"Basic realm="Registry Realm", Bearer realm="https://r.example/token",service="r.example""#;
const ZOT: &str = r#"bearer realm=http://localhost:8080/auth/token,service="zot",scope="""#;

const SCOPE: &str = "repository:samalba/my-app:pull,push";
const SCOPE_HOST_PORT: &str = "repository:localhost:5000/foo/bar:pull,push";
const SCOPE_LIST: &str =
    "repository:samalba/my-app:pull repository:library/alpine:pull repository:samalba/my-app:push";

const REFERENCE: &str = "ghcr.io/toddysm/python:3.10";
const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const MANIFEST_PATH: &str = "/v2/toddysm/python/manifests/3.10";

fn main() {
    // Every input must parse, or the numbers would time the error path.
    for challenge in [GHCR, DOCKER_HUB, TWO_CHALLENGES, ZOT] {
        assert!(Challenges::parse(challenge).is_ok(), "{challenge}");
    }
    for scope in [SCOPE, SCOPE_HOST_PORT] {
        assert!(scope.parse::<Scope>().is_ok(), "{scope}");
    }
    assert_eq!(Scopes::parse(SCOPE_LIST).map(|s| s.len()), Ok(2));
    assert!(Reference::parse(REFERENCE).is_ok());
    assert!(Digest::parse(DIGEST).is_ok());
    assert!(Endpoint::parse(MANIFEST_PATH, None).is_ok());
    divan::main();
}

/// `WWW-Authenticate` header values.
mod challenge {
    use std::hint::black_box;

    use berth_core::{Challenges, ParseError};

    use super::{DOCKER_HUB, GHCR, TWO_CHALLENGES, ZOT};

    #[divan::bench]
    fn ghcr() -> Result<Challenges, ParseError> {
        Challenges::parse(black_box(GHCR))
    }

    #[divan::bench]
    fn docker_hub() -> Result<Challenges, ParseError> {
        Challenges::parse(black_box(DOCKER_HUB))
    }

    #[divan::bench]
    fn basic_and_bearer() -> Result<Challenges, ParseError> {
        Challenges::parse(black_box(TWO_CHALLENGES))
    }

    #[divan::bench]
    fn zot() -> Result<Challenges, ParseError> {
        Challenges::parse(black_box(ZOT))
    }
}

/// Token scopes, alone and as a list.
mod scope {
    use std::hint::black_box;

    use berth_core::{ParseError, Scope, Scopes};

    use super::{SCOPE, SCOPE_HOST_PORT, SCOPE_LIST};

    #[divan::bench]
    fn single() -> Result<Scope, ParseError> {
        black_box(SCOPE).parse()
    }

    #[divan::bench]
    fn host_port() -> Result<Scope, ParseError> {
        black_box(SCOPE_HOST_PORT).parse()
    }

    #[divan::bench]
    fn list_of_3_with_duplicate() -> Result<Scopes, ParseError> {
        Scopes::parse(black_box(SCOPE_LIST))
    }
}

#[divan::bench]
fn reference() -> Result<Reference, ParseError> {
    Reference::parse(black_box(REFERENCE))
}

#[divan::bench]
fn digest() -> Result<Digest, ParseError> {
    Digest::parse(black_box(DIGEST))
}

#[divan::bench]
fn endpoint_manifest() -> Result<Endpoint, EndpointError> {
    Endpoint::parse(black_box(MANIFEST_PATH), None)
}
