//! The distribution API's request paths as a typed [`Endpoint`], and the access
//! each request needs.
//!
//! Repository names contain `/`, so a router cannot match `/v2/<name>/...` by
//! segments; this module reads the path from the right instead, by the shape of
//! its last segments (OCI distribution-spec v1.1, "Endpoints" table):
//!
//! ```text
//! /v2  |  /v2/                                  end-1   Base
//! /v2/_catalog                                          Catalog
//! /v2/<name>/tags/list                          end-8   Tags
//! /v2/<name>/manifests/<tag or digest>          end-3/7/9 Manifest
//! /v2/<name>/manifests/<neither>                          InvalidManifestReference
//! /v2/<name>/blobs/<digest>                     end-2/10 Blob
//! /v2/<name>/blobs/uploads/   (slash optional)  end-4/11 Uploads (+ ?mount=&from=)
//! /v2/<name>/blobs/uploads/<id>                 end-5/6/13/14 Upload
//! /v2/<name>/referrers/<digest>                 end-12  Referrers
//! ```
//!
//! The path is taken as sent (still percent-encoded): no valid name, tag or
//! digest contains `%`, so `%2e%2e` is refused as an invalid name rather than
//! decoded into a traversal.
//!
//! A `<reference>` that is neither a valid tag nor a valid digest names no
//! manifest: it parses to [`Endpoint::InvalidManifestReference`], so that a
//! read or a delete can answer "manifest unknown" (as clients probing for a tag
//! and the conformance suite expect) while a push is refused with the parse
//! error (`TAG_INVALID` or `DIGEST_INVALID`). The repository name is still
//! parsed, so such a request needs the same scope as any other on it.
//!
//! [`Endpoint::required_access`] is the one place that maps a request to the
//! scope it needs (PROTOCOL.md section 2): `GET`/`HEAD` need `pull`;
//! `POST`/`PATCH`/`PUT` need `pull,push`; `DELETE` needs `delete`; a mount also
//! needs `pull` on its source; the catalog needs `registry:catalog:*`.

use std::fmt;

use crate::digest::Digest;
use crate::error::{ParseError, ParseErrorKind};
use crate::name::RepositoryName;
use crate::reference::TagOrDigest;
use crate::scope::{Action, Scope, Scopes};

/// The longest upload session id accepted in a path.
pub const MAX_UPLOAD_ID_LEN: usize = 128;

/// An upload session id, as it appears in `/v2/<name>/blobs/uploads/<id>`.
///
/// The registry mints these; a client only echoes them back. They are kept to
/// `[A-Za-z0-9._-]{1,128}` so that an id can never smuggle a path separator
/// into a file name or a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// Parses an upload id from its path segment.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError::new(
                ParseErrorKind::Endpoint,
                s,
                0,
                "an upload id cannot be empty",
            ));
        }
        if s.len() > MAX_UPLOAD_ID_LEN {
            return Err(ParseError::new(
                ParseErrorKind::Endpoint,
                s,
                MAX_UPLOAD_ID_LEN,
                "upload ids are at most 128 characters",
            ));
        }
        if let Some(pos) = s
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            return Err(ParseError::new(
                ParseErrorKind::Endpoint,
                s,
                pos,
                "upload ids contain only letters, digits, `.`, `_` and `-`",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as it appears in the path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cross-repository mount request: `?mount=<digest>&from=<name>` on an upload start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The blob to mount.
    pub digest: Digest,
    /// The repository to mount it from; `None` when the client sent only `mount`
    /// (distribution-spec v1.1 lets the registry choose, or start a plain upload).
    pub from: Option<RepositoryName>,
}

/// One endpoint of the distribution API, parsed from a request path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/` (and `/v2`): API version check.
    Base,
    /// `/v2/_catalog`: the repository list.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags {
        /// The repository.
        name: RepositoryName,
    },
    /// `/v2/<name>/manifests/<reference>`.
    Manifest {
        /// The repository.
        name: RepositoryName,
        /// The tag or digest.
        reference: TagOrDigest,
    },
    /// `/v2/<name>/manifests/<reference>` where `<reference>` is neither a
    /// valid tag nor a valid digest: no manifest can be stored under it.
    InvalidManifestReference {
        /// The repository.
        name: RepositoryName,
        /// Why the reference is neither (what a push is told).
        error: InvalidReference,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// The repository.
        name: RepositoryName,
        /// The blob's digest.
        digest: Digest,
    },
    /// `/v2/<name>/blobs/uploads/`: start an upload (possibly monolithic, possibly a mount).
    Uploads {
        /// The repository.
        name: RepositoryName,
        /// The mount requested in the query, if any.
        mount: Option<Mount>,
    },
    /// `/v2/<name>/blobs/uploads/<id>`: an upload session.
    Upload {
        /// The repository.
        name: RepositoryName,
        /// The session id.
        id: UploadId,
    },
    /// `/v2/<name>/referrers/<digest>`.
    Referrers {
        /// The repository.
        name: RepositoryName,
        /// The subject's digest.
        digest: Digest,
    },
}

/// Why a manifest reference is neither a tag nor a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReference {
    /// It has no `:`, so it was read as a tag, and is not a valid one.
    #[error(transparent)]
    Tag(ParseError),
    /// It has a `:`, so it was read as a digest, and is not a valid one.
    #[error(transparent)]
    Digest(ParseError),
}

impl InvalidReference {
    /// The reference as it appeared in the path (truncated when very long).
    pub fn input(&self) -> &str {
        match self {
            Self::Tag(e) | Self::Digest(e) => e.input(),
        }
    }
}

impl From<InvalidReference> for EndpointError {
    fn from(e: InvalidReference) -> Self {
        match e {
            InvalidReference::Tag(e) => Self::Tag(e),
            InvalidReference::Digest(e) => Self::Digest(e),
        }
    }
}

/// Why a path is not an endpoint; each variant maps to its own OCI error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The path has no endpoint's shape (404 with no OCI code of its own).
    #[error("no registry API endpoint at {0:?}")]
    NotFound(String),
    /// The repository name is invalid (400 `NAME_INVALID`).
    #[error(transparent)]
    Name(ParseError),
    /// The tag is invalid (400 `TAG_INVALID`).
    #[error(transparent)]
    Tag(ParseError),
    /// The digest is invalid (400 `DIGEST_INVALID`).
    #[error(transparent)]
    Digest(ParseError),
    /// The upload id is malformed (404 `BLOB_UPLOAD_UNKNOWN`: no such session can exist).
    #[error(transparent)]
    UploadId(ParseError),
}

impl Endpoint {
    /// Parses a request path (starting with `/v2`) and its raw query string.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Self, EndpointError> {
        let not_found = || EndpointError::NotFound(truncate(path));
        let rest = path.strip_prefix("/v2").ok_or_else(not_found)?;
        if rest.is_empty() || rest == "/" {
            return Ok(Self::Base);
        }
        let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
        if rest == "_catalog" {
            return Ok(Self::Catalog);
        }

        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        let seg = |from_end: usize| -> Option<&str> {
            n.checked_sub(from_end)
                .and_then(|i| segments.get(i).copied())
        };
        // The name is everything before the endpoint's own `k` trailing segments.
        let name_of = |k: usize| -> Result<RepositoryName, EndpointError> {
            let name_segments = segments.get(..n.saturating_sub(k)).unwrap_or_default();
            if name_segments.is_empty() {
                return Err(not_found());
            }
            RepositoryName::parse(&name_segments.join("/")).map_err(EndpointError::Name)
        };
        let digest = |s: &str| Digest::parse(s).map_err(EndpointError::Digest);

        match (seg(3), seg(2), seg(1)) {
            (Some("blobs"), Some("uploads"), Some("")) => Ok(Self::Uploads {
                name: name_of(3)?,
                mount: parse_mount(query)?,
            }),
            (_, Some("tags"), Some("list")) => Ok(Self::Tags { name: name_of(2)? }),
            (_, Some("manifests"), Some(reference)) => {
                let name = name_of(2)?;
                let parsed = if reference.contains(':') {
                    Digest::parse(reference)
                        .map(TagOrDigest::Digest)
                        .map_err(InvalidReference::Digest)
                } else {
                    crate::tag::Tag::parse(reference)
                        .map(TagOrDigest::Tag)
                        .map_err(InvalidReference::Tag)
                };
                Ok(match parsed {
                    Ok(reference) => Self::Manifest { name, reference },
                    Err(error) => Self::InvalidManifestReference { name, error },
                })
            }
            (_, Some("referrers"), Some(d)) => Ok(Self::Referrers {
                name: name_of(2)?,
                digest: digest(d)?,
            }),
            (_, Some("blobs"), Some("uploads")) => Ok(Self::Uploads {
                name: name_of(2)?,
                mount: parse_mount(query)?,
            }),
            (_, Some("blobs"), Some(d)) => Ok(Self::Blob {
                name: name_of(2)?,
                digest: digest(d)?,
            }),
            (Some("blobs"), Some("uploads"), Some(id)) => Ok(Self::Upload {
                name: name_of(3)?,
                id: UploadId::parse(id).map_err(EndpointError::UploadId)?,
            }),
            _ => Err(not_found()),
        }
    }

    /// The repository this endpoint is about, if any.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Self::Base | Self::Catalog => None,
            Self::Tags { name }
            | Self::Manifest { name, .. }
            | Self::InvalidManifestReference { name, .. }
            | Self::Blob { name, .. }
            | Self::Uploads { name, .. }
            | Self::Upload { name, .. }
            | Self::Referrers { name, .. } => Some(name),
        }
    }

    /// The scopes a request with this HTTP `method` needs on this endpoint.
    ///
    /// Empty for `/v2/`, which any valid token (anonymous included) may call.
    pub fn required_access(&self, method: &str) -> Scopes {
        let mut scopes = Scopes::default();
        match self {
            Self::Base => {}
            Self::Catalog => scopes.insert(Scope::catalog()),
            _ => {
                let actions: &[Action] = match method {
                    "GET" | "HEAD" => &[Action::Pull],
                    "DELETE" => &[Action::Delete],
                    _ => &[Action::Pull, Action::Push],
                };
                if let Some(name) = self.repository() {
                    for action in actions {
                        scopes.insert(Scope::for_repository(name, action.clone()));
                    }
                }
                if let Self::Uploads {
                    mount:
                        Some(Mount {
                            from: Some(from), ..
                        }),
                    ..
                } = self
                {
                    scopes.insert(Scope::for_repository(from, Action::Pull));
                }
            }
        }
        scopes
    }
}

/// Reads `mount` and `from` from an upload start's query string.
fn parse_mount(query: Option<&str>) -> Result<Option<Mount>, EndpointError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut mount = None;
    let mut from = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // Clients may percent-encode the `:` of a digest (`sha256%3A...`).
        let value = || percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        match key {
            "mount" => mount = Some(value()),
            "from" => from = Some(value()),
            _ => {}
        }
    }
    let Some(mount) = mount else {
        return Ok(None);
    };
    let digest = Digest::parse(&mount).map_err(EndpointError::Digest)?;
    let from = match from.as_deref() {
        Some("") | None => None,
        Some(from) => Some(RepositoryName::parse(from).map_err(EndpointError::Name)?),
    };
    Ok(Some(Mount { digest, from }))
}

fn truncate(path: &str) -> String {
    ParseError::new(ParseErrorKind::Endpoint, path, 0, "")
        .input()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    /// Every endpoint of the spec's table, with the access each method needs.
    #[test]
    fn spec_table_parses_to_endpoints_and_scopes() {
        let cases: &[(&str, &str, Option<&str>, Endpoint, &str)] = &[
            ("GET", "/v2/", None, Endpoint::Base, ""),
            ("GET", "/v2", None, Endpoint::Base, ""),
            (
                "GET",
                "/v2/_catalog",
                Some("n=10"),
                Endpoint::Catalog,
                "registry:catalog:*",
            ),
            (
                "GET",
                "/v2/library/alpine/tags/list",
                Some("n=2&last=a"),
                Endpoint::Tags {
                    name: name("library/alpine"),
                },
                "repository:library/alpine:pull",
            ),
            (
                "HEAD",
                "/v2/a/b/c/manifests/latest",
                None,
                Endpoint::Manifest {
                    name: name("a/b/c"),
                    reference: TagOrDigest::Tag(crate::tag::Tag::parse("latest").unwrap()),
                },
                "repository:a/b/c:pull",
            ),
            (
                "PUT",
                &format!("/v2/a/manifests/{D}") as &str,
                None,
                Endpoint::Manifest {
                    name: name("a"),
                    reference: TagOrDigest::Digest(Digest::parse(D).unwrap()),
                },
                "repository:a:pull,push",
            ),
            (
                "DELETE",
                &format!("/v2/a/blobs/{D}") as &str,
                None,
                Endpoint::Blob {
                    name: name("a"),
                    digest: Digest::parse(D).unwrap(),
                },
                "repository:a:delete",
            ),
            (
                "POST",
                "/v2/a/blobs/uploads/",
                None,
                Endpoint::Uploads {
                    name: name("a"),
                    mount: None,
                },
                "repository:a:pull,push",
            ),
            (
                "POST",
                "/v2/a/blobs/uploads",
                Some(&format!("digest={D}") as &str),
                Endpoint::Uploads {
                    name: name("a"),
                    mount: None,
                },
                "repository:a:pull,push",
            ),
            (
                "POST",
                "/v2/team/app/blobs/uploads/",
                Some(&format!("mount={D}&from=other/base") as &str),
                Endpoint::Uploads {
                    name: name("team/app"),
                    mount: Some(Mount {
                        digest: Digest::parse(D).unwrap(),
                        from: Some(name("other/base")),
                    }),
                },
                "repository:other/base:pull repository:team/app:pull,push",
            ),
            (
                "PATCH",
                "/v2/a/blobs/uploads/0f9e-AB_c.d",
                None,
                Endpoint::Upload {
                    name: name("a"),
                    id: UploadId::parse("0f9e-AB_c.d").unwrap(),
                },
                "repository:a:pull,push",
            ),
            (
                "GET",
                &format!("/v2/a/referrers/{D}") as &str,
                Some("artifactType=application%2Fx"),
                Endpoint::Referrers {
                    name: name("a"),
                    digest: Digest::parse(D).unwrap(),
                },
                "repository:a:pull",
            ),
        ];
        for (method, path, query, endpoint, scope) in cases {
            let parsed = Endpoint::parse(path, *query).unwrap();
            assert_eq!(&parsed, endpoint, "{method} {path}");
            assert_eq!(
                parsed.required_access(method).to_string(),
                *scope,
                "{method} {path}"
            );
        }
    }

    /// A repository may be named after a keyword: the shape is read from the right.
    #[test]
    fn keywords_inside_names_do_not_confuse_the_parser() {
        let e = Endpoint::parse("/v2/manifests/blobs/manifests/latest", None).unwrap();
        assert_eq!(e.repository(), Some(&name("manifests/blobs")));
        let e = Endpoint::parse(&format!("/v2/blobs/uploads/blobs/{D}"), None).unwrap();
        assert!(matches!(e, Endpoint::Blob { .. }));
        assert_eq!(e.repository(), Some(&name("blobs/uploads")));
    }

    #[test]
    fn invalid_parts_map_to_their_own_errors() {
        assert!(matches!(
            Endpoint::parse("/v2/a/../b/tags/list", None),
            Err(EndpointError::Name(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/%2e%2e/tags/list", None),
            Err(EndpointError::Name(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/Upper/manifests/latest", None),
            Err(EndpointError::Name(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/sha256:abc", None),
            Err(EndpointError::Digest(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/uploads/has%2Fslash", None),
            Err(EndpointError::UploadId(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/uploads/", Some("mount=nope&from=b")),
            Err(EndpointError::Digest(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/uploads/", Some(&format!("mount={D}&from=B"))),
            Err(EndpointError::Name(_))
        ));
        for path in [
            "/v3/",
            "/v2x",
            "/v2/a",
            "/v2/a/tags",
            "/v2/tags/list",
            "/v2//manifests/x",
        ] {
            assert!(
                matches!(
                    Endpoint::parse(path, None),
                    Err(EndpointError::NotFound(_)) | Err(EndpointError::Name(_))
                ),
                "{path}"
            );
        }
        assert!(matches!(
            Endpoint::parse("/v2/a", None),
            Err(EndpointError::NotFound(_))
        ));
    }

    /// A reference that is neither a tag nor a digest still names its
    /// repository (and so needs the same scope), and keeps the reason a push
    /// is refused.
    #[test]
    fn a_reference_that_is_neither_tag_nor_digest_names_no_manifest() {
        for (reference, is_tag) in [
            (".INVALID_MANIFEST_NAME", true),
            ("-bad", true),
            ("..", true),
            ("sha256:1234", false),
            ("md5:00", false),
        ] {
            let path = format!("/v2/team/app/manifests/{reference}");
            let e = Endpoint::parse(&path, None).unwrap();
            let Endpoint::InvalidManifestReference { name: n, error } = &e else {
                panic!("{path}: {e:?}");
            };
            assert_eq!(n, &name("team/app"));
            assert_eq!(error.input(), reference);
            assert_eq!(matches!(error, InvalidReference::Tag(_)), is_tag, "{path}");
            assert_eq!(
                e.required_access("GET").to_string(),
                "repository:team/app:pull"
            );
            assert_eq!(
                e.required_access("PUT").to_string(),
                "repository:team/app:pull,push"
            );
            assert_eq!(
                e.required_access("DELETE").to_string(),
                "repository:team/app:delete"
            );
        }
        // The name is parsed first: an invalid one is still NAME_INVALID.
        assert!(matches!(
            Endpoint::parse("/v2/Team/manifests/.x", None),
            Err(EndpointError::Name(_))
        ));
    }

    #[test]
    fn mount_without_from_is_kept_for_the_registry_to_decide() {
        let e = Endpoint::parse("/v2/a/blobs/uploads/", Some(&format!("mount={D}"))).unwrap();
        assert_eq!(
            e,
            Endpoint::Uploads {
                name: name("a"),
                mount: Some(Mount {
                    digest: Digest::parse(D).unwrap(),
                    from: None
                })
            }
        );
        assert_eq!(
            e.required_access("POST").to_string(),
            "repository:a:pull,push"
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(path in "/v2[a-z0-9/._:%-]{0,80}", query in proptest::option::of("[a-z=&:0-9]{0,40}")) {
            let _ = Endpoint::parse(&path, query.as_deref());
        }
    }
}
