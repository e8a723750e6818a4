//! Repository names: the `<name>` of `/v2/<name>/manifests/<reference>`.
//!
//! The grammar is the one in the OCI distribution-spec v1.1, "Pulling manifests":
//!
//! ```text
//! name      ::= component ("/" component)*
//! component ::= [a-z0-9]+ (separator [a-z0-9]+)*
//! separator ::= "." | "_" | "__" | "-"+
//! ```
//!
//! that is `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
//! at most [`MAX_LEN`] characters. The spec also limits a name to 255 characters
//! *together with its registry host*; [`crate::reference::Reference`] checks that.
//!
//! Names become storage keys, token scopes and URL paths, so nothing outside the
//! grammar is accepted: no upper case (registries differ on case folding), no
//! percent-encoding (it is never decoded), and no `.` or `..` components (a
//! component must start with a letter or digit, which rules out path traversal).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ParseError, ParseErrorKind};

/// The longest repository name accepted, in bytes (all valid names are ASCII).
pub const MAX_LEN: usize = 255;

/// A valid repository name, such as `library/alpine` or `toddysm/python`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Parses a repository name, rejecting anything outside the OCI grammar.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        validate(input)?;
        Ok(Self(input.to_owned()))
    }

    /// The name as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated path components, in order (`library`, `alpine`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The first component: the user or organisation that owns the repository.
    ///
    /// For a single-component name (`alpine`) this is the whole name.
    pub fn namespace(&self) -> &str {
        match self.0.split_once('/') {
            Some((namespace, _)) => namespace,
            None => &self.0,
        }
    }

    /// The number of path components (`library/alpine` has depth 2).
    pub fn depth(&self) -> usize {
        self.0.bytes().filter(|&b| b == b'/').count() + 1
    }
}

impl FromStr for RepositoryName {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RepositoryName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for RepositoryName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RepositoryName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn error(input: &str, position: usize, reason: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::RepositoryName, input, position, reason)
}

/// Checks `input` against the grammar in one left-to-right pass.
fn validate(input: &str) -> Result<(), ParseError> {
    if input.is_empty() {
        return Err(error(input, 0, "a repository name must not be empty"));
    }
    if input.len() > MAX_LEN {
        return Err(error(
            input,
            MAX_LEN,
            format!(
                "repository names are at most {MAX_LEN} characters; this one has {}",
                input.len()
            ),
        ));
    }
    let mut start = 0;
    for component in input.split('/') {
        validate_component(input, component, start)?;
        start += component.len() + 1;
    }
    Ok(())
}

/// Checks one `/`-separated component that begins at byte `start` of `input`.
fn validate_component(input: &str, component: &str, start: usize) -> Result<(), ParseError> {
    if component.is_empty() {
        return Err(if start == 0 {
            error(input, 0, "a repository name must not start with `/`")
        } else if start == input.len() {
            error(input, start - 1, "a repository name must not end with `/`")
        } else {
            error(
                input,
                start,
                "empty path component (`//`); components are separated by a single `/`",
            )
        });
    }
    if component == "." || component == ".." {
        return Err(error(
            input,
            start,
            format!(
                "`{component}` path components are not allowed in repository names \
                 (they would traverse paths)"
            ),
        ));
    }
    let bytes = component.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => i += 1,
            b'A'..=b'Z' => return Err(upper_case(input, start + i)),
            b'.' | b'_' | b'-' => {
                let run_start = i;
                while matches!(bytes.get(i), Some(b'.' | b'_' | b'-')) {
                    i += 1;
                }
                let run = component.get(run_start..i).unwrap_or_default();
                check_separator(input, start, run_start, run, i == bytes.len())?;
            }
            _ => return Err(bad_character(input, start + i)),
        }
    }
    Ok(())
}

/// Checks a maximal run of separator characters found inside a component.
fn check_separator(
    input: &str,
    component_start: usize,
    run_start: usize,
    run: &str,
    at_end: bool,
) -> Result<(), ParseError> {
    let position = component_start + run_start;
    if run_start == 0 {
        let first = run.chars().next().unwrap_or('.');
        return Err(error(
            input,
            position,
            format!("a path component must start with a lower-case letter or digit, not `{first}`"),
        ));
    }
    if at_end {
        return Err(error(
            input,
            position,
            format!("a path component must not end with a separator (`{run}`)"),
        ));
    }
    if run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-') {
        return Ok(());
    }
    if run.bytes().all(|b| b == b'_') {
        return Err(error(
            input,
            position + 2,
            "at most two underscores in a row (`__`) are allowed in repository names",
        ));
    }
    Err(error(
        input,
        position,
        format!(
            "`{run}` is not a separator; between letters and digits use `.`, `_`, `__` \
             or one or more `-`"
        ),
    ))
}

/// The error for an upper-case letter, suggesting the lower-case name if it is valid.
fn upper_case(input: &str, position: usize) -> ParseError {
    let lower = input.to_ascii_lowercase();
    let reason = if input.len() <= 64 && validate(&lower).is_ok() {
        format!(
            "upper-case letters are not allowed in repository names; \
             use `{lower}`, not `{input}`"
        )
    } else {
        "upper-case letters are not allowed in repository names".to_owned()
    };
    error(input, position, reason)
}

/// The error for a character that can never appear in a name.
fn bad_character(input: &str, position: usize) -> ParseError {
    let found = input.get(position..).and_then(|s| s.chars().next());
    let reason = match found {
        Some('%') => "`%` is not allowed in repository names; names are never \
                      percent-decoded, so write the name itself"
            .to_owned(),
        Some(' ') => "spaces are not allowed in repository names".to_owned(),
        Some(':') => "`:` is not allowed in repository names; in a reference a tag \
                      follows the name after a single `:`"
            .to_owned(),
        Some('@') => "`@` is not allowed in repository names; in a reference a digest \
                      follows the name after `@`"
            .to_owned(),
        Some(c) => format!(
            "character `{}` is not allowed in repository names; use lower-case letters, \
             digits, `.`, `_`, `-` and `/`",
            c.escape_debug()
        ),
        None => "unexpected character in repository name".to_owned(),
    };
    error(input, position, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_err(input: &str) -> ParseError {
        let e = RepositoryName::parse(input).unwrap_err();
        assert_eq!(e.kind(), ParseErrorKind::RepositoryName, "{input}");
        e
    }

    #[test]
    fn real_world_names() {
        for s in [
            "library/alpine",
            "toddysm/python",
            "a",
            "a.b_c__d---e/f",
            "0-5788719150923125/ctx",
            "bitnami/charts/redis",
        ] {
            let name = RepositoryName::parse(s).unwrap();
            assert_eq!(name.as_str(), s);
            assert_eq!(name.to_string(), s);
            assert_eq!(s.parse::<RepositoryName>().unwrap(), name);
        }
    }

    #[test]
    fn accessors() {
        let name = RepositoryName::parse("library/alpine").unwrap();
        assert_eq!(name.namespace(), "library");
        assert_eq!(name.depth(), 2);
        assert_eq!(name.components().collect::<Vec<_>>(), ["library", "alpine"]);
        let name = RepositoryName::parse("a").unwrap();
        assert_eq!((name.namespace(), name.depth()), ("a", 1));
        let name = RepositoryName::parse("0-5788719150923125/ctx/x.y").unwrap();
        assert_eq!(name.namespace(), "0-5788719150923125");
        assert_eq!(name.depth(), 3);
        assert_eq!(name.as_ref(), "0-5788719150923125/ctx/x.y");
    }

    #[test]
    fn upper_case_is_rejected_with_a_suggestion() {
        let e = parse_err("Library/Alpine");
        assert_eq!(e.position(), 0);
        assert_eq!(
            e.reason(),
            "upper-case letters are not allowed in repository names; \
             use `library/alpine`, not `Library/Alpine`"
        );
        assert_eq!(parse_err("library/alPine").position(), 10);
    }

    #[test]
    fn empty_components_are_rejected() {
        assert_eq!(
            parse_err("").reason(),
            "a repository name must not be empty"
        );
        let e = parse_err("a//b");
        assert_eq!(e.position(), 2);
        assert!(e.reason().contains("`//`"), "{}", e.reason());
        let e = parse_err("/a");
        assert_eq!(e.position(), 0);
        assert!(e.reason().contains("start with `/`"));
        let e = parse_err("a/");
        assert_eq!(e.position(), 1);
        assert!(e.reason().contains("end with `/`"));
        assert_eq!(parse_err("a//").position(), 2);
        assert_eq!(parse_err("/").position(), 0);
    }

    #[test]
    fn separators_must_sit_between_letters_or_digits() {
        let e = parse_err("a-/b");
        assert_eq!(e.position(), 1);
        assert!(e.reason().contains("must not end with a separator (`-`)"));
        let e = parse_err(".a");
        assert_eq!(e.position(), 0);
        assert!(
            e.reason()
                .contains("must start with a lower-case letter or digit, not `.`")
        );
        assert_eq!(parse_err("a/_b").position(), 2);
        assert_eq!(parse_err("a/b.").position(), 3);
        let e = parse_err("a._b");
        assert_eq!(e.position(), 1);
        assert!(e.reason().contains("`._` is not a separator"));
        assert!(
            parse_err("a..b")
                .reason()
                .contains("`..` is not a separator")
        );
    }

    #[test]
    fn three_underscores_are_rejected() {
        let e = parse_err("a___b");
        assert_eq!(e.position(), 3);
        assert!(e.reason().contains("at most two underscores"));
    }

    #[test]
    fn path_traversal_is_rejected() {
        let e = parse_err("a/../b");
        assert_eq!(e.position(), 2);
        assert!(e.reason().contains("traverse"), "{}", e.reason());
        assert_eq!(parse_err("..").position(), 0);
        assert_eq!(parse_err("a/.").position(), 2);
        let e = parse_err("%2e%2e");
        assert_eq!(e.position(), 0);
        assert!(e.reason().contains("percent-decoded"));
        assert_eq!(parse_err("a/%2e%2e/b").position(), 2);
    }

    #[test]
    fn foreign_characters_are_rejected() {
        let e = parse_err("my image");
        assert_eq!(e.position(), 2);
        assert_eq!(e.reason(), "spaces are not allowed in repository names");
        let e = parse_err("alpine:3.19");
        assert_eq!(e.position(), 6);
        assert!(e.reason().contains("`:` is not allowed"));
        assert_eq!(parse_err("a@b").position(), 1);
        let e = parse_err("caf\u{e9}");
        assert_eq!(e.position(), 3);
        assert!(e.reason().contains("character `\u{e9}`"));
        assert!(parse_err("a\nb").reason().contains("`\\n`"));
    }

    #[test]
    fn length_limit() {
        let ok = "a".repeat(MAX_LEN);
        assert_eq!(RepositoryName::parse(&ok).unwrap().as_str(), ok);
        let e = parse_err(&"a".repeat(MAX_LEN + 1));
        assert_eq!(e.position(), MAX_LEN);
        assert!(e.reason().contains("at most 255 characters"));
    }

    #[test]
    fn serde_uses_the_string_and_validates() {
        let name = RepositoryName::parse("toddysm/python").unwrap();
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, r#""toddysm/python""#);
        assert_eq!(serde_json::from_str::<RepositoryName>(&json).unwrap(), name);
        let e = serde_json::from_str::<RepositoryName>(r#""a/../b""#).unwrap_err();
        assert!(e.to_string().contains("traverse"));
    }

    /// Valid names straight from the spec's grammar.
    fn name_strategy() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,3}(/[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,3}){0,4}"
            .prop_filter("at most 255", |s| s.len() <= MAX_LEN)
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(s in name_strategy()) {
            let name = RepositoryName::parse(&s).unwrap();
            prop_assert_eq!(name.to_string(), s.clone());
            prop_assert_eq!(RepositoryName::parse(name.as_str()).unwrap(), name.clone());
            prop_assert_eq!(name.components().collect::<Vec<_>>().join("/"), s);
            prop_assert_eq!(name.components().count(), name.depth());
        }

        #[test]
        fn printing_a_parsed_name_is_canonical(s in "[a-zA-Z0-9._/%: -]{0,40}") {
            if let Ok(name) = RepositoryName::parse(&s) {
                prop_assert_eq!(name.to_string(), s);
            }
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            if let Err(e) = RepositoryName::parse(&s) {
                prop_assert!(e.position() <= s.len());
            }
        }
    }
}
