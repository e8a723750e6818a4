//! The manifests that refer to a manifest through their `subject`: the
//! referrers API (`GET /v2/<name>/referrers/<digest>`, OCI distribution 1.1),
//! else the tag schema a registry without it keeps (`sha256-<hex>`, an index
//! of the referrers), as the spec tells clients to fall back.

use berth_core::{Digest, RepositoryName, Tag, TagOrDigest};
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, StatusCode};

use super::{ClientError, MAX_MANIFEST, RegistryClient, read_body};
use crate::auth::{Operation, Reply, Request};
use crate::document::{Descriptor, Document};

impl RegistryClient {
    /// The descriptors of the manifests whose `subject` is `digest`.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, ClientError> {
        let what = format!("referrers of {repo}@{digest}");
        let url = self
            .transport
            .url(&format!("/v2/{repo}/referrers/{digest}"))?;
        let request = Request::new(Method::GET, url).header(
            ACCEPT,
            HeaderValue::from_static(berth_core::media_type::OCI_IMAGE_INDEX),
        );
        match self
            .transport
            .send(&Operation::Pull(repo.clone()), &request)
            .await?
        {
            Reply::Success(response) => {
                let bytes = read_body(response, MAX_MANIFEST, &what).await?;
                let index =
                    Document::parse(&bytes, &what).map_err(|e| ClientError::BadResponse {
                        what: what.clone(),
                        reason: e.reason,
                    })?;
                Ok(index.manifests)
            }
            // No referrers API: the fallback tag, if the repository has it.
            Reply::Failure(f)
                if matches!(
                    f.status,
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ) =>
            {
                self.referrers_by_tag(repo, digest).await
            }
            Reply::Failure(f) => Err(ClientError::from_failure(what, &f)),
        }
    }

    async fn referrers_by_tag(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, ClientError> {
        let tag = format!("{}-{}", digest.algorithm().as_str(), digest.hex());
        let Ok(tag) = Tag::parse(&tag) else {
            return Ok(Vec::new());
        };
        let what = format!("referrers tag {repo}:{tag}");
        match self
            .get_manifest(
                repo,
                &TagOrDigest::Tag(tag),
                &[berth_core::media_type::OCI_IMAGE_INDEX],
            )
            .await
        {
            Ok(manifest) => {
                let index = Document::parse(&manifest.bytes, &what).map_err(|e| {
                    ClientError::BadResponse {
                        what: what.clone(),
                        reason: e.reason,
                    }
                })?;
                Ok(index.manifests)
            }
            Err(ClientError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
