//! A platform as image indexes name it (`os/architecture[/variant]`), as
//! given on a command line (`--platform linux/arm64/v8`) and as matched
//! against an index entry's `platform` object (OCI image-spec, image index).

use std::fmt;

use crate::error::{ParseError, ParseErrorKind};

/// `os/architecture[/variant]`, such as `linux/amd64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// Parses `os/architecture[/variant]`; each part is non-empty and made of
    /// `[a-z0-9._-]` (the spelling Go's `GOOS`/`GOARCH` values and variants use).
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let fail = |position: usize, reason: &str| {
            ParseError::new(ParseErrorKind::Platform, input, position, reason.to_owned())
        };
        let parts: Vec<&str> = input.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(fail(
                0,
                "expected os/architecture[/variant], such as linux/amd64 or linux/arm/v7",
            ));
        }
        let mut at = 0;
        for part in &parts {
            if part.is_empty() {
                return Err(fail(
                    at,
                    "an empty part; expected os/architecture[/variant]",
                ));
            }
            if let Some(bad) = part.bytes().position(|b| {
                !(b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            }) {
                return Err(fail(
                    at + bad,
                    "only lower-case letters, digits, `.`, `_` and `-` may appear",
                ));
            }
            at += part.len() + 1;
        }
        let owned = |s: &&str| (*s).to_owned();
        Ok(Self {
            os: owned(&parts[0]),
            architecture: owned(&parts[1]),
            variant: parts.get(2).map(owned),
        })
    }

    /// The operating system (`linux`).
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The CPU architecture (`amd64`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The variant (`v8`), if named.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether an index entry's `platform` fields name this platform. A
    /// platform without a variant matches any variant (`linux/arm64` picks
    /// `linux/arm64/v8`); one with a variant needs the same variant.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && match (&self.variant, variant) {
                (None, _) => true,
                (Some(wanted), Some(given)) => wanted == given,
                (Some(_), None) => false,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_two_and_three_parts() {
        let p = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            (p.os(), p.architecture(), p.variant()),
            ("linux", "amd64", None)
        );
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(p.variant(), Some("v7"));
        assert_eq!(p.to_string(), "linux/arm/v7");
    }

    #[test]
    fn refuses_bad_input_with_a_position() {
        for (input, position) in [
            ("linux", 0),
            ("linux/", 6),
            ("/amd64", 0),
            ("linux/amd64/v8/x", 0),
            ("Linux/amd64", 0),
            ("linux/am d64", 8),
            ("", 0),
        ] {
            let e = Platform::parse(input).unwrap_err();
            assert_eq!(e.position(), position, "{input}: {e}");
            assert_eq!(e.kind(), ParseErrorKind::Platform);
        }
    }

    #[test]
    fn matching_ignores_the_variant_only_when_none_is_asked() {
        let any = Platform::parse("linux/arm64").unwrap();
        assert!(any.matches("linux", "arm64", Some("v8")));
        assert!(any.matches("linux", "arm64", None));
        assert!(!any.matches("linux", "amd64", None));
        assert!(!any.matches("windows", "arm64", None));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(v7.matches("linux", "arm", Some("v7")));
        assert!(!v7.matches("linux", "arm", Some("v6")));
        assert!(!v7.matches("linux", "arm", None));
    }
}
