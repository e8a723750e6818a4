//! Registry operations over the authenticated [`Transport`]: ping, catalog,
//! tags, manifests (HEAD, GET, PUT, DELETE), blobs (HEAD, GET, upload, mount,
//! DELETE) (PROTOCOL.md section 6).
//!
//! Each operation names its [`Operation`], so its token carries exactly the
//! scopes it needs. Lists follow `Link: <...>; rel="next"` verbatim. Manifests
//! fetched by digest are checked against it; blobs are checked as they stream.

mod blob;
mod error;
mod push;
mod referrers;

use berth_core::media_type::{
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST,
};
use berth_core::pagination::next_link;
use berth_core::reference::Registry;
use berth_core::{Digest, RepositoryName, TagOrDigest};
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LINK};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

pub use blob::BlobStream;
pub use error::ClientError;
pub use push::{BlobUpload, OnProgress, OpenBlob, Pushed, UploadOptions};

use crate::auth::{AuthError, Operation, Reply, Request, Transport, TransportOptions};
use crate::credentials::Credential;

/// The manifest media types asked for by default: OCI manifest and index,
/// Docker schema 2 manifest and manifest list.
pub const MANIFEST_ACCEPT: [&str; 4] = [
    OCI_IMAGE_MANIFEST,
    OCI_IMAGE_INDEX,
    DOCKER_MANIFEST_V2,
    DOCKER_MANIFEST_LIST,
];

/// The most bytes of a manifest read (the spec asks registries for 4 MiB).
const MAX_MANIFEST: usize = 8 * 1024 * 1024;
/// The most bytes of one catalog or tag page read.
const MAX_PAGE: usize = 16 * 1024 * 1024;
/// The most pages followed for one list.
const MAX_PAGES: usize = 10_000;
/// The header carrying a manifest's digest.
const CONTENT_DIGEST: &str = "docker-content-digest";

/// What `ping` learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// `true` when `/v2/` answered 200 (with the credentials that apply);
    /// `false` when the token service grants nothing that names no repository
    /// (GHCR), so `/v2/` could not be checked beyond its challenge.
    pub checked: bool,
}

/// A manifest's identity, from `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest` (or the digest asked for).
    pub digest: Digest,
    /// `Content-Type`.
    pub media_type: String,
    /// `Content-Length`.
    pub size: u64,
}

/// A manifest, from `GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The exact bytes.
    pub bytes: Bytes,
    /// `Content-Type`.
    pub media_type: String,
    /// The digest of the bytes (verified).
    pub digest: Digest,
}

/// How much of a list (catalog, tags) to fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listing {
    /// `n`: the entries asked for per page (the registry may send fewer);
    /// `None` leaves it to the registry (or to `max`, when smaller pages
    /// would be wasted).
    pub page_size: Option<u32>,
    /// The most entries returned: pagination stops once this many are in
    /// hand. `None`: every page.
    pub max: Option<usize>,
}

impl Listing {
    /// The `n` of the first page: the page size, else `max` (no page needs
    /// to be larger).
    fn first_page(&self) -> Option<u32> {
        self.page_size.or_else(|| {
            self.max
                .map(|m| u32::try_from(m.max(1)).unwrap_or(u32::MAX))
        })
    }
}

/// A client for one registry; clones share one transport (connections,
/// tokens).
#[derive(Debug, Clone)]
pub struct RegistryClient {
    transport: std::sync::Arc<Transport>,
}

impl RegistryClient {
    /// A client for `registry` (Docker Hub maps to `registry-1.docker.io`).
    pub fn new(
        registry: Registry,
        credential: Option<Credential>,
        options: TransportOptions,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            transport: std::sync::Arc::new(Transport::new(registry, credential, options)?),
        })
    }

    /// The transport under the client.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        self.transport.registry()
    }

    /// `GET /v2/`: the registry speaks the distribution API and accepts the
    /// credentials (see [`Ping::checked`]).
    pub async fn ping(&self) -> Result<Ping, ClientError> {
        let request = Request::new(Method::GET, self.transport.url("/v2/")?);
        match self.transport.send(&Operation::Ping, &request).await {
            Ok(Reply::Success(_)) => Ok(Ping { checked: true }),
            Ok(Reply::Failure(failure)) => Err(ClientError::from_failure("ping /v2/", &failure)),
            Err(AuthError::TokenDenied { .. }) => Ok(Ping { checked: false }),
            Err(e) => Err(e.into()),
        }
    }

    /// Every repository of `/v2/_catalog`, asking `page_size` per page and
    /// following `Link`. [`ClientError::CatalogUnsupported`] where the
    /// registry offers no catalog to this caller.
    pub async fn catalog(&self, page_size: Option<u32>) -> Result<Vec<String>, ClientError> {
        self.catalog_listing(Listing {
            page_size,
            max: None,
        })
        .await
    }

    /// The repositories of `/v2/_catalog`, as `listing` says: pages of
    /// `page_size`, and no more than `max` names (pagination stops there).
    pub async fn catalog_listing(&self, listing: Listing) -> Result<Vec<String>, ClientError> {
        let url = self
            .transport
            .url(&with_n("/v2/_catalog", listing.first_page()))?;
        let unsupported = |message: String| ClientError::CatalogUnsupported {
            registry: self.registry().to_string(),
            message,
        };
        let result = self
            .paginate(
                &Operation::Catalog,
                url,
                "catalog",
                "repositories",
                listing.max,
            )
            .await;
        match result {
            Err(ClientError::NotFound { message, .. })
            | Err(ClientError::Unauthorized { message, .. }) => Err(unsupported(message)),
            Err(ClientError::Auth(e @ AuthError::TokenDenied { .. })) => {
                Err(unsupported(e.to_string()))
            }
            other => other,
        }
    }

    /// Every tag of `repo`, asking `page_size` per page and following `Link`.
    pub async fn tags(
        &self,
        repo: &RepositoryName,
        page_size: Option<u32>,
    ) -> Result<Vec<String>, ClientError> {
        self.tags_listing(
            repo,
            Listing {
                page_size,
                max: None,
            },
        )
        .await
    }

    /// The tags of `repo`, as `listing` says: pages of `page_size`, and no
    /// more than `max` tags (pagination stops there).
    pub async fn tags_listing(
        &self,
        repo: &RepositoryName,
        listing: Listing,
    ) -> Result<Vec<String>, ClientError> {
        let url = self.transport.url(&with_n(
            &format!("/v2/{repo}/tags/list"),
            listing.first_page(),
        ))?;
        let what = format!("tags of {repo}");
        self.paginate(
            &Operation::Pull(repo.clone()),
            url,
            &what,
            "tags",
            listing.max,
        )
        .await
    }

    /// `HEAD` a manifest: its digest, media type and size.
    pub async fn head_manifest(
        &self,
        repo: &RepositoryName,
        reference: &TagOrDigest,
    ) -> Result<ManifestHead, ClientError> {
        let what = format!("manifest {repo}:{reference}");
        let request = self.manifest_request(Method::HEAD, repo, reference, &MANIFEST_ACCEPT)?;
        let response = self
            .success(&Operation::Pull(repo.clone()), &request, &what)
            .await?;
        let headers = response.headers();
        let digest = match (header_digest(headers, &what)?, reference.digest()) {
            (Some(d), _) => d,
            (None, Some(d)) => d.clone(),
            (None, None) => {
                // No digest header: only the bytes can say.
                let manifest = self.get_manifest(repo, reference, &MANIFEST_ACCEPT).await?;
                return Ok(ManifestHead {
                    size: manifest.bytes.len() as u64,
                    digest: manifest.digest,
                    media_type: manifest.media_type,
                });
            }
        };
        if let Some(asked) = reference.digest()
            && *asked != digest
        {
            return Err(ClientError::DigestMismatch {
                what,
                expected: asked.clone(),
                actual: digest,
            });
        }
        let size = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ClientError::BadResponse {
                what: what.clone(),
                reason: "no Content-Length".to_owned(),
            })?;
        Ok(ManifestHead {
            digest,
            media_type: content_type(headers),
            size,
        })
    }

    /// `GET` a manifest, asking for `accept` (empty: [`MANIFEST_ACCEPT`]).
    /// Fetched by digest, the bytes must have that digest; by tag, they must
    /// match `Docker-Content-Digest` when the registry sends it.
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &TagOrDigest,
        accept: &[&str],
    ) -> Result<Manifest, ClientError> {
        let what = format!("manifest {repo}:{reference}");
        let accept = if accept.is_empty() {
            &MANIFEST_ACCEPT[..]
        } else {
            accept
        };
        let request = self.manifest_request(Method::GET, repo, reference, accept)?;
        let response = self
            .success(&Operation::Pull(repo.clone()), &request, &what)
            .await?;
        let media_type = content_type(response.headers());
        let announced = header_digest(response.headers(), &what)?;
        let bytes = read_body(response, MAX_MANIFEST, &what).await?;
        let digest = digest_of(&what, &bytes, reference.digest().or(announced.as_ref()))?;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `GET` a blob as a stream, verified against `digest` as it arrives.
    /// Redirects (object storage, CDNs) are followed without `Authorization`.
    pub async fn get_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<BlobStream, ClientError> {
        self.get_blob_from(repo, digest, 0).await
    }

    /// `GET` a blob's bytes from byte `offset` on (`Range: bytes=<offset>-`;
    /// a registry that ignores the range has the bytes before `offset`
    /// skipped). A download cut off midway is continued from where it
    /// stopped with another ranged `GET`. From `offset` 0 the bytes are
    /// checked against `digest` as they stream.
    pub async fn get_blob_from(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobStream, ClientError> {
        let what = format!("blob {repo}@{digest}");
        let reopen: blob::Reopen = {
            let client = self.clone();
            let repo = repo.clone();
            let digest = digest.clone();
            std::sync::Arc::new(move |from: u64| {
                let client = client.clone();
                let repo = repo.clone();
                let digest = digest.clone();
                Box::pin(async move { client.blob_response(&repo, &digest, from).await })
            })
        };
        let response = self.blob_response(repo, digest, offset).await?;
        BlobStream::new(response, digest.clone(), what, offset, reopen)
    }

    /// The answer to a blob `GET` from `offset`.
    async fn blob_response(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        offset: u64,
    ) -> Result<reqwest::Response, ClientError> {
        let what = format!("blob {repo}@{digest}");
        let url = self.transport.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let mut request = Request::new(Method::GET, url);
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-")).map_err(|_| {
                ClientError::BadResponse {
                    what: what.clone(),
                    reason: "a Range header cannot be written".to_owned(),
                }
            })?;
            request = request.header(reqwest::header::RANGE, range);
        }
        self.success(&Operation::Pull(repo.clone()), &request, &what)
            .await
    }

    /// `DELETE` a manifest. [`ClientError::DeleteUnsupported`] where the
    /// registry does not delete through the API (GHCR answers 405).
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &TagOrDigest,
    ) -> Result<(), ClientError> {
        self.delete(
            repo,
            &format!("/v2/{repo}/manifests/{reference}"),
            format!("delete manifest {repo}:{reference}"),
        )
        .await
    }

    /// `DELETE path` in `repo`; a 405 becomes
    /// [`ClientError::DeleteUnsupported`], naming where this registry
    /// deletes instead.
    async fn delete(
        &self,
        repo: &RepositoryName,
        path: &str,
        what: String,
    ) -> Result<(), ClientError> {
        let request = Request::new(Method::DELETE, self.transport.url(path)?);
        match self
            .transport
            .send(&Operation::Delete(repo.clone()), &request)
            .await?
        {
            Reply::Success(_) => Ok(()),
            Reply::Failure(f) if f.status == StatusCode::METHOD_NOT_ALLOWED => {
                Err(ClientError::DeleteUnsupported {
                    registry: self.registry().to_string(),
                    registry_hint: delete_hint(self.registry(), &f.message()),
                })
            }
            Reply::Failure(f) => Err(ClientError::from_failure(what, &f)),
        }
    }

    fn manifest_request(
        &self,
        method: Method,
        repo: &RepositoryName,
        reference: &TagOrDigest,
        accept: &[&str],
    ) -> Result<Request, ClientError> {
        let url = self
            .transport
            .url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let accept =
            HeaderValue::from_str(&accept.join(", ")).map_err(|_| ClientError::BadResponse {
                what: format!("manifest {repo}:{reference}"),
                reason: "an Accept media type holds characters a header cannot".to_owned(),
            })?;
        Ok(Request::new(method, url).header(ACCEPT, accept))
    }

    /// Sends and maps a failure to its error.
    async fn success(
        &self,
        operation: &Operation,
        request: &Request,
        what: &str,
    ) -> Result<reqwest::Response, ClientError> {
        match self.transport.send(operation, request).await? {
            Reply::Success(response) => Ok(response),
            Reply::Failure(failure) => Err(ClientError::from_failure(what, &failure)),
        }
    }

    /// Collects the string array `field` across pages linked by
    /// `rel="next"`, stopping once `max` items are in hand.
    async fn paginate(
        &self,
        operation: &Operation,
        first: Url,
        what: &str,
        field: &str,
        max: Option<usize>,
    ) -> Result<Vec<String>, ClientError> {
        let mut out = Vec::new();
        let mut url = first;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            seen.insert(url.to_string());
            let request = Request::new(Method::GET, url.clone());
            let response = self.success(operation, &request, what).await?;
            let links: Vec<String> = response
                .headers()
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            let body = read_body(response, MAX_PAGE, what).await?;
            let json: Value =
                serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
                    what: what.to_owned(),
                    reason: format!("not the JSON list expected: {e}"),
                })?;
            match json.get(field) {
                Some(Value::Array(items)) => {
                    out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
                    if let Some(max) = max
                        && out.len() >= max
                    {
                        out.truncate(max);
                        return Ok(out);
                    }
                }
                Some(Value::Null) | None => {}
                Some(_) => {
                    return Err(ClientError::BadResponse {
                        what: what.to_owned(),
                        reason: format!("`{field}` is not an array"),
                    });
                }
            }
            let next = next_link(links.iter().map(String::as_str)).map_err(|e| {
                ClientError::BadResponse {
                    what: what.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            let Some(target) = next else {
                return Ok(out);
            };
            url = url.join(&target).map_err(|e| ClientError::BadResponse {
                what: what.to_owned(),
                reason: format!("bad Link target `{target}`: {e}"),
            })?;
            if seen.contains(url.as_str()) {
                return Err(ClientError::BadResponse {
                    what: what.to_owned(),
                    reason: format!("the Link header loops back to {url}"),
                });
            }
        }
        Err(ClientError::BadResponse {
            what: what.to_owned(),
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }
}

/// `path?n=<limit>` when a limit is given.
fn with_n(path: &str, limit: Option<u32>) -> String {
    match limit {
        Some(n) => format!("{path}?n={n}"),
        None => path.to_owned(),
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The digest of `bytes`: in `expected`'s algorithm and required to equal it
/// when one is given (asked for, or announced), else SHA-256.
fn digest_of(what: &str, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest, ClientError> {
    let Some(expected) = expected else {
        return Ok(Digest::sha256_of(bytes));
    };
    let actual = Digest::from_bytes(expected.algorithm(), bytes);
    if actual == *expected {
        Ok(actual)
    } else {
        Err(ClientError::DigestMismatch {
            what: what.to_owned(),
            expected: expected.clone(),
            actual,
        })
    }
}

fn header_digest(headers: &HeaderMap, what: &str) -> Result<Option<Digest>, ClientError> {
    let Some(value) = headers.get(CONTENT_DIGEST) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    Digest::parse(text)
        .map(Some)
        .map_err(|e| ClientError::BadResponse {
            what: what.to_owned(),
            reason: format!("bad Docker-Content-Digest: {e}"),
        })
}

async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Bytes, ClientError> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| ClientError::Body {
        what: what.to_owned(),
        source: source.without_url(),
    })? {
        if out.len() + chunk.len() > limit {
            return Err(ClientError::BadResponse {
                what: what.to_owned(),
                reason: format!("larger than {limit} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// Where to delete instead, for registries known to refuse API deletes.
fn delete_hint(registry: &Registry, message: &str) -> String {
    let host = registry.host();
    if host == "ghcr.io" || host.ends_with(".ghcr.io") {
        "GHCR deletes package versions through the GitHub REST API or the web interface".to_owned()
    } else if registry.is_docker_hub() {
        "Docker Hub deletes tags through hub.docker.com (its web interface or Hub API)".to_owned()
    } else {
        format!(
            "the registry answered 405 ({message}): deletion is disabled by its operator or not \
             offered; ask the operator, or use the registry's own interface"
        )
    }
}
