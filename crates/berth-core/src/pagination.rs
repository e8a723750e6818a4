//! Pagination of tag and catalog listings: the `n` / `last` query parameters
//! (OCI distribution-spec v1.1, "Listing Tags" and the `_catalog` extension)
//! and the `Link` header that points at the next page (RFC 8288).
//!
//! Query grammar (`application/x-www-form-urlencoded`, as Go's `url.Query`
//! reads it; `+` is a space, `%XX` is decoded, other parameters are ignored):
//!
//! ```text
//! query = [ "?" ] pair *( "&" pair )
//! pair  = name [ "=" value ]
//! n     = 1*DIGIT            ; 0 ..= 4294967295, at most once
//! last  = *pchar             ; empty means absent, at most once
//! ```
//!
//! `Link` grammar (RFC 8288 §3, OWS/BWS and `#rule` from RFC 9110 §5.6):
//!
//! ```text
//! Link       = #link-value
//! link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
//! link-param = token BWS [ "=" BWS ( token / quoted-string ) ]
//! ```
//!
//! The target is kept verbatim (clients must follow it as sent, percent-encoding
//! untouched); any visible character but `<` and `>` is accepted in it. Unquoted
//! values are read leniently (`type=text/html` is common). Parameter names are
//! case-insensitive and stored lower-case; `rel` is a space-separated list of
//! relation types, compared case-insensitively (RFC 8288 §3.3).

use std::fmt;
use std::str::FromStr;

use percent_encoding::{
    AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode,
};

use crate::error::{ParseError, ParseErrorKind};
use crate::http_syntax::{
    Short, is_quotable, is_tchar, parse_quoted, scan_while, skip_ows, skip_separators, slice,
    write_quoted,
};

/// Everything but RFC 3986 unreserved characters is encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What [`Link::next`] must encode so that the target fits between `<` and `>`.
const NOT_IN_TARGET: &AsciiSet = &CONTROLS.add(b' ').add(b'<').add(b'>');

const N_REASON: &str = "`n` must be a whole number from 0 to 4294967295";

fn pagination_error(input: &str, position: usize, reason: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::Pagination, input, position, reason)
}

/// The page a listing request asks for: at most `n` entries after `last`.
///
/// Whether `n` is clamped or refused is the registry's decision, not made here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Pagination {
    n: Option<u32>,
    last: Option<String>,
}

impl Pagination {
    /// A page request; an empty `last` means no `last`.
    pub fn new(n: Option<u32>, last: Option<String>) -> Self {
        Self {
            n,
            last: last.filter(|l| !l.is_empty()),
        }
    }

    /// Reads `n` and `last` from a raw URL query string (a leading `?` is allowed).
    pub fn from_query(query: &str) -> Result<Self, ParseError> {
        let mut out = Self::default();
        let mut seen_last = false;
        let mut pos = usize::from(query.starts_with('?'));
        for pair in slice(query, pos, query.len()).split('&') {
            let start = pos;
            pos += pair.len() + 1;
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let value_at = start + raw_name.len() + 1;
            match decode(raw_name).as_deref() {
                Ok("n") => {
                    if out.n.is_some() {
                        return Err(pagination_error(
                            query,
                            start,
                            "`n` is given more than once",
                        ));
                    }
                    let digits = decode(raw_value)
                        .map_err(|_| pagination_error(query, value_at, N_REASON))?;
                    let n = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| digits.parse::<u32>().ok())
                        .flatten()
                        .ok_or_else(|| pagination_error(query, value_at, N_REASON))?;
                    out.n = Some(n);
                }
                Ok("last") => {
                    if seen_last {
                        return Err(pagination_error(
                            query,
                            start,
                            "`last` is given more than once",
                        ));
                    }
                    seen_last = true;
                    let last = decode(raw_value).map_err(|_| {
                        pagination_error(
                            query,
                            value_at,
                            "`last` is not UTF-8 once percent-decoded",
                        )
                    })?;
                    out.last = Some(last).filter(|l| !l.is_empty());
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The most entries asked for.
    pub fn n(&self) -> Option<u32> {
        self.n
    }

    /// The entry to list after (exclusive).
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// `n=..&last=..`, percent-encoded, omitting absent ones (`""` when both are).
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.n {
            parts.push(format!("n={n}"));
        }
        if let Some(last) = &self.last {
            parts.push(format!("last={}", utf8_percent_encode(last, QUERY_VALUE)));
        }
        parts.join("&")
    }
}

/// Form-decodes one query component: `+` is a space, then `%XX` escapes.
fn decode(raw: &str) -> Result<String, std::str::Utf8Error> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
}

impl fmt::Display for Pagination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_query())
    }
}

impl FromStr for Pagination {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::from_query(s)
    }
}

fn link_error(input: &str, position: usize, reason: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::Link, input, position, reason)
}

/// A byte a link target may hold: visible ASCII but `<` `>`, or any non-ASCII.
fn is_target_byte(b: u8) -> bool {
    b >= 0x80 || ((0x21..=0x7e).contains(&b) && b != b'<' && b != b'>')
}

/// A character an unquoted parameter value may hold (the lenient reading).
fn is_bare_value_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b',' | b';' | b'\\')
}

/// One link-value of a `Link` header: a target and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    target: String,
    params: Vec<(String, String)>,
}

impl Link {
    /// `<target>; rel="next"`: what a registry sends when another page follows.
    ///
    /// Spaces, control characters, `<` and `>` (which cannot appear between the
    /// angle brackets) and non-ASCII characters are percent-encoded.
    pub fn next(target: &str) -> Self {
        Self {
            target: utf8_percent_encode(target, NOT_IN_TARGET).to_string(),
            params: vec![("rel".to_owned(), "next".to_owned())],
        }
    }

    /// A link with the given parameters, validated: the target must fit between
    /// `<` and `>`, names must be tokens (stored lower-case), values free of
    /// control characters other than tab.
    pub fn new<I, K, V>(target: &str, params: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let end = scan_while(target.as_bytes(), 0, is_target_byte);
        if end < target.len() {
            return Err(link_error(
                target,
                end,
                "a link target may not contain spaces, control characters, `<` or `>`",
            ));
        }
        let mut out = Vec::new();
        for (name, value) in params {
            let (name, value) = (name.as_ref(), value.as_ref());
            let end = scan_while(name.as_bytes(), 0, is_tchar);
            if name.is_empty() || end < name.len() {
                return Err(link_error(
                    name,
                    end,
                    "a link parameter name must be a token",
                ));
            }
            if let Some(at) = value.find(|c| !is_quotable(c)) {
                let why = format!(
                    "the value of `{}` contains a control character",
                    Short(name)
                );
                return Err(link_error(value, at, why));
            }
            out.push((name.to_ascii_lowercase(), value.to_owned()));
        }
        Ok(Self {
            target: target.to_owned(),
            params: out,
        })
    }

    /// Parses one `Link` header value into its link-values, in order.
    pub fn parse_all(value: &str) -> Result<Vec<Link>, ParseError> {
        let b = value.as_bytes();
        let mut out = Vec::new();
        let mut i = skip_separators(b, 0);
        while i < b.len() {
            let (link, end) = parse_link(value, i)?;
            out.push(link);
            i = skip_separators(b, end);
        }
        Ok(out)
    }

    /// The target URI reference, exactly as sent.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The parameters in order, names lower-case, values unescaped (`""` for a
    /// parameter given without a value).
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

    /// The `rel` parameter; RFC 8288 §3.3 says to ignore any later occurrence.
    pub fn rel(&self) -> Option<&str> {
        self.param("rel")
    }

    /// Whether `rel` lists `relation` (case-insensitively; `rel` may hold several).
    pub fn has_rel(&self, relation: &str) -> bool {
        self.rel().is_some_and(|r| {
            r.split_ascii_whitespace()
                .any(|t| t.eq_ignore_ascii_case(relation))
        })
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.target)?;
        for (name, value) in &self.params {
            write!(f, "; {name}=")?;
            write_quoted(f, value)?;
        }
        Ok(())
    }
}

impl FromStr for Link {
    type Err = ParseError;

    /// Parses a header value holding exactly one link-value.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut all = Self::parse_all(s)?;
        match all.pop() {
            Some(link) if all.is_empty() => Ok(link),
            _ => Err(link_error(
                s,
                0,
                "expected exactly one link such as `</v2/_catalog?n=10>; rel=\"next\"`",
            )),
        }
    }
}

/// The target of the first link, across `Link` header lines, whose `rel` lists
/// `next`. Lines are parsed in order until one is found.
pub fn next_link<'a, I: IntoIterator<Item = &'a str>>(
    header_values: I,
) -> Result<Option<String>, ParseError> {
    for value in header_values {
        if let Some(link) = Link::parse_all(value)?
            .into_iter()
            .find(|l| l.has_rel("next"))
        {
            return Ok(Some(link.target));
        }
    }
    Ok(None)
}

/// Parses the link-value starting at `i`; returns it and the index after it.
fn parse_link(input: &str, i: usize) -> Result<(Link, usize), ParseError> {
    let b = input.as_bytes();
    if b.get(i) != Some(&b'<') {
        return Err(link_error(
            input,
            i,
            "expected `<` opening a link target, as in `</v2/_catalog?n=10>; rel=\"next\"`",
        ));
    }
    let close = scan_while(b, i + 1, is_target_byte);
    match b.get(close) {
        Some(b'>') => {}
        None => {
            return Err(link_error(
                input,
                close,
                format!("unterminated link target opened at byte {i}: expected `>`"),
            ));
        }
        Some(_) => {
            return Err(link_error(
                input,
                close,
                "a link target may not contain spaces, control characters or `<`",
            ));
        }
    }
    let target = slice(input, i + 1, close).to_owned();
    let mut params = Vec::new();
    let mut j = close + 1;
    loop {
        let k = skip_ows(b, j);
        match b.get(k) {
            None | Some(b',') => return Ok((Link { target, params }, k)),
            Some(b';') => {}
            Some(_) => {
                return Err(link_error(
                    input,
                    k,
                    "expected `;` before a link parameter or `,` before the next link",
                ));
            }
        }
        let p = skip_ows(b, k + 1);
        let n_end = scan_while(b, p, is_tchar);
        if n_end == p {
            // A stray `;` (empty parameter): tolerated, as browsers do.
            if matches!(b.get(p), None | Some(b';' | b',')) {
                j = p;
                continue;
            }
            return Err(link_error(
                input,
                p,
                "expected a link parameter name such as `rel`",
            ));
        }
        let name = slice(input, p, n_end).to_ascii_lowercase();
        let eq = skip_ows(b, n_end);
        if b.get(eq) != Some(&b'=') {
            // `; name` without a value is allowed by RFC 8288 §3.
            params.push((name, String::new()));
            j = n_end;
            continue;
        }
        let v = skip_ows(b, eq + 1);
        let (value, after) = match b.get(v) {
            Some(b'"') => parse_quoted(input, v).map_err(|(at, why)| link_error(input, at, why))?,
            Some(&c) if is_bare_value_byte(c) => {
                let e = scan_while(b, v, is_bare_value_byte);
                (slice(input, v, e).to_owned(), e)
            }
            _ => {
                return Err(link_error(
                    input,
                    v,
                    format!(
                        "link parameter `{name}` has no value: expected a token or a quoted string after `=`",
                        name = Short(&name)
                    ),
                ));
            }
        };
        params.push((name, value));
        j = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn page(q: &str) -> Pagination {
        Pagination::from_query(q).unwrap()
    }

    #[test]
    fn reads_n_and_last() {
        let p = page("n=2&last=b");
        assert_eq!((p.n(), p.last()), (Some(2), Some("b")));
        assert_eq!(p.to_query(), "n=2&last=b");
        let p = page("?last=0b2ce%2Fcoreutils&n=0&foo=bar&&x");
        assert_eq!((p.n(), p.last()), (Some(0), Some("0b2ce/coreutils")));
        assert_eq!(p.to_query(), "n=0&last=0b2ce%2Fcoreutils");
        assert_eq!(page("last=&n=10").last(), None);
        assert_eq!(page("last=a+b%20c").last(), Some("a b c"));
        assert_eq!(page("n=4294967295").n(), Some(u32::MAX));
        assert_eq!(page("n=007").n(), Some(7));
        assert_eq!(page("%6E=3").n(), Some(3));
        assert_eq!(page(""), Pagination::default());
        assert_eq!(Pagination::default().to_query(), "");
        assert_eq!(
            Pagination::new(None, Some(String::new())),
            Pagination::default()
        );
        assert_eq!(Pagination::new(Some(5), None).to_string(), "n=5");
        assert_eq!("n=1".parse::<Pagination>().unwrap().n(), Some(1));
    }

    #[test]
    fn refuses_bad_n_and_repeats() {
        for (q, at) in [
            ("n=-1", 2),
            ("n=", 2),
            ("n", 2),
            ("n=+5", 2),
            ("n=1.5", 2),
            ("last=a&n=4294967296", 9),
            ("n=99999999999999999999999", 2),
            ("n=%FF", 2),
        ] {
            let e = Pagination::from_query(q).unwrap_err();
            assert_eq!(e.kind(), ParseErrorKind::Pagination, "{q}");
            assert_eq!(e.position(), at, "{q}");
            assert_eq!(e.reason(), N_REASON);
        }
        let e = Pagination::from_query("n=1&n=2").unwrap_err();
        assert_eq!(
            (e.position(), e.reason()),
            (4, "`n` is given more than once")
        );
        let e = Pagination::from_query("last=a&last=b").unwrap_err();
        assert_eq!(
            (e.position(), e.reason()),
            (7, "`last` is given more than once")
        );
        let e = Pagination::from_query("last=%C3").unwrap_err();
        assert_eq!(e.position(), 5);
    }

    fn links(s: &str) -> Vec<Link> {
        Link::parse_all(s).unwrap()
    }

    #[test]
    fn distribution_and_ghcr_links() {
        let l = links(r#"</v2/_catalog?last=b&n=2>; rel="next""#);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].target(), "/v2/_catalog?last=b&n=2");
        assert_eq!(l[0].rel(), Some("next"));
        assert_eq!(l[0].to_string(), r#"</v2/_catalog?last=b&n=2>; rel="next""#);

        let s = r#"</v2/_catalog?last=0b2ce%2Fcoreutils&n=0>; rel="next""#;
        assert_eq!(
            next_link([s]).unwrap().as_deref(),
            Some("/v2/_catalog?last=0b2ce%2Fcoreutils&n=0")
        );
        assert_eq!(s.parse::<Link>().unwrap().to_string(), s);
    }

    #[test]
    fn link_variants() {
        let l = links("</a>;rel=next");
        assert_eq!(l[0].to_string(), r#"</a>; rel="next""#);
        let l =
            links(r#"<https://x/p?a=1>; rel="prev", </v2/t?n=1,2>; REL="Next"; type=text/html"#);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].target(), "/v2/t?n=1,2");
        assert!(l[1].has_rel("next") && !l[0].has_rel("next"));
        assert_eq!(l[1].param("type"), Some("text/html"));
        assert_eq!(
            next_link(["</p>; rel=prev", "</n>; rel=\"start NEXT\""])
                .unwrap()
                .as_deref(),
            Some("/n")
        );
        assert_eq!(next_link(["</p>; rel=prev"]).unwrap(), None);
        assert_eq!(next_link(Vec::<&str>::new()).unwrap(), None);
        let l = links(r#"</x>; title="a, \"b\"; c"; anchor; rel=next; rel=prev;"#);
        assert_eq!(l[0].param("title"), Some(r#"a, "b"; c"#));
        assert_eq!(l[0].param("anchor"), Some(""));
        assert_eq!(l[0].rel(), Some("next"));
        assert!(links(" , ").is_empty());
        assert_eq!(
            Link::next("/v2/_catalog?n=2&last=b").to_string(),
            r#"</v2/_catalog?n=2&last=b>; rel="next""#
        );
        assert_eq!(Link::next("/a b>é").target(), "/a%20b%3E%C3%A9");
        assert_eq!(
            Link::new("/x", [("Rel", "next")]).unwrap(),
            Link::next("/x")
        );
        assert_eq!(
            Link::new("/x y", [("rel", "next")]).unwrap_err().position(),
            2
        );
        assert!(Link::new("/x", [("r l", "next")]).is_err());
        assert!(Link::new("/x", [("rel", "a\nb")]).is_err());
    }

    #[test]
    fn link_errors() {
        for (s, at, why) in [
            ("/v2/x; rel=next", 0, "expected `<`"),
            (
                "</v2/x;rel=next",
                15,
                "unterminated link target opened at byte 0",
            ),
            ("</v2/x; rel=next", 7, "a link target may not contain"),
            ("</v2/ x>", 5, "a link target may not contain"),
            ("</x> rel=next", 5, "expected `;`"),
            ("</x>; rel=", 10, "link parameter `rel` has no value"),
            ("</x>; rel=\"next", 15, "unterminated quoted string"),
            ("</x>; =next", 6, "expected a link parameter name"),
        ] {
            let e = Link::parse_all(s).unwrap_err();
            assert_eq!(e.kind(), ParseErrorKind::Link, "{s}");
            assert_eq!(e.position(), at, "{s}");
            assert!(e.reason().starts_with(why), "{s}: {}", e.reason());
        }
        assert!(next_link(["</x"]).is_err());
        assert!("</a>, </b>".parse::<Link>().is_err());
    }

    fn link() -> impl Strategy<Value = Link> {
        (
            "[!-;=?-~é]{0,20}",
            prop::collection::vec(
                ("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,6}", "[\\t\\x20-\\x7eé]{0,12}"),
                0..4,
            ),
        )
            .prop_map(|(t, ps)| Link::new(&t, ps).unwrap())
    }

    proptest! {
        #[test]
        fn pagination_round_trip(n in any::<Option<u32>>(), last in any::<Option<String>>()) {
            let p = Pagination::new(n, last);
            let q = p.to_query();
            prop_assert_eq!(Pagination::from_query(&q).unwrap(), p);
        }

        #[test]
        fn pagination_print_is_canonical(q in "(&|n=[0-9]{1,3}|last=[a-z%2F+._-]{0,6}|x=[^&]{0,3}){0,4}") {
            if let Ok(p) = Pagination::from_query(&q) {
                let printed = p.to_query();
                let again = Pagination::from_query(&printed).unwrap();
                prop_assert_eq!(&again, &p);
                prop_assert_eq!(again.to_query(), printed);
            }
        }

        #[test]
        fn link_round_trip(ls in prop::collection::vec(link(), 0..4)) {
            let printed = ls.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            prop_assert_eq!(Link::parse_all(&printed).unwrap(), ls);
        }

        #[test]
        fn link_print_is_canonical(s in "(</[a-z?=&,]{0,6}>( ?; ?[A-Za-z]{1,4}( ?= ?([a-z/]{1,4}|\"[ ,;a-z]{0,4}\"))?){0,3} ?, ?){1,3}") {
            let parsed = Link::parse_all(&s).unwrap();
            let printed = parsed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let again = Link::parse_all(&printed).unwrap();
            prop_assert_eq!(&again, &parsed);
            prop_assert_eq!(again.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "), printed);
        }

        #[test]
        fn never_panics(s in any::<String>(), h in "[<>;=,\" a-z/%&?\\\\]{0,40}") {
            let _ = Pagination::from_query(&s);
            let _ = Pagination::from_query(&h);
            let _ = Link::parse_all(&s);
            let _ = Link::parse_all(&h);
            let _ = next_link([s.as_str(), h.as_str()]);
        }
    }
}
