//! Tags: the human-readable `<reference>` of `/v2/<name>/manifests/<reference>`.
//!
//! The grammar is the one in the OCI distribution-spec v1.1, "Pulling manifests":
//!
//! ```text
//! tag ::= [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
//! ```
//!
//! that is 1 to [`MAX_LEN`] characters. A tag cannot start with `.` or `-` (so it
//! is never a relative path or a command-line flag) and cannot contain `:` or `@`,
//! which is what lets a reference and a `<reference>` path segment tell a tag
//! from a digest. Tags are case-sensitive: `V1` and `v1` are different tags.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ParseError, ParseErrorKind};

/// The longest tag accepted, in characters.
pub const MAX_LEN: usize = 128;

/// A valid tag, such as `latest`, `3.10` or `v1.2.3-rc.1_build`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Parses a tag, rejecting anything outside the OCI grammar.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        validate(input)?;
        Ok(Self(input.to_owned()))
    }

    /// The tag `latest`, which docker-style clients assume when a reference
    /// names neither a tag nor a digest.
    pub fn latest() -> Self {
        Self("latest".to_owned())
    }

    /// The tag as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn error(input: &str, position: usize, reason: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::Tag, input, position, reason)
}

fn validate(input: &str) -> Result<(), ParseError> {
    if input.is_empty() {
        return Err(error(input, 0, "a tag must not be empty"));
    }
    if input.len() > MAX_LEN {
        return Err(error(
            input,
            MAX_LEN,
            format!(
                "tags are at most {MAX_LEN} characters; this one has {}",
                input.len()
            ),
        ));
    }
    for (i, b) in input.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => {}
            b'.' | b'-' if i == 0 => {
                return Err(error(
                    input,
                    0,
                    format!(
                        "a tag must start with a letter, a digit or `_`, not `{}`",
                        char::from(b)
                    ),
                ));
            }
            b'.' | b'-' => {}
            _ => return Err(bad_character(input, i)),
        }
    }
    Ok(())
}

fn bad_character(input: &str, position: usize) -> ParseError {
    let found = input.get(position..).and_then(|s| s.chars().next());
    let reason = match found {
        Some(':') => {
            "`:` is not allowed in tags; a reference has one `:` before its tag".to_owned()
        }
        Some('@') => "`@` is not allowed in tags; in a reference `@` starts a digest".to_owned(),
        Some(' ') => "spaces are not allowed in tags".to_owned(),
        Some(c) => format!(
            "character `{}` is not allowed in tags; use letters, digits, `_`, `.` and `-`",
            c.escape_debug()
        ),
        None => "unexpected character in tag".to_owned(),
    };
    error(input, position, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_err(input: &str) -> ParseError {
        let e = Tag::parse(input).unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::Tag, "{input}");
        e
    }

    #[test]
    fn real_world_tags() {
        for s in [
            "latest",
            "3.10",
            "v1.2.3-rc.1_build",
            "_x",
            "3.19.1-alpine",
            "V1",
        ] {
            let tag = Tag::parse(s).unwrap();
            assert_eq!(tag.as_str(), s);
            assert_eq!(tag.to_string(), s);
            assert_eq!(tag.as_ref(), s);
            assert_eq!(s.parse::<Tag>().unwrap(), tag);
        }
        assert_eq!(Tag::latest(), Tag::parse("latest").unwrap());
    }

    #[test]
    fn invalid_tags() {
        assert_eq!(parse_err("").reason(), "a tag must not be empty");
        let e = parse_err(".x");
        assert_eq!(e.position(), 0);
        assert_eq!(
            e.reason(),
            "a tag must start with a letter, a digit or `_`, not `.`"
        );
        assert_eq!(parse_err("-x").position(), 0);
        let e = parse_err("a:b");
        assert_eq!(e.position(), 1);
        assert!(e.reason().starts_with("`:` is not allowed in tags"));
        let e = parse_err("a@b");
        assert_eq!(e.position(), 1);
        assert!(e.reason().starts_with("`@` is not allowed in tags"));
        assert_eq!(parse_err("a b").reason(), "spaces are not allowed in tags");
        let e = parse_err("v1/2");
        assert_eq!(e.position(), 2);
        assert!(e.reason().contains("character `/`"));
        assert_eq!(parse_err("\u{e9}t\u{e9}").position(), 0);
    }

    #[test]
    fn length_limit() {
        let ok = "a".repeat(MAX_LEN);
        assert_eq!(Tag::parse(&ok).unwrap().as_str(), ok);
        let e = parse_err(&"a".repeat(MAX_LEN + 1));
        assert_eq!(e.position(), MAX_LEN);
        assert_eq!(
            e.reason(),
            "tags are at most 128 characters; this one has 129"
        );
    }

    #[test]
    fn serde_uses_the_string_and_validates() {
        let tag = Tag::parse("3.10").unwrap();
        assert_eq!(serde_json::to_string(&tag).unwrap(), r#""3.10""#);
        assert_eq!(serde_json::from_str::<Tag>(r#""3.10""#).unwrap(), tag);
        assert!(serde_json::from_str::<Tag>(r#"".x""#).is_err());
    }

    proptest! {
        #[test]
        fn valid_tags_round_trip(s in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}") {
            let tag = Tag::parse(&s).unwrap();
            prop_assert_eq!(tag.to_string(), s);
            prop_assert_eq!(Tag::parse(tag.as_str()).unwrap(), tag);
        }

        #[test]
        fn printing_a_parsed_tag_is_canonical(s in "[a-zA-Z0-9._:@ -]{0,12}") {
            if let Ok(tag) = Tag::parse(&s) {
                prop_assert_eq!(tag.to_string(), s);
            }
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            if let Err(e) = Tag::parse(&s) {
                prop_assert!(e.position() <= s.len());
            }
        }
    }
}
