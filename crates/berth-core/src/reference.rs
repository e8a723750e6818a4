//! Registry hosts, manifest references, and docker-style image references.
//!
//! Three grammars live here:
//!
//! ```text
//! registry     ::= host (":" port)?
//! host         ::= dns-name | ipv4 | "[" ipv6 "]"
//! dns-name     ::= label ("." label)*          label ::= [A-Za-z0-9] ([A-Za-z0-9-]* [A-Za-z0-9])?
//! port         ::= [0-9]+                      (1 to 65535)
//!
//! tag-or-digest ::= tag | digest               (a digest when it contains ":")
//!
//! reference    ::= (registry "/")? name (":" tag)? ("@" digest)?
//! ```
//!
//! [`TagOrDigest`] is the `<reference>` path segment of
//! `/v2/<name>/manifests/<reference>` (OCI distribution-spec v1.1, "Pulling
//! manifests"): a tag can never contain `:`, and a digest always does.
//!
//! [`Reference`] is not part of the OCI specs: it is the image reference users type
//! (`alpine`, `ghcr.io/owner/app:1.0`), as defined by CNCF distribution's
//! `reference` package and docker's normalisation. The first `/`-separated
//! component names a registry only when it contains `.` or `:` or is
//! `localhost`; otherwise the image lives on Docker Hub (`docker.io`), where a
//! one-component name is an official image under `library/`. Without a tag or a
//! digest the tag is `latest`. Host and name together are at most
//! [`MAX_NAME_WITH_HOST`] characters, the distribution-spec's limit.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Digest;
use crate::error::{ParseError, ParseErrorKind};
use crate::name::RepositoryName;
use crate::tag::Tag;

/// The longest `host[:port]/name` a reference may have.
pub const MAX_NAME_WITH_HOST: usize = 255;

/// The longest host name DNS allows.
const MAX_HOST_LEN: usize = 253;
/// The longest label of a DNS name.
const MAX_LABEL_LEN: usize = 63;

/// Docker Hub's canonical name in references.
const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's `/v2/` API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key docker's `config.json` uses for Docker Hub credentials, kept for
/// compatibility with the v1 API.
const DOCKER_HUB_CREDENTIAL_KEY: &str = "https://index.docker.io/v1/";

/// A registry host with an optional port: `ghcr.io`, `localhost:5000`, `[::1]:5000`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registry {
    /// Lower-case DNS name, dotted IPv4, or bracketed IPv6 (`[::1]`), canonical.
    host: String,
    port: Option<u16>,
}

impl Registry {
    /// Parses `host[:port]`. DNS names are stored in lower case and IP addresses in
    /// their canonical form; IPv6 addresses must be bracketed.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let fail = |position, reason| registry_error(input, position, reason);
        if input.is_empty() {
            return Err(fail(0, "a registry host must not be empty"));
        }
        let (host, rest, rest_at) = if let Some(bracketed) = input.strip_prefix('[') {
            let Some((address, rest)) = bracketed.split_once(']') else {
                return Err(fail(input.len(), "an IPv6 address must end with `]`"));
            };
            let Ok(address) = address.parse::<Ipv6Addr>() else {
                return Err(fail(1, "not a valid IPv6 address"));
            };
            (format!("[{address}]"), rest, input.len() - rest.len())
        } else {
            let (host, rest) = match input.split_once(':') {
                Some((host, port)) => (host, port),
                None => (input, ""),
            };
            if rest.contains(':') {
                return Err(fail(
                    0,
                    "IPv6 addresses must be in brackets, such as `[::1]:5000`",
                ));
            }
            if host.is_empty() {
                return Err(fail(0, "missing host before `:`"));
            }
            let rest_at = host.len();
            (
                parse_host(input, host)?,
                input.get(rest_at..).unwrap_or(""),
                rest_at,
            )
        };
        let port = match rest.strip_prefix(':') {
            Some(port) => Some(parse_port(input, port, rest_at + 1)?),
            None if rest.is_empty() => None,
            None => return Err(fail(rest_at, "expected `:port` after the IPv6 address")),
        };
        Ok(Self { host, port })
    }

    /// Docker Hub, `docker.io`.
    pub fn docker_hub() -> Self {
        Self {
            host: DOCKER_HUB.to_owned(),
            port: None,
        }
    }

    /// The host: a lower-case DNS name, an IPv4 address, or a bracketed IPv6 address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether this is Docker Hub under any of its names (`docker.io`,
    /// `index.docker.io`, `registry-1.docker.io`).
    pub fn is_docker_hub(&self) -> bool {
        self.port.is_none()
            && matches!(
                self.host.as_str(),
                DOCKER_HUB | "index.docker.io" | DOCKER_HUB_API
            )
    }

    /// The `host[:port]` to send `/v2/` requests to: Docker Hub's API is not
    /// served by `docker.io` itself but by `registry-1.docker.io`.
    pub fn api_host(&self) -> String {
        if self.is_docker_hub() {
            DOCKER_HUB_API.to_owned()
        } else {
            self.to_string()
        }
    }

    /// The key of this registry in docker's `config.json` `auths` map (and for
    /// credential helpers): `https://index.docker.io/v1/` for Docker Hub, for
    /// historical reasons, else `host[:port]`.
    pub fn credential_key(&self) -> String {
        if self.is_docker_hub() {
            DOCKER_HUB_CREDENTIAL_KEY.to_owned()
        } else {
            self.to_string()
        }
    }

    /// Whether the host is this machine (`localhost`, `127.0.0.0/8`, `::1`), where
    /// clients commonly allow plain HTTP.
    pub fn is_loopback(&self) -> bool {
        if self.host == "localhost" {
            return true;
        }
        if let Ok(v4) = self.host.parse::<Ipv4Addr>() {
            return v4.is_loopback();
        }
        let inner = self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'));
        match inner.map(str::parse::<Ipv6Addr>) {
            Some(Ok(v6)) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            _ => false,
        }
    }
}

fn registry_error(input: &str, position: usize, reason: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::Registry, input, position, reason)
}

/// Checks an unbracketed host (a DNS name or IPv4 address) and returns it canonical.
fn parse_host(input: &str, host: &str) -> Result<String, ParseError> {
    if host.len() > MAX_HOST_LEN {
        let reason = format!("host names are at most {MAX_HOST_LEN} characters");
        return Err(registry_error(input, MAX_HOST_LEN, reason));
    }
    let mut start = 0;
    let mut all_numeric = true;
    for label in host.split('.') {
        if label.is_empty() {
            let reason = "empty label in host name: `.` must separate letters or digits";
            return Err(registry_error(input, start, reason));
        }
        if label.len() > MAX_LABEL_LEN {
            let reason = format!(
                "each `.`-separated part of a host name is at most {MAX_LABEL_LEN} characters"
            );
            return Err(registry_error(input, start + MAX_LABEL_LEN, reason));
        }
        for (i, b) in label.bytes().enumerate() {
            let reason = match b {
                b'0'..=b'9' => continue,
                b'-' if i == 0 || i + 1 == label.len() => {
                    "a host name part must not start or end with `-`".to_owned()
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'-' => {
                    all_numeric = false;
                    continue;
                }
                _ => {
                    let c = host.get(start + i..).and_then(|s| s.chars().next());
                    format!(
                        "character `{}` is not allowed in a host name; use letters, digits, \
                         `-` and `.`",
                        c.unwrap_or('?').escape_debug()
                    )
                }
            };
            return Err(registry_error(input, start + i, reason));
        }
        start += label.len() + 1;
    }
    // A name of digits only is meant as an IPv4 address; no DNS name is all-numeric.
    if !all_numeric {
        return Ok(host.to_ascii_lowercase());
    }
    match host.parse::<Ipv4Addr>() {
        Ok(address) => Ok(address.to_string()),
        Err(_) => Err(registry_error(
            input,
            0,
            "not a valid IPv4 address: expected four numbers from 0 to 255",
        )),
    }
}

/// Parses the port that starts at byte `at` of `input`.
fn parse_port(input: &str, port: &str, at: usize) -> Result<u16, ParseError> {
    if port.is_empty() {
        return Err(registry_error(
            input,
            at,
            "expected a port number after `:`",
        ));
    }
    if let Some(i) = port.bytes().position(|b| !b.is_ascii_digit()) {
        return Err(registry_error(
            input,
            at + i,
            "a port is a number from 1 to 65535",
        ));
    }
    match port.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => {
            let shown = if port.len() <= 10 { port } else { "this" };
            let reason = format!("port {shown} is out of range; ports are 1 to 65535");
            Err(registry_error(input, at, reason))
        }
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// What a manifest request names: a tag or a digest (the `<reference>` of
/// `/v2/<name>/manifests/<reference>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TagOrDigest {
    /// A mutable tag, such as `latest`.
    Tag(Tag),
    /// An immutable content digest.
    Digest(Digest),
}

impl TagOrDigest {
    /// Parses a digest if `input` contains `:` (tags cannot), else a tag. Errors
    /// have kind [`ParseErrorKind::Digest`] or [`ParseErrorKind::Tag`] accordingly,
    /// so a registry can answer `DIGEST_INVALID` or `TAG_INVALID`.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.contains(':') {
            Digest::parse(input).map(Self::Digest)
        } else {
            Tag::parse(input).map(Self::Tag)
        }
    }

    /// The tag, if this is one.
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            Self::Tag(tag) => Some(tag),
            Self::Digest(_) => None,
        }
    }

    /// The digest, if this is one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Self::Tag(_) => None,
            Self::Digest(digest) => Some(digest),
        }
    }
}

impl fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(tag) => tag.fmt(f),
            Self::Digest(digest) => digest.fmt(f),
        }
    }
}

/// A docker-style image reference, normalised: always a registry, a full
/// repository name, and a tag or a digest (or both).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: Registry,
    repository: RepositoryName,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `[host[:port]/]name[:tag][@digest]` and normalises it as docker does:
    /// `alpine` is `docker.io/library/alpine:latest`. Docker Hub's other names
    /// (`index.docker.io`, `registry-1.docker.io`) become `docker.io`.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let fail = |position, reason: String| {
            ParseError::new(ParseErrorKind::Reference, input, position, reason)
        };
        // Errors from the part parsers keep their reason, re-anchored in the whole input.
        let within = |offset: usize| {
            move |e: ParseError| {
                ParseError::new(
                    ParseErrorKind::Reference,
                    input,
                    offset + e.position(),
                    e.reason(),
                )
            }
        };
        if input.is_empty() {
            return Err(fail(
                0,
                "a reference must not be empty; expected `[host[:port]/]name[:tag][@digest]`"
                    .to_owned(),
            ));
        }
        let (named, digest) = match input.split_once('@') {
            Some((named, digest)) => (named, Some((digest, named.len() + 1))),
            None => (input, None),
        };
        // The tag follows the last `:` unless that `:` belongs to a `host:port`.
        let (path, tag) = match named.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, Some((tag, path.len() + 1))),
            _ => (named, None),
        };
        let (domain, name) = match path.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first), rest)
            }
            _ => (None, path),
        };
        let name_at = path.len() - name.len();

        let registry = domain
            .map(|domain| Registry::parse(domain).map_err(within(0)))
            .transpose()?
            .filter(|registry| !registry.is_docker_hub())
            .unwrap_or_else(Registry::docker_hub);
        let mut repository = RepositoryName::parse(name).map_err(within(name_at))?;
        let library = registry.is_docker_hub() && repository.depth() == 1;
        let host_len = registry.to_string().len();
        let total = host_len + 1 + if library { 8 } else { 0 } + repository.as_str().len();
        if total > MAX_NAME_WITH_HOST {
            return Err(fail(
                MAX_NAME_WITH_HOST.min(path.len()),
                format!(
                    "the registry host and repository name together are at most \
                     {MAX_NAME_WITH_HOST} characters; here they are {total}"
                ),
            ));
        }
        if library {
            repository =
                RepositoryName::parse(&format!("library/{repository}")).map_err(within(name_at))?;
        }
        let tag = tag
            .map(|(tag, at)| Tag::parse(tag).map_err(within(at)))
            .transpose()?;
        let digest = digest
            .map(|(digest, at)| Digest::parse(digest).map_err(within(at)))
            .transpose()?;
        let tag = tag.or_else(|| digest.is_none().then(Tag::latest));
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry that serves the image.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The repository name, normalised (`library/alpine`, not `alpine`, on Docker Hub).
    pub fn repository(&self) -> &RepositoryName {
        &self.repository
    }

    /// The tag, if any (`latest` when the input had neither tag nor digest).
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same reference with `tag` as its tag; a digest is kept, as docker does.
    pub fn with_tag(self, tag: Tag) -> Self {
        Self {
            tag: Some(tag),
            ..self
        }
    }

    /// The same reference pinned to `digest`; a tag is kept, as docker does.
    pub fn with_digest(self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self
        }
    }

    /// What to request from `/v2/<name>/manifests/<reference>`: the digest when
    /// there is one (it pins the content; the tag is then only informative),
    /// else the tag.
    pub fn tag_or_digest(&self) -> TagOrDigest {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => TagOrDigest::Digest(digest.clone()),
            (None, Some(tag)) => TagOrDigest::Tag(tag.clone()),
            // Unreachable through the constructors; `latest` is what it would mean.
            (None, None) => TagOrDigest::Tag(Tag::latest()),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `FromStr` and serde through [`parse`](Reference::parse) and `Display`.
macro_rules! string_form {
    ($($ty:ty),*) => {$(
        impl FromStr for $ty {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

string_form!(Registry, TagOrDigest, Reference);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn reference(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn reference_err(s: &str) -> ParseError {
        let e = Reference::parse(s).unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::Reference, "{s}");
        e
    }

    #[test]
    fn registries() {
        let r = Registry::parse("GHCR.io").unwrap();
        assert_eq!((r.host(), r.port()), ("ghcr.io", None));
        assert_eq!(r.to_string(), "ghcr.io");
        let r = Registry::parse("localhost:5000").unwrap();
        assert_eq!((r.host(), r.port()), ("localhost", Some(5000)));
        assert!(r.is_loopback());
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(r.credential_key(), "localhost:5000");
        let r = Registry::parse("[0:0::1]:5000").unwrap();
        assert_eq!((r.host(), r.to_string().as_str()), ("[::1]", "[::1]:5000"));
        assert!(r.is_loopback());
        assert!(Registry::parse("127.1.2.3").unwrap().is_loopback());
        assert!(Registry::parse("[::ffff:127.0.0.1]").unwrap().is_loopback());
        assert!(!Registry::parse("10.0.0.1:5000").unwrap().is_loopback());
        assert!(!Registry::parse("ghcr.io").unwrap().is_loopback());
        assert_eq!(Registry::parse("my-host").unwrap().host(), "my-host");
        for host in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            let r = Registry::parse(host).unwrap();
            assert!(r.is_docker_hub());
            assert_eq!(r.api_host(), "registry-1.docker.io");
            assert_eq!(r.credential_key(), "https://index.docker.io/v1/");
        }
        assert!(!Registry::parse("docker.io:443").unwrap().is_docker_hub());
        assert_eq!(Registry::docker_hub().to_string(), "docker.io");
    }

    #[test]
    fn invalid_registries() {
        let cases = [
            ("", 0, "must not be empty"),
            ("host:99999", 5, "port 99999 is out of range"),
            ("host:0", 5, "out of range"),
            ("host:", 5, "expected a port number"),
            ("host:50a", 7, "a port is a number"),
            (":5000", 0, "missing host"),
            ("::1", 0, "in brackets"),
            ("[::1", 4, "must end with `]`"),
            ("[::g]", 1, "not a valid IPv6"),
            ("[::1]x", 5, "expected `:port`"),
            ("a..b", 2, "empty label"),
            ("-a.io", 0, "start or end with `-`"),
            ("a_b.io", 1, "character `_`"),
            ("999.1.1.1", 0, "not a valid IPv4"),
        ];
        for (input, position, reason) in cases {
            let e = Registry::parse(input).unwrap_err();
            assert_eq!(e.kind(), ParseErrorKind::Registry, "{input}");
            assert_eq!(e.position(), position, "{input}: {e}");
            assert!(e.reason().contains(reason), "{input}: {e}");
        }
        let long_label = format!("{}.io", "a".repeat(64));
        assert_eq!(Registry::parse(&long_label).unwrap_err().position(), 63);
        let too_long = "a.".repeat(130);
        assert_eq!(Registry::parse(&too_long).unwrap_err().position(), 253);
    }

    #[test]
    fn tag_or_digest() {
        let t = TagOrDigest::parse("3.10").unwrap();
        assert_eq!(t, TagOrDigest::Tag(Tag::parse("3.10").unwrap()));
        assert_eq!(t.tag().map(Tag::as_str), Some("3.10"));
        let d = TagOrDigest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.digest(), Some(&Digest::sha256_of(b"")));
        assert_eq!(d.tag(), None);
        let kind = |s| TagOrDigest::parse(s).unwrap_err().kind();
        assert_eq!(kind("sha256:abc"), ParseErrorKind::Digest);
        assert_eq!(kind(".x"), ParseErrorKind::Tag);
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""3.10""#);
        assert_eq!(serde_json::from_str::<TagOrDigest>(r#""3.10""#).unwrap(), t);
    }

    #[test]
    fn docker_hub_short_names() {
        let r = reference("alpine");
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(r.registry().api_host(), "registry-1.docker.io");
        assert_eq!(r.registry().credential_key(), "https://index.docker.io/v1/");
        assert_eq!(r.repository().as_str(), "library/alpine");
        assert_eq!(r.tag(), Some(&Tag::latest()));
        assert_eq!(r.digest(), None);
        assert_eq!(r.tag_or_digest().to_string(), "latest");
        for same in [
            "docker.io/alpine",
            "index.docker.io/library/alpine",
            "registry-1.docker.io/alpine:latest",
            "docker.io/library/alpine:latest",
        ] {
            assert_eq!(reference(same), r, "{same}");
        }
        let r = reference("user/repo");
        assert_eq!(r.to_string(), "docker.io/user/repo:latest");
    }

    #[test]
    fn other_registries() {
        let r = reference("ghcr.io/toddysm/python:3.10");
        assert_eq!(r.registry().host(), "ghcr.io");
        assert_eq!(r.repository().as_str(), "toddysm/python");
        assert_eq!(r.tag().map(Tag::as_str), Some("3.10"));
        assert_eq!(r.registry().api_host(), "ghcr.io");
        assert_eq!(r.to_string(), "ghcr.io/toddysm/python:3.10");

        let r = reference("localhost:5000/foo/bar");
        assert_eq!(r.registry().port(), Some(5000));
        assert_eq!(r.repository().as_str(), "foo/bar");
        assert_eq!(r.to_string(), "localhost:5000/foo/bar:latest");

        let r = reference(&format!("127.0.0.1:5000/a@{EMPTY}"));
        assert_eq!(r.registry().to_string(), "127.0.0.1:5000");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().map(ToString::to_string).as_deref(), Some(EMPTY));
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/a@{EMPTY}"));

        let r = reference("[::1]:5000/a:b");
        assert_eq!(r.registry().host(), "[::1]");
        assert_eq!(r.tag().map(Tag::as_str), Some("b"));
        assert_eq!(r.to_string(), "[::1]:5000/a:b");

        let full = format!("ghcr.io/a/b:t@{EMPTY}");
        let r = reference(&full);
        assert_eq!(r.to_string(), full);
        assert_eq!(r.tag_or_digest().to_string(), EMPTY);

        // Without `.`, `:` or `localhost`, the first component is a namespace.
        assert_eq!(reference("my/x").to_string(), "docker.io/my/x:latest");
        assert_eq!(reference("localhost/x").registry().host(), "localhost");
    }

    #[test]
    fn with_tag_and_digest() {
        let digest = Digest::sha256_of(b"");
        let r = reference("alpine").with_digest(digest.clone());
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/alpine:latest@{EMPTY}")
        );
        let r = r.with_tag(Tag::parse("3.19").unwrap());
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/alpine:3.19@{EMPTY}")
        );
        assert_eq!(r.tag_or_digest(), TagOrDigest::Digest(digest));
    }

    #[test]
    fn invalid_references() {
        let cases = [
            ("", 0, "must not be empty"),
            ("Alpine", 0, "use `alpine`, not `Alpine`"),
            ("ghcr.io/", 8, "must not be empty"),
            ("a:b:c", 1, "`:` is not allowed in repository names"),
            ("a@sha256:short", 9, "`s` is not a hex digit"),
            ("a@sha256:abc", 12, "64 hex digits; this one has 3"),
            ("host:99999/a", 5, "port 99999 is out of range"),
            ("ghcr.io/a:.x", 10, "a tag must start with"),
            ("ghcr.io/a/../b", 10, "traverse"),
            ("a:", 2, "a tag must not be empty"),
            ("a@", 2, "a digest is"),
        ];
        for (input, position, reason) in cases {
            let e = reference_err(input);
            assert_eq!(e.position(), position, "{input}: {e}");
            assert!(e.reason().contains(reason), "{input}: {e}");
        }
        let e = reference_err(&format!("ghcr.io/{}", "a".repeat(292)));
        assert!(e.reason().contains("at most 255"), "{e}");
        let e = reference_err(&format!("ghcr.io/{}", "a".repeat(250)));
        assert_eq!(e.position(), 255);
        assert!(
            e.reason()
                .contains("at most 255 characters; here they are 258")
        );
        // `docker.io/library/` counts too, although the input did not spell it.
        assert!(Reference::parse(&"a".repeat(240)).is_err());
        assert!(Reference::parse(&"a".repeat(236)).is_ok());
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let r = reference("alpine:3.19");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#""docker.io/library/alpine:3.19""#);
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        assert!(serde_json::from_str::<Reference>(r#""Alpine""#).is_err());
        let registry = Registry::parse("localhost:5000").unwrap();
        let json = serde_json::to_string(&registry).unwrap();
        assert_eq!(json, r#""localhost:5000""#);
        assert!(serde_json::from_str::<Registry>(r#""host:0""#).is_err());
    }

    fn registry_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("docker.io".to_owned()),
            Just("index.docker.io".to_owned()),
            Just("localhost:5000".to_owned()),
            Just("[::1]:5000".to_owned()),
            "(25[0-5]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|1[0-9]{2}|[1-9]?[0-9])){3}(:[1-9][0-9]{0,3})?",
            "[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?\\.[a-zA-Z]{2,6}(:[1-9][0-9]{0,3})?",
        ]
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}(/[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}){0,3}"
    }

    proptest! {
        #[test]
        fn registries_round_trip(s in registry_strategy()) {
            let r = Registry::parse(&s).unwrap();
            prop_assert_eq!(r.to_string(), s.to_ascii_lowercase());
            prop_assert_eq!(Registry::parse(&r.to_string()).unwrap(), r);
        }

        #[test]
        fn references_round_trip(
            registry in proptest::option::of(registry_strategy()),
            name in name_strategy(),
            tag in proptest::option::of("[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}"),
            hex in proptest::option::of("[0-9a-f]{64}"),
        ) {
            // A first component with a `.` would be read as a host: spell out the registry.
            let registry = match registry {
                None if name.split('/').next().is_some_and(|c| c.contains('.')) => {
                    Some("docker.io".to_owned())
                }
                registry => registry,
            };
            let s = format!(
                "{}{name}{}{}",
                registry.as_ref().map(|r| format!("{r}/")).unwrap_or_default(),
                tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default(),
                hex.as_ref().map(|h| format!("@sha256:{h}")).unwrap_or_default(),
            );
            let r = Reference::parse(&s).unwrap();
            prop_assert_eq!(Reference::parse(&r.to_string()).unwrap(), r.clone());

            let registry = registry.map(|r| Registry::parse(&r).unwrap());
            let on_hub = registry.as_ref().is_none_or(Registry::is_docker_hub);
            if on_hub {
                prop_assert_eq!(r.registry(), &Registry::docker_hub());
            } else {
                prop_assert_eq!(Some(r.registry()), registry.as_ref());
            }
            let want_name = if on_hub && !name.contains('/') {
                format!("library/{name}")
            } else {
                name
            };
            prop_assert_eq!(r.repository().as_str(), want_name);
            let want_tag = match (&tag, &hex) {
                (None, None) => Some("latest"),
                (tag, _) => tag.as_deref(),
            };
            prop_assert_eq!(r.tag().map(Tag::as_str), want_tag);
            prop_assert_eq!(r.digest().map(Digest::hex), hex.as_deref());
            let want = hex.map_or_else(|| want_tag.unwrap_or_default().to_owned(), |h| format!("sha256:{h}"));
            prop_assert_eq!(r.tag_or_digest().to_string(), want);
        }

        #[test]
        fn printing_a_parsed_reference_is_canonical(s in "[a-zA-Z0-9.:/@_-]{0,30}") {
            if let Ok(r) = Reference::parse(&s) {
                let printed = r.to_string();
                prop_assert_eq!(Reference::parse(&printed).unwrap().to_string(), printed);
            }
        }

        #[test]
        fn parsers_never_panic(s in any::<String>(), t in "[a-zA-Z0-9.:/@_\\[\\]%-]{0,300}") {
            for input in [&s, &t] {
                let _ = Reference::parse(input);
                let _ = Registry::parse(input);
                let _ = TagOrDigest::parse(input);
            }
        }
    }
}
