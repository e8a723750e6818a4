//! `oci:DIR[:TAG]`: an OCI layout named on the command line, as skopeo names it.
//!
//! ```text
//! layout-ref ::= "oci:" dir [ ":" tag ]
//! tag        ::= [A-Za-z0-9_][A-Za-z0-9._-]{0,127}
//! ```
//!
//! Directories may contain `:`, so the text after the *last* `:` is a tag only
//! when it holds no `/`: `oci:/tmp/a:b/c` is the directory `/tmp/a:b/c`, while
//! `oci:dir:v1` is `dir` tagged `v1`. Text after the last `:` without a `/` must
//! then be a valid tag; `oci:dir:` and `oci:dir:bad tag!` are errors rather than
//! directories, since they are almost always a mistyped tag. (skopeo splits at
//! the first `:` instead, and accepts more than tags after it; berth names
//! images in a layout by tag only.)

use std::fmt;
use std::path::PathBuf;

use berth_core::Tag;

use super::LayoutError;

/// The prefix naming the OCI layout transport.
const PREFIX: &str = "oci:";

/// `oci:DIR[:TAG]` parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`), if one was given.
    pub tag: Option<String>,
}

impl LayoutRef {
    /// `None` when `input` does not start with `oci:`; `Some(Err)` when it
    /// does but is not `oci:DIR[:TAG]` (no directory, a bad tag).
    pub fn parse(input: &str) -> Option<Result<Self, LayoutError>> {
        let rest = input.strip_prefix(PREFIX)?;
        let bad = |reason: String| LayoutError::BadReference {
            input: input.to_owned(),
            reason,
        };
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((_, after)) if after.contains('/') => (rest, None),
            Some((_, "")) => {
                return Some(Err(bad(
                    "nothing follows the last `:`; give a tag after it, or drop it".to_owned(),
                )));
            }
            Some((dir, tag)) => match Tag::parse(tag) {
                Ok(tag) => (dir, Some(tag.as_str().to_owned())),
                Err(e) => return Some(Err(bad(format!("`{tag}` is not a tag: {}", e.reason())))),
            },
            None => (rest, None),
        };
        if dir.is_empty() {
            return Some(Err(bad(format!("no directory after `{PREFIX}`"))));
        }
        Some(Ok(Self {
            dir: PathBuf::from(dir),
            tag,
        }))
    }
}

impl fmt::Display for LayoutRef {
    /// `oci:DIR[:TAG]`. Without a tag, a directory whose last component holds a
    /// `:` is printed with a trailing `/`, so that the text parses back to the
    /// same directory instead of a directory and a tag.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.dir.display().to_string();
        write!(f, "{PREFIX}{dir}")?;
        match &self.tag {
            Some(tag) => write!(f, ":{tag}"),
            None => {
                let last = dir.rsplit('/').next().unwrap_or_default();
                if last.contains(':') {
                    f.write_str("/")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parsed(input: &str) -> (PathBuf, Option<String>) {
        let r = LayoutRef::parse(input).unwrap().unwrap();
        (r.dir, r.tag)
    }

    fn error(input: &str) -> String {
        LayoutRef::parse(input).unwrap().unwrap_err().to_string()
    }

    #[test]
    fn parse_table() {
        let ok: [(&str, &str, Option<&str>); 9] = [
            ("oci:dir", "dir", None),
            ("oci:dir:tag", "dir", Some("tag")),
            ("oci:/tmp/a:b/c", "/tmp/a:b/c", None),
            ("oci:/tmp/a:b/c:v1.0", "/tmp/a:b/c", Some("v1.0")),
            ("oci:./out", "./out", None),
            (
                "oci:/srv/images/alpine:3.19",
                "/srv/images/alpine",
                Some("3.19"),
            ),
            ("oci:a:b:c", "a:b", Some("c")),
            ("oci:a:b/", "a:b/", None),
            ("oci:x:_", "x", Some("_")),
        ];
        for (input, dir, tag) in ok {
            assert_eq!(
                parsed(input),
                (PathBuf::from(dir), tag.map(str::to_owned)),
                "{input}"
            );
        }
        for not_oci in [
            "docker://x",
            "",
            "oci",
            "OCI:dir",
            "dir:tag",
            "oci-archive:x",
        ] {
            assert!(LayoutRef::parse(not_oci).is_none(), "{not_oci}");
        }
        assert_eq!(
            error("oci:"),
            "`oci:` is not an OCI layout reference: no directory after `oci:`; \
             write oci:DIR or oci:DIR:TAG"
        );
        assert_eq!(
            error("oci::v1"),
            "`oci::v1` is not an OCI layout reference: no directory after `oci:`; \
             write oci:DIR or oci:DIR:TAG"
        );
        assert_eq!(
            error("oci:dir:"),
            "`oci:dir:` is not an OCI layout reference: nothing follows the last `:`; \
             give a tag after it, or drop it; write oci:DIR or oci:DIR:TAG"
        );
        assert_eq!(
            error("oci:dir:bad tag!"),
            "`oci:dir:bad tag!` is not an OCI layout reference: `bad tag!` is not a tag: \
             spaces are not allowed in tags; write oci:DIR or oci:DIR:TAG"
        );
        assert_eq!(
            error("oci:dir:-v1"),
            "`oci:dir:-v1` is not an OCI layout reference: `-v1` is not a tag: \
             a tag must start with a letter, a digit or `_`, not `-`; \
             write oci:DIR or oci:DIR:TAG"
        );
        let long = format!("oci:d:{}", "a".repeat(129));
        assert!(error(&long).contains("tags are at most 128 characters; this one has 129"));
    }

    #[test]
    fn display() {
        let cases: [(&str, Option<&str>, &str); 5] = [
            ("dir", None, "oci:dir"),
            ("dir", Some("v1"), "oci:dir:v1"),
            ("/tmp/a:b/c", None, "oci:/tmp/a:b/c"),
            ("/tmp/a:b", None, "oci:/tmp/a:b/"),
            ("/tmp/a:b", Some("t"), "oci:/tmp/a:b:t"),
        ];
        for (dir, tag, shown) in cases {
            let r = LayoutRef {
                dir: PathBuf::from(dir),
                tag: tag.map(str::to_owned),
            };
            assert_eq!(r.to_string(), shown);
            assert_eq!(LayoutRef::parse(shown).unwrap().unwrap(), r, "{shown}");
        }
    }

    proptest! {
        #[test]
        fn printing_parses_back(
            dir in "[a-z:. /]{0,12}[a-z:.]",
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9._-]{0,8}"),
        ) {
            let r = LayoutRef { dir: PathBuf::from(&dir), tag };
            let back = LayoutRef::parse(&r.to_string()).unwrap().unwrap();
            prop_assert_eq!(back, r);
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = LayoutRef::parse(&s);
            let _ = LayoutRef::parse(&format!("oci:{s}"));
        }
    }
}
