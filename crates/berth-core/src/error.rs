//! The one error type of `berth-core`: a protocol string that did not parse.
//!
//! Every parser in this crate returns [`ParseError`]. It names what was being
//! parsed ([`ParseErrorKind`]), the offending input (truncated so that a hostile
//! megabyte-long header cannot flood a log), the byte offset where parsing
//! failed, and a reason a person can act on. The registry maps the kind to the
//! OCI error code a client sees (`NAME_INVALID`, `TAG_INVALID`, `DIGEST_INVALID`,
//! ...), so the message reaches the wire unchanged.

use std::fmt;

/// The longest prefix of the offending input kept in an error.
const MAX_QUOTED_INPUT: usize = 128;

/// What was being parsed when a [`ParseError`] occurred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// A repository name (`library/alpine`).
    RepositoryName,
    /// A tag (`3.19`).
    Tag,
    /// A registry host, with an optional port (`localhost:5000`).
    Registry,
    /// A full reference (`ghcr.io/owner/name:tag@sha256:...`).
    Reference,
    /// A content digest (`sha256:<64 hex>`).
    Digest,
    /// A token scope (`repository:name:pull,push`).
    Scope,
    /// A `WWW-Authenticate` header value.
    Challenge,
    /// A token endpoint request (query string or form body).
    TokenRequest,
    /// A token endpoint response body.
    TokenResponse,
    /// The claims of a JWT.
    Claims,
    /// A `Link` header.
    Link,
    /// The `n` / `last` pagination parameters.
    Pagination,
    /// A media type.
    MediaType,
    /// A `/v2/...` request path.
    Endpoint,
    /// A platform (`linux/amd64`).
    Platform,
}

impl ParseErrorKind {
    /// The noun a message uses for this kind ("repository name", "digest", ...).
    pub fn noun(self) -> &'static str {
        match self {
            Self::RepositoryName => "repository name",
            Self::Tag => "tag",
            Self::Registry => "registry host",
            Self::Reference => "reference",
            Self::Digest => "digest",
            Self::Scope => "scope",
            Self::Challenge => "WWW-Authenticate challenge",
            Self::TokenRequest => "token request",
            Self::TokenResponse => "token response",
            Self::Claims => "token claims",
            Self::Link => "Link header",
            Self::Pagination => "pagination parameter",
            Self::MediaType => "media type",
            Self::Endpoint => "registry API path",
            Self::Platform => "platform",
        }
    }
}

/// A protocol string that did not parse: what, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    kind: ParseErrorKind,
    input: String,
    position: usize,
    reason: String,
}

impl ParseError {
    /// An error parsing `input` as `kind`, failing at byte `position` for `reason`.
    ///
    /// `reason` should say what was expected, in words a user can act on
    /// ("tags are at most 128 characters", not "length check failed").
    pub fn new(
        kind: ParseErrorKind,
        input: &str,
        position: usize,
        reason: impl Into<String>,
    ) -> Self {
        let input = if input.len() > MAX_QUOTED_INPUT {
            let mut end = MAX_QUOTED_INPUT;
            while !input.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}...", &input[..end])
        } else {
            input.to_owned()
        };
        Self {
            kind,
            input,
            position,
            reason: reason.into(),
        }
    }

    /// What was being parsed.
    pub fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The offending input (at most 128 bytes of it, then `...`).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The byte offset in the input where parsing failed.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Why the input was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {:?}: {} (at byte {})",
            self.kind.noun(),
            self.input,
            self.reason,
            self.position
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_kind_input_reason_and_position() {
        let e = ParseError::new(ParseErrorKind::Tag, "bad tag", 3, "spaces are not allowed");
        assert_eq!(
            e.to_string(),
            r#"invalid tag "bad tag": spaces are not allowed (at byte 3)"#
        );
    }

    #[test]
    fn long_input_is_truncated_on_a_char_boundary() {
        let input = "é".repeat(100);
        let e = ParseError::new(ParseErrorKind::Digest, &input, 0, "x");
        assert!(e.input().ends_with("..."));
        assert!(e.input().len() <= MAX_QUOTED_INPUT + 3);
    }
}
