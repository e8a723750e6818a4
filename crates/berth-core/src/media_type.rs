//! Media types (RFC 6838 §4.2, parameters per RFC 9110 §8.3.1) and the ones
//! an OCI registry knows (OCI image-spec v1.1 "Media Types", Docker image
//! manifest v2 schema 2).
//!
//! Grammar accepted:
//!
//! ```text
//! media-type      = type "/" subtype *( OWS ";" OWS [ parameter ] )
//! type, subtype   = restricted-name / "*"        ; "*" only for Accept ranges
//! restricted-name = ( ALPHA / DIGIT ) *126( ALPHA / DIGIT / "!" / "#" / "$"
//!                   / "&" / "-" / "^" / "_" / "." / "+" )
//! parameter       = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! Type, subtype and parameter names are case-insensitive and stored
//! lower-case; parameter values keep their case. Leniencies: surrounding OWS,
//! BWS around `=`, empty parameters (`;;`) skipped, and unquoted values may hold
//! any visible ASCII but `"` `,` `;` `\` (`profile=http://...` is seen in the wild).
//! `*/*` and `type/*` parse so that `Accept` ranges can be represented.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ParseError, ParseErrorKind};
use crate::http_syntax::{
    Short, is_tchar, parse_quoted, scan_while, skip_ows, slice, write_quoted,
};

/// OCI image manifest.
pub const OCI_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (a multi-platform manifest list).
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration.
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI empty descriptor (`{}`), used as the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// OCI uncompressed tar layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip-compressed tar layer.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd-compressed tar layer.
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (schema 2).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip-compressed tar layer.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker schema 1 signed manifest: recognised only so that it can be refused.
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// RFC 6838 §4.2: type and subtype names are at most 127 characters.
const MAX_NAME: usize = 127;

fn is_restricted_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b)
}

fn is_bare_value_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b',' | b';' | b'\\')
}

fn media_type_error(input: &str, position: usize, reason: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::MediaType, input, position, reason)
}

/// A media type such as `application/vnd.oci.image.manifest.v1+json`, with parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaType {
    /// `type/subtype`, lower-case.
    essence: String,
    /// Where the `/` is in `essence`.
    slash: usize,
    params: Vec<(String, String)>,
}

impl MediaType {
    /// `type/subtype`, lower-case, without parameters: what to compare against
    /// the constants of this module.
    pub fn essence(&self) -> &str {
        &self.essence
    }

    /// The top-level type (`application`), or `*` in a range.
    pub fn type_name(&self) -> &str {
        slice(&self.essence, 0, self.slash)
    }

    /// The subtype (`vnd.oci.image.manifest.v1+json`), or `*` in a range.
    pub fn subtype(&self) -> &str {
        slice(&self.essence, self.slash + 1, self.essence.len())
    }

    /// The structured syntax suffix (RFC 6838 §4.2.8): `json` for `...+json`.
    pub fn suffix(&self) -> Option<&str> {
        self.subtype().rsplit_once('+').map(|(_, s)| s)
    }

    /// The parameters in order, names lower-case, values unescaped.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The value of parameter `name` (case-insensitive), the first if repeated.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a range (`*/*` or `type/*`) rather than one type.
    pub fn is_range(&self) -> bool {
        self.subtype() == "*"
    }

    /// Whether this media type or range covers `other` (RFC 9110 §12.5.1),
    /// comparing essences only.
    pub fn matches(&self, other: &MediaType) -> bool {
        match (self.type_name(), self.subtype()) {
            ("*", _) => true,
            (t, "*") => t == other.type_name(),
            _ => self.essence == other.essence,
        }
    }

    /// The `q` weight in thousandths (RFC 9110 §12.4.2): 1000 when absent, and
    /// also when malformed (the lenient reading: the sender did want the type).
    pub fn quality(&self) -> u16 {
        self.param("q").and_then(parse_qvalue).unwrap_or(1000)
    }

    /// Parses a media type; see the module documentation for the grammar.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let b = s.as_bytes();
        let start = skip_ows(b, 0);
        let t_end = name_end(s, start, "type", "application")?;
        if b.get(t_end) != Some(&b'/') {
            return Err(media_type_error(
                s,
                t_end,
                "expected `/` between type and subtype, as in `application/json`",
            ));
        }
        let s_end = name_end(s, t_end + 1, "subtype", "json")?;
        let type_name = slice(s, start, t_end);
        let subtype = slice(s, t_end + 1, s_end);
        if type_name == "*" && subtype != "*" {
            return Err(media_type_error(
                s,
                t_end + 1,
                "a wildcard type needs a wildcard subtype: `*/*`",
            ));
        }
        let mut params = Vec::new();
        let mut j = s_end;
        loop {
            let k = skip_ows(b, j);
            match b.get(k) {
                None => break,
                Some(b';') => {}
                Some(_) => {
                    return Err(media_type_error(
                        s,
                        k,
                        "expected `;` before a parameter, as in `text/plain; charset=utf-8`",
                    ));
                }
            }
            let p = skip_ows(b, k + 1);
            let n_end = scan_while(b, p, is_tchar);
            if n_end == p {
                if matches!(b.get(p), None | Some(b';')) {
                    j = p;
                    continue;
                }
                return Err(media_type_error(
                    s,
                    p,
                    "expected a parameter name (a token)",
                ));
            }
            let name = slice(s, p, n_end).to_ascii_lowercase();
            let eq = skip_ows(b, n_end);
            if b.get(eq) != Some(&b'=') {
                return Err(media_type_error(
                    s,
                    eq,
                    format!(
                        "expected `=` and a value after parameter `{name}`",
                        name = Short(&name)
                    ),
                ));
            }
            let v = skip_ows(b, eq + 1);
            let (value, after) = match b.get(v) {
                Some(b'"') => {
                    parse_quoted(s, v).map_err(|(at, why)| media_type_error(s, at, why))?
                }
                Some(&c) if is_bare_value_byte(c) => {
                    let e = scan_while(b, v, is_bare_value_byte);
                    (slice(s, v, e).to_owned(), e)
                }
                _ => {
                    return Err(media_type_error(
                        s,
                        v,
                        format!(
                            "parameter `{name}` has no value: expected a token or a quoted string",
                            name = Short(&name)
                        ),
                    ));
                }
            };
            params.push((name, value));
            j = after;
        }
        Ok(Self {
            essence: format!("{type_name}/{subtype}").to_ascii_lowercase(),
            slash: type_name.len(),
            params,
        })
    }
}

/// The end of the restricted-name (or `*`) starting at `i`.
fn name_end(s: &str, i: usize, what: &str, example: &str) -> Result<usize, ParseError> {
    let b = s.as_bytes();
    if b.get(i) == Some(&b'*') {
        return Ok(i + 1);
    }
    if !b.get(i).is_some_and(u8::is_ascii_alphanumeric) {
        return Err(media_type_error(
            s,
            i,
            format!("expected a {what} such as `{example}`, starting with a letter or digit"),
        ));
    }
    let end = scan_while(b, i, is_restricted_char);
    if end - i > MAX_NAME {
        return Err(media_type_error(
            s,
            i + MAX_NAME,
            format!("a {what} is at most {MAX_NAME} characters (RFC 6838 §4.2)"),
        ));
    }
    Ok(end)
}

/// `0`, `0.5`, `0.125`, `1`, `1.000` as thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match int {
        "0" => {
            let padded = format!("{frac:0<3}");
            padded.parse().ok()
        }
        "1" if frac.bytes().all(|b| b == b'0') => Some(1000),
        _ => None,
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.essence)?;
        for (name, value) in &self.params {
            write!(f, "; {name}=")?;
            if !value.is_empty() && value.bytes().all(is_tchar) {
                f.write_str(value)?;
            } else {
                write_quoted(f, value)?;
            }
        }
        Ok(())
    }
}

impl FromStr for MediaType {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(D::Error::custom)
    }
}

/// Which kind of manifest a media type announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// [`OCI_IMAGE_MANIFEST`].
    OciManifest,
    /// [`OCI_IMAGE_INDEX`].
    OciIndex,
    /// [`DOCKER_MANIFEST_V2`].
    DockerManifest,
    /// [`DOCKER_MANIFEST_LIST`].
    DockerManifestList,
    /// Anything else (including Docker schema 1); the registry decides what to refuse.
    Artifact,
}

impl ManifestKind {
    /// The kind announced by `media_type` (its essence; parameters are ignored).
    pub fn of(media_type: &MediaType) -> ManifestKind {
        match media_type.essence() {
            OCI_IMAGE_MANIFEST => Self::OciManifest,
            OCI_IMAGE_INDEX => Self::OciIndex,
            DOCKER_MANIFEST_V2 => Self::DockerManifest,
            DOCKER_MANIFEST_LIST => Self::DockerManifestList,
            _ => Self::Artifact,
        }
    }

    /// Whether manifests of this kind list other manifests (index or list).
    pub fn is_index(self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerManifestList)
    }

    /// The media type of this kind; `None` for [`ManifestKind::Artifact`].
    pub fn media_type(self) -> Option<&'static str> {
        match self {
            Self::OciManifest => Some(OCI_IMAGE_MANIFEST),
            Self::OciIndex => Some(OCI_IMAGE_INDEX),
            Self::DockerManifest => Some(DOCKER_MANIFEST_V2),
            Self::DockerManifestList => Some(DOCKER_MANIFEST_LIST),
            Self::Artifact => None,
        }
    }
}

/// The media ranges of an `Accept` header value (RFC 9110 §12.5.1), in order,
/// parameters (`q=`) kept. Entries that do not parse are skipped: a client's
/// odd entry must not spoil content negotiation. Commas inside quoted
/// parameter values do not split entries.
pub fn parse_accept(value: &str) -> Vec<MediaType> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                out.extend(MediaType::parse(slice(value, start, i)).ok());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(MediaType::parse(slice(value, start, value.len())).ok());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mt(s: &str) -> MediaType {
        MediaType::parse(s).unwrap()
    }

    const ALL: [&str; 12] = [
        OCI_IMAGE_MANIFEST,
        OCI_IMAGE_INDEX,
        OCI_IMAGE_CONFIG,
        OCI_EMPTY,
        OCI_LAYER_TAR,
        OCI_LAYER_TAR_GZIP,
        OCI_LAYER_TAR_ZSTD,
        DOCKER_MANIFEST_V2,
        DOCKER_MANIFEST_LIST,
        DOCKER_CONFIG,
        DOCKER_LAYER_TAR_GZIP,
        DOCKER_MANIFEST_V1_SIGNED,
    ];

    #[test]
    fn constants_parse_and_print_unchanged() {
        for c in ALL {
            let m = mt(c);
            assert_eq!(m.to_string(), c);
            assert_eq!(m.essence(), c);
            assert!(m.params().is_empty());
        }
        let m = mt(OCI_LAYER_TAR_ZSTD);
        assert_eq!(
            (m.type_name(), m.subtype(), m.suffix()),
            (
                "application",
                "vnd.oci.image.layer.v1.tar+zstd",
                Some("zstd")
            )
        );
        assert_eq!(mt(OCI_LAYER_TAR).suffix(), None);
    }

    #[test]
    fn normalises_case_and_keeps_params() {
        let m = mt("Application/Vnd.OCI.Image.Manifest.v1+JSON");
        assert_eq!(m.essence(), OCI_IMAGE_MANIFEST);
        assert_eq!(ManifestKind::of(&m), ManifestKind::OciManifest);
        let m = mt(r#" text/plain ;Charset="UTF-8";; format = flowed; title="a \"b\"; c" "#);
        assert_eq!(m.essence(), "text/plain");
        assert_eq!(m.param("charset"), Some("UTF-8"));
        assert_eq!(m.param("FORMAT"), Some("flowed"));
        assert_eq!(m.param("title"), Some(r#"a "b"; c"#));
        assert_eq!(
            m.to_string(),
            r#"text/plain; charset=UTF-8; format=flowed; title="a \"b\"; c""#
        );
        assert_eq!(
            mt("application/vnd.oci.image.manifest.v1+json; artifactType=\"\"").to_string(),
            "application/vnd.oci.image.manifest.v1+json; artifacttype=\"\""
        );
        assert_eq!(
            mt("a/b;profile=http://x/y").to_string(),
            r#"a/b; profile="http://x/y""#
        );
        let json = serde_json::to_string(&mt("A/B; q=0.5")).unwrap();
        assert_eq!(json, r#""a/b; q=0.5""#);
        assert_eq!(
            serde_json::from_str::<MediaType>(&json).unwrap(),
            mt("a/b;q=0.5")
        );
        assert!(serde_json::from_str::<MediaType>(r#""nope""#).is_err());
    }

    #[test]
    fn errors_say_where_and_why() {
        let long = format!("application/{}", "x".repeat(128));
        for (s, at, why) in [
            ("", 0, "expected a type such as `application`"),
            ("application", 11, "expected `/`"),
            ("application/", 12, "expected a subtype"),
            ("-app/json", 0, "expected a type"),
            ("*/json", 2, "a wildcard type needs"),
            ("text/plain charset=x", 11, "expected `;`"),
            ("text/plain; charset", 19, "expected `=`"),
            (
                "text/plain; charset=",
                20,
                "parameter `charset` has no value",
            ),
            ("text/plain; =x", 12, "expected a parameter name"),
            ("text/plain; a=\"x", 16, "unterminated quoted string"),
            ("text/pl@in", 7, "expected `;`"),
            (long.as_str(), 139, "a subtype is at most 127 characters"),
        ] {
            let e = MediaType::parse(s).unwrap_err();
            assert_eq!(e.kind(), ParseErrorKind::MediaType, "{s}");
            assert_eq!(e.position(), at, "{s}");
            assert!(e.reason().starts_with(why), "{s}: {}", e.reason());
        }
        assert!(MediaType::parse(&format!("application/{}", "x".repeat(127))).is_ok());
    }

    #[test]
    fn manifest_kinds() {
        for (t, k, index) in [
            (OCI_IMAGE_MANIFEST, ManifestKind::OciManifest, false),
            (OCI_IMAGE_INDEX, ManifestKind::OciIndex, true),
            (DOCKER_MANIFEST_V2, ManifestKind::DockerManifest, false),
            (DOCKER_MANIFEST_LIST, ManifestKind::DockerManifestList, true),
        ] {
            assert_eq!(ManifestKind::of(&mt(t)), k);
            assert_eq!(k.is_index(), index);
            assert_eq!(k.media_type(), Some(t));
        }
        for t in [
            DOCKER_MANIFEST_V1_SIGNED,
            OCI_EMPTY,
            "application/vnd.example+json",
        ] {
            assert_eq!(ManifestKind::of(&mt(t)), ManifestKind::Artifact);
        }
        assert_eq!(ManifestKind::Artifact.media_type(), None);
        let with_charset = mt("application/vnd.oci.image.index.v1+json; charset=utf-8");
        assert!(ManifestKind::of(&with_charset).is_index());
    }

    #[test]
    fn accept_as_docker_sends_it() {
        let v = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v1+prettyjws, application/json";
        let got: Vec<String> = parse_accept(v).iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                DOCKER_MANIFEST_V2,
                DOCKER_MANIFEST_LIST,
                OCI_IMAGE_INDEX,
                OCI_IMAGE_MANIFEST,
                DOCKER_MANIFEST_V1_SIGNED,
                "application/json"
            ]
        );
        let a = parse_accept(r#"text/*;q=0.3, garbage, a/b; x="1,2", */*; q=0.1,,"#);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].quality(), 300);
        assert!(a[0].is_range() && a[0].matches(&mt("text/html")) && !a[0].matches(&mt("a/b")));
        assert_eq!(a[1].param("x"), Some("1,2"));
        assert_eq!(a[1].quality(), 1000);
        assert!(a[2].matches(&mt(OCI_IMAGE_INDEX)));
        assert_eq!(a[2].quality(), 100);
        assert!(mt(OCI_IMAGE_INDEX).matches(&mt("application/vnd.oci.image.index.v1+json; x=y")));
        assert!(parse_accept("").is_empty());
        for (q, w) in [
            ("0", 0),
            ("0.125", 125),
            ("1", 1000),
            ("1.000", 1000),
            ("0.5", 500),
            ("2", 1000),
            ("0.1234", 1000),
            ("1.5", 1000),
        ] {
            assert_eq!(mt(&format!("a/b; q={q}")).quality(), w, "{q}");
        }
    }

    fn media_type_string() -> impl Strategy<Value = String> {
        (
            "[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,20}",
            "[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,30}",
            prop::collection::vec(
                (
                    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}",
                    "[\\t\\x20-\\x7eé中]{0,12}",
                    "[ \\t]{0,2}",
                ),
                0..4,
            ),
        )
            .prop_map(|(t, st, ps)| {
                let mut s = format!("{t}/{st}");
                for (n, v, ws) in ps {
                    let mut quoted = String::new();
                    write_quoted(&mut quoted, &v).unwrap();
                    s.push_str(&format!("{ws};{ws}{n}={quoted}"));
                }
                s
            })
    }

    proptest! {
        #[test]
        fn round_trip_and_canonical(s in media_type_string()) {
            let m = MediaType::parse(&s).unwrap();
            let printed = m.to_string();
            let again = MediaType::parse(&printed).unwrap();
            prop_assert_eq!(&again, &m);
            prop_assert_eq!(&again.to_string(), &printed);
            prop_assert_eq!(parse_accept(&format!("{printed}, {printed}")), vec![m.clone(), m]);
        }

        #[test]
        fn never_panics(s in any::<String>(), h in "[a-z/*;=,\" \\\\.+]{0,40}") {
            let _ = MediaType::parse(&s).map(|m| (m.quality(), m.suffix().map(str::len)));
            let _ = MediaType::parse(&h).map(|m| ManifestKind::of(&m));
            let _ = parse_accept(&s);
            let _ = parse_accept(&h);
        }
    }
}
