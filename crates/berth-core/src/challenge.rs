//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1, formerly RFC 7235 §4.1),
//! carrying the Bearer parameters of RFC 6750 §3 and the Docker token spec
//! (`realm`, `service`, `scope`, `error`).
//!
//! Grammar accepted, with OWS/BWS and `#rule` lists from RFC 9110 §5.6:
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-scheme      = token
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! Commas separate both parameters and challenges; a new challenge starts at a
//! list element whose first token is not followed by `=`. An unquoted value is
//! read leniently as any run of visible ASCII except `,`, `"` and `\`, because
//! real registries send `realm=http://host:8080/auth/token` (zot). Parameter
//! names are case-insensitive and stored lower-case; a repeated name is refused
//! (RFC 9110 §11.2: "MUST NOT occur more than once").

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::{ParseError, ParseErrorKind};
use crate::http_syntax::{
    Short, is_quotable, is_tchar, parse_quoted, scan_while, skip_ows, skip_separators, slice,
    write_quoted,
};

/// A `token68` character (RFC 9110 §11.2), trailing `=` excluded.
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

/// A character an unquoted parameter value may hold (the lenient reading).
fn is_bare_value_char(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b',' | b'\\')
}

/// Checks that `s` is a non-empty token; `what` names it in the error.
fn check_token(s: &str, what: &str) -> Result<(), ParseError> {
    let end = scan_while(s.as_bytes(), 0, is_tchar);
    let why = format!("{what} must be a non-empty token (letters, digits, !#$%&'*+-.^_`|~)");
    if s.is_empty() || end < s.len() {
        return fail(s, end, why);
    }
    Ok(())
}

fn challenge_error(input: &str, position: usize, reason: impl Into<String>) -> ParseError {
    ParseError::new(ParseErrorKind::Challenge, input, position, reason)
}

/// A token character lower-cased, anything else as `_`.
fn token_or_underscore(b: u8) -> char {
    char::from(if is_tchar(b) {
        b.to_ascii_lowercase()
    } else {
        b'_'
    })
}

/// `Bearer` and `Basic` in their usual spelling; any other scheme as given.
fn normalise_scheme(scheme: &str) -> String {
    if scheme.eq_ignore_ascii_case("bearer") {
        "Bearer".to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        "Basic".to_owned()
    } else {
        scheme.to_owned()
    }
}

/// One authentication challenge: a scheme with either a token68 or parameters.
///
/// Equality and hashing compare the scheme case-insensitively (RFC 9110 §11.1).
#[derive(Debug, Clone)]
pub struct Challenge {
    scheme: String,
    token68: Option<String>,
    params: Vec<(String, String)>,
}

impl PartialEq for Challenge {
    fn eq(&self, other: &Self) -> bool {
        self.scheme.eq_ignore_ascii_case(&other.scheme)
            && self.token68 == other.token68
            && self.params == other.params
    }
}

impl Eq for Challenge {}

impl Hash for Challenge {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.scheme.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        // 0xff never occurs in a token, so it separates the scheme from what follows.
        state.write_u8(0xff);
        self.token68.hash(state);
        self.params.hash(state);
    }
}

impl Challenge {
    /// A challenge with the given scheme and parameters, validated: the scheme and
    /// names must be tokens, names unique (case-insensitively), values free of
    /// control characters other than tab.
    pub fn new<I, K, V>(scheme: &str, params: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        check_token(scheme, "an authentication scheme")?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (name, value) in params {
            let (name, value) = (name.as_ref(), value.as_ref());
            check_token(name, "a parameter name")?;
            if let Some(at) = value.find(|c| !is_quotable(c)) {
                let why = format!(
                    "the value of `{}` contains a control character",
                    Short(name)
                );
                return fail(value, at, why);
            }
            let name = name.to_ascii_lowercase();
            if !seen.insert(name.clone()) {
                return fail(&name, 0, duplicate_reason(&name));
            }
            out.push((name, value.to_owned()));
        }
        Ok(Self {
            scheme: normalise_scheme(scheme),
            token68: None,
            params: out,
        })
    }

    /// A challenge carrying a token68 instead of parameters (`Negotiate abc`).
    /// Refused for Bearer, whose challenges carry only parameters (RFC 6750 §3).
    pub fn new_token68(scheme: &str, token68: &str) -> Result<Self, ParseError> {
        check_token(scheme, "an authentication scheme")?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return fail(
                scheme,
                0,
                "a Bearer challenge has parameters, not a token68",
            );
        }
        let b = token68.as_bytes();
        let end = scan_while(b, scan_while(b, 0, is_token68_char), |c| c == b'=');
        if end == 0 || end < b.len() || b.first() == Some(&b'=') {
            let why = "a token68 is letters, digits and -._~+/ then optional `=` padding";
            return fail(token68, end, why);
        }
        Ok(Self {
            scheme: normalise_scheme(scheme),
            token68: Some(token68.to_owned()),
            params: Vec::new(),
        })
    }

    /// `Bearer realm="<realm>",service="<service>"`: what a registry sends from
    /// `/v2/` (the Docker token-auth spec); add `scope` with [`Challenge::with_param`].
    pub fn bearer(realm: &str, service: &str) -> Self {
        Self::bare("Bearer")
            .with_param("realm", realm)
            .with_param("service", service)
    }

    /// `Basic realm="<realm>"` (RFC 7617), sent by the token endpoint for bad credentials.
    pub fn basic(realm: &str) -> Self {
        Self::bare("Basic").with_param("realm", realm)
    }

    fn bare(scheme: &str) -> Self {
        Self {
            scheme: scheme.to_owned(),
            token68: None,
            params: Vec::new(),
        }
    }

    /// Sets parameter `name` (replacing an earlier value of the same name).
    ///
    /// Never fails, so that literals read naturally; to keep the header valid,
    /// characters outside the token alphabet in `name` become `_`, control
    /// characters in `value` (which a quoted-string cannot carry, and which would
    /// allow header injection) become spaces, and a token68 is dropped (a
    /// challenge carries one or the other). Use [`Challenge::new`] to be told instead.
    pub fn with_param(mut self, name: &str, value: &str) -> Self {
        let mut name: String = name.bytes().map(token_or_underscore).collect();
        if name.is_empty() {
            name.push('_');
        }
        let value: String = value
            .chars()
            .map(|c| if is_quotable(c) { c } else { ' ' })
            .collect();
        self.token68 = None;
        match self.params.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.params.push((name, value)),
        }
        self
    }

    /// The scheme: `Bearer` or `Basic` normalised, any other as sent.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether this is a Bearer challenge (RFC 6750).
    pub fn is_bearer(&self) -> bool {
        self.scheme == "Bearer"
    }

    /// Whether this is a Basic challenge (RFC 7617).
    pub fn is_basic(&self) -> bool {
        self.scheme == "Basic"
    }

    /// The token68, for challenges that carry one instead of parameters.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// All parameters in order, names lower-case, values unescaped.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The value of parameter `name`, matched case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `realm`: for Bearer, the token endpoint URL.
    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }

    /// `service`: the value to pass as `service` to the token endpoint.
    pub fn service(&self) -> Option<&str> {
        self.param("service")
    }

    /// `scope`: `None` when absent, `Some("")` for `scope=""`. May hold several
    /// space-separated scopes; GHCR sends a placeholder here, so do not trust it blindly.
    pub fn scope(&self) -> Option<&str> {
        self.param("scope")
    }

    /// `error` (RFC 6750 §3.1): `invalid_request`, `invalid_token`, `insufficient_scope`.
    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }

    /// `error_description` (RFC 6750 §3): a human-readable explanation.
    pub fn error_description(&self) -> Option<&str> {
        self.param("error_description")
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        if let Some(t) = &self.token68 {
            return write!(f, " {t}");
        }
        for (i, (name, value)) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "," })?;
            f.write_str(name)?;
            f.write_str("=")?;
            write_quoted(f, value)?;
        }
        Ok(())
    }
}

impl FromStr for Challenge {
    type Err = ParseError;

    /// Parses a header value holding exactly one challenge.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut all = Challenges::parse(s)?.0;
        match (all.pop(), all.len()) {
            (Some(c), 0) => Ok(c),
            (None, _) => fail(s, 0, "expected a challenge such as `Bearer realm=\"...\"`"),
            _ => fail(s, 0, "expected one challenge, found several"),
        }
    }
}

/// Whether a `token BWS "="` (an auth-param) starts at `i`.
fn looks_like_param(b: &[u8], i: usize) -> bool {
    let end = scan_while(b, i, is_tchar);
    end > i && b.get(skip_ows(b, end)) == Some(&b'=')
}

fn duplicate_reason(name: &str) -> String {
    let name = Short(name);
    format!("parameter `{name}` appears twice in one challenge; RFC 9110 §11.2 forbids this")
}

/// Fails parsing `input` at byte `at`.
fn fail<T>(input: &str, at: usize, why: impl Into<String>) -> Result<T, ParseError> {
    Err(challenge_error(input, at, why))
}

/// Parses the challenge starting at `start` into `out`; returns the index just
/// after it (at a `,` or the end).
fn parse_challenge(
    input: &str,
    start: usize,
    out: &mut Vec<Challenge>,
) -> Result<usize, ParseError> {
    let b = input.as_bytes();
    let end = scan_while(b, start, is_tchar);
    if end == start {
        let why = "expected an authentication scheme (a token such as `Bearer`)";
        return fail(input, start, why);
    }
    let scheme = normalise_scheme(slice(input, start, end));
    let shown = Short(&scheme);
    let no_scheme = |at| {
        let why = format!("missing authentication scheme before parameter `{shown}`");
        fail(input, at, why)
    };
    match b.get(end) {
        None | Some(b',') => {
            out.push(Challenge::bare(&scheme));
            return Ok(end);
        }
        Some(b' ' | b'\t') => {}
        Some(b'=') => return no_scheme(end),
        Some(_) => {
            let why = format!("expected a space after the scheme `{shown}`");
            return fail(input, end, why);
        }
    }
    let q = skip_ows(b, end);
    let t_end = scan_while(b, q, is_token68_char);
    let eq_end = scan_while(b, t_end, |c| c == b'=');
    let after = skip_ows(b, eq_end);
    let next_is_param = looks_like_param(b, skip_separators(b, after));
    match b.get(q) {
        Some(b'=') => no_scheme(q),
        // `Scheme , a=b` has an empty first element in its parameter list.
        Some(b',') if next_is_param => parse_params(input, skip_separators(b, q), scheme, out),
        None | Some(b',') => {
            out.push(Challenge::bare(&scheme));
            Ok(q)
        }
        // A token68, unless parameters follow: then it was a parameter without a
        // value. Bearer challenges never carry a token68 (RFC 6750 §3).
        Some(_) if t_end > q && matches!(b.get(after), None | Some(b',')) => {
            if scheme == "Bearer" || next_is_param {
                let name = Short(slice(input, q, t_end));
                let why = format!("parameter `{name}` has no value: expected `{name}=<value>`");
                return fail(input, eq_end, why);
            }
            let token68 = Some(slice(input, q, eq_end).to_owned());
            out.push(Challenge {
                scheme,
                token68,
                params: Vec::new(),
            });
            Ok(after)
        }
        Some(_) => parse_params(input, q, scheme, out),
    }
}

/// Parses the `#auth-param` list starting at `i` (a token is known to start there).
fn parse_params(
    input: &str,
    mut i: usize,
    scheme: String,
    out: &mut Vec<Challenge>,
) -> Result<usize, ParseError> {
    let b = input.as_bytes();
    let mut params = Vec::new();
    let mut seen = HashSet::new();
    let end = loop {
        let n_end = scan_while(b, i, is_tchar);
        if n_end == i {
            let why = "expected a parameter name (a token such as `realm`)";
            return fail(input, i, why);
        }
        let name = slice(input, i, n_end).to_ascii_lowercase();
        let shown = Short(&name);
        let eq = skip_ows(b, n_end);
        if b.get(eq) != Some(&b'=') {
            let why = format!("expected `=` after parameter name `{shown}`");
            return fail(input, eq, why);
        }
        let v = skip_ows(b, eq + 1);
        let (value, after_value) = match b.get(v) {
            Some(b'"') => parse_quoted(input, v).or_else(|(at, why)| fail(input, at, why))?,
            Some(&c) if is_bare_value_char(c) => {
                let e = scan_while(b, v, is_bare_value_char);
                (slice(input, v, e).to_owned(), e)
            }
            None | Some(b',') => {
                let why = format!("parameter `{shown}` has no value after `=`");
                return fail(input, v, why);
            }
            Some(_) => {
                let why =
                    format!("bad character in the value of `{shown}`: expected a token or \"...\"");
                return fail(input, v, why);
            }
        };
        if !seen.insert(name.clone()) {
            return fail(input, i, duplicate_reason(&name));
        }
        let k = skip_ows(b, after_value);
        if !matches!(b.get(k), None | Some(b',')) {
            let why = format!("expected `,` or the end after the value of `{shown}`");
            return fail(input, k, why);
        }
        params.push((name, value));
        let r = skip_separators(b, k);
        if !looks_like_param(b, r) {
            break k;
        }
        i = r;
    };
    out.push(Challenge {
        scheme,
        token68: None,
        params,
    });
    Ok(end)
}

/// Every challenge of one or more `WWW-Authenticate` header lines, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Challenges(Vec<Challenge>);

impl Challenges {
    /// Parses one header value, which may hold several challenges.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        Self::parse_all([value])
    }

    /// Parses several header lines (a response may repeat `WWW-Authenticate`);
    /// positions in an error refer to the line that failed.
    pub fn parse_all<'a, I: IntoIterator<Item = &'a str>>(values: I) -> Result<Self, ParseError> {
        let mut out = Vec::new();
        for value in values {
            let b = value.as_bytes();
            let mut i = skip_separators(b, 0);
            while i < b.len() {
                i = parse_challenge(value, i, &mut out)?;
                i = skip_separators(b, i);
            }
        }
        Ok(Self(out))
    }

    /// The challenges in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Challenge> {
        self.0.iter()
    }

    /// How many challenges there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first Bearer challenge.
    pub fn bearer(&self) -> Option<&Challenge> {
        self.iter().find(|c| c.is_bearer())
    }

    /// The first Basic challenge.
    pub fn basic(&self) -> Option<&Challenge> {
        self.iter().find(|c| c.is_basic())
    }

    /// The one a registry client should answer: Bearer, else Basic, else the first.
    pub fn preferred(&self) -> Option<&Challenge> {
        self.bearer()
            .or_else(|| self.basic())
            .or_else(|| self.0.first())
    }
}

impl From<Vec<Challenge>> for Challenges {
    fn from(v: Vec<Challenge>) -> Self {
        Self(v)
    }
}

impl<'a> IntoIterator for &'a Challenges {
    type Item = &'a Challenge;
    type IntoIter = std::slice::Iter<'a, Challenge>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Challenges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl FromStr for Challenges {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(s: &str) -> Challenge {
        s.parse().unwrap()
    }

    fn pairs(c: &Challenge) -> Vec<(&str, &str)> {
        let p = c.params().iter();
        p.map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    #[test]
    fn real_registries() {
        let ghcr = r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull""#;
        let c = one(ghcr);
        assert!(c.is_bearer() && c.error().is_none());
        assert_eq!(c.realm(), Some("https://ghcr.io/token"));
        assert_eq!(c.service(), Some("ghcr.io"));
        assert_eq!(c.scope(), Some("repository:user/image:pull"));
        assert_eq!(c.to_string(), ghcr);

        let hub = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
        let c = one(hub);
        assert_eq!(
            pairs(&c),
            [
                ("realm", "https://auth.docker.io/token"),
                ("service", "registry.docker.io"),
                ("scope", "repository:library/alpine:pull")
            ]
        );
        assert_eq!(c.to_string(), hub);

        let c = one(r#"bearer realm=http://localhost:8080/auth/token,service="zot",scope="""#);
        assert_eq!((c.scheme(), c.scope()), ("Bearer", Some("")));
        assert_eq!(c.realm(), Some("http://localhost:8080/auth/token"));
        assert_eq!(
            c.to_string(),
            r#"Bearer realm="http://localhost:8080/auth/token",service="zot",scope="""#
        );

        let c = one(
            r#"Bearer realm="https://r/token",service="r",scope="repository:samalba/my-app:pull,push",error="insufficient_scope""#,
        );
        assert_eq!(c.scope(), Some("repository:samalba/my-app:pull,push"));
        assert_eq!(
            (c.error(), c.params().len()),
            (Some("insufficient_scope"), 4)
        );

        let c = one(
            r#"Bearer realm="r", error="invalid_token", error_description="the token has expired""#,
        );
        assert_eq!(c.error(), Some("invalid_token"));
        assert_eq!(c.param("ERROR_Description"), Some("the token has expired"));
        assert_eq!(c.error_description(), Some("the token has expired"));

        let c = one(r#"Basic realm="Registry Realm""#);
        assert!(c.is_basic() && c.realm() == Some("Registry Realm"));
        let c = one(r#"Bearer realm="a\"b""#);
        assert_eq!(
            (c.realm(), c.to_string()),
            (Some("a\"b"), r#"Bearer realm="a\"b""#.into())
        );
        assert_eq!(one(r#"Bearer realm="a\\b""#).realm(), Some("a\\b"));
        let c = one(r#"Bearer realm="r",scope="repository:a:pull repository:b:pull,push""#);
        assert_eq!(c.scope(), Some("repository:a:pull repository:b:pull,push"));
    }

    #[test]
    fn several_challenges_token68_case_and_whitespace() {
        let all = Challenges::parse(r#"Basic realm="x", Bearer realm="y",service="z""#).unwrap();
        assert_eq!((all.len(), all.basic().unwrap().realm()), (2, Some("x")));
        assert_eq!(
            pairs(all.bearer().unwrap()),
            [("realm", "y"), ("service", "z")]
        );
        assert_eq!(all.preferred(), all.bearer());
        assert_eq!(
            all.to_string(),
            r#"Basic realm="x", Bearer realm="y",service="z""#
        );
        let lines = [r#"Basic realm="x""#, r#"Bearer realm="y",service="z""#];
        assert_eq!(Challenges::parse_all(lines).unwrap(), all);

        let c = one("Basic dGVzdA==");
        assert_eq!(
            (c.scheme(), c.token68(), c.to_string()),
            ("Basic", Some("dGVzdA=="), "Basic dGVzdA==".into())
        );
        let all = Challenges::parse("Negotiate abc, Basic").unwrap();
        assert_eq!(all.iter().next().unwrap().token68(), Some("abc"));
        assert_eq!(all.preferred().unwrap().params(), &[]);
        assert_eq!(one("Basic realm=").token68(), Some("realm="));
        assert_eq!(one("BEARER realm=\"r\"").scheme(), "Bearer");
        assert_eq!(
            (one("Basic").scheme(), one("NeGotiate").scheme()),
            ("Basic", "NeGotiate")
        );
        assert_eq!(one("negotiate"), one("NEGOTIATE"));
        let c = one("  Bearer   realm = \"r\" ,\t service =z , , scope= \"\"  ");
        assert_eq!(pairs(&c), [("realm", "r"), ("service", "z"), ("scope", "")]);
        assert_eq!(one("Bearer ,REALM=\"r\"").realm(), Some("r"));
        assert!(Challenges::parse(" , ,").unwrap().is_empty());
        assert_eq!(Challenges::parse("").unwrap().preferred(), None);
    }

    #[test]
    fn constructors() {
        let c = Challenge::bearer("https://x/token", "x").with_param("scope", "repository:a:pull");
        let want = r#"Bearer realm="https://x/token",service="x",scope="repository:a:pull""#;
        assert_eq!(c.to_string(), want);
        let c = c
            .with_param("error", "insufficient_scope")
            .with_param("SCOPE", "b");
        assert_eq!(
            (c.scope(), c.error()),
            (Some("b"), Some("insufficient_scope"))
        );
        assert_eq!(
            Challenge::basic("berth").to_string(),
            r#"Basic realm="berth""#
        );
        // A newline would split the header (injection): it is neutralised.
        let c = Challenge::basic("a\r\nX-Evil: 1").with_param("bad name", "v");
        assert_eq!(c.to_string(), r#"Basic realm="a  X-Evil: 1",bad_name="v""#);
        assert_eq!(
            Challenge::new("negotiate", [("A", "1")]).unwrap(),
            one(r#"NEGOTIATE a="1""#)
        );
        let e = Challenge::new("Bearer", [("a", "1"), ("A", "2")]).unwrap_err();
        assert_eq!(
            e.reason(),
            "parameter `a` appears twice in one challenge; RFC 9110 §11.2 forbids this"
        );
        assert_eq!(Challenge::new("", [("a", "1")]).unwrap_err().position(), 0);
        assert_eq!(
            Challenge::new("B", [("a", "x\ny")]).unwrap_err().position(),
            1
        );
        assert_eq!(
            Challenge::new_token68("Basic", "dGVzdA==").unwrap(),
            one("Basic dGVzdA==")
        );
        for (scheme, t) in [
            ("Basic", "=x"),
            ("Basic", "a b"),
            ("Basic", ""),
            ("bearer", "abc"),
        ] {
            assert!(Challenge::new_token68(scheme, t).is_err(), "{scheme} {t}");
        }
        assert!("Basic, Bearer".parse::<Challenge>().is_err());
        assert!(" ,".parse::<Challenge>().is_err());
    }

    #[test]
    fn errors_say_where_and_why() {
        let no_value = "parameter `realm` has no value: expected `realm=<value>`";
        #[rustfmt::skip]
        let cases = [
            (r#"Bearer realm="abc"#, 17, "unterminated quoted string opened at byte 13"),
            (r#"="x""#, 0, "expected an authentication scheme"),
            (r#"realm="x""#, 5, "missing authentication scheme"),
            (r#"Bearer realm="x", "y""#, 18, "expected an authentication scheme"),
            ("Bearer realm=", 13, no_value),
            (r#"Bearer realm=,service="x""#, 13, no_value),
            (r#"Bearer realm, service="x""#, 12, no_value),
            (r#"Bearer realm="x",service="#, 25, "parameter `service` has no value"),
            (r#"Bearer realm="x" garbage"#, 17, "expected `,` or the end after the value of `realm`"),
            ("Bearer realm=\"x\u{1}\"", 15, "control characters are not allowed"),
            ("Bearer realm=\"x\\\u{1}\"", 16, "a `\\` in a quoted string must escape"),
            ("Bearer realm=é", 13, "bad character in the value of `realm`"),
            ("Bearer@ realm=x", 6, "expected a space after the scheme `Bearer`"),
            (r#"Bearer realm="a",Realm="b""#, 17, "parameter `realm` appears twice"),
            (r#"Bearer realm "x""#, 13, "expected `=` after parameter name `realm`"),
        ];
        for (s, at, why) in cases {
            let e = Challenges::parse(s).unwrap_err();
            assert_eq!(
                (e.kind(), e.position()),
                (ParseErrorKind::Challenge, at),
                "{s}"
            );
            assert!(e.reason().starts_with(why), "{s}: {}", e.reason());
        }
        let e = Challenges::parse_all(["Basic", "Bearer realm=\"x"]).unwrap_err();
        assert_eq!(e.input(), "Bearer realm=\"x");
        assert!(
            e.to_string()
                .starts_with("invalid WWW-Authenticate challenge")
        );
    }

    const TOKEN: &str = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}";

    fn challenge() -> impl Strategy<Value = Challenge> {
        let pair = (TOKEN, "[\\t\\x20-\\x7eé中😀]{0,16}");
        let with_params = (TOKEN, prop::collection::vec(pair, 0..5)).prop_map(|(s, ps)| {
            let mut seen = HashSet::new();
            let ps = ps
                .into_iter()
                .filter(|(n, _)| seen.insert(n.to_ascii_lowercase()));
            Challenge::new(&s, ps.collect::<Vec<_>>()).unwrap()
        });
        let with_token68 = (TOKEN, "[A-Za-z0-9._~+/-]{1,12}={0,2}")
            .prop_filter("Bearer has no token68", |(s, _)| {
                !s.eq_ignore_ascii_case("bearer")
            })
            .prop_map(|(s, t)| Challenge::new_token68(&s, &t).unwrap());
        prop_oneof![3 => with_params, 1 => with_token68]
    }

    /// Valid but non-canonical spellings: odd case, spacing, bare values, empty elements.
    fn messy() -> impl Strategy<Value = String> {
        let escaped = prop_oneof!["[ a-z,]", Just(r#"\""#.to_owned()), Just(r"\\".to_owned())];
        let quoted =
            prop::collection::vec(escaped, 0..8).prop_map(|v| format!("\"{}\"", v.concat()));
        let value = prop_oneof!["[A-Za-z0-9/:._-]{1,10}".boxed(), quoted.boxed()];
        let param = ("[A-Za-z]{1,6}", value, "[ \\t]{0,2}", "[ ,]{0,3}")
            .prop_map(|(n, v, ws, sep)| format!("{n}{ws}={ws}{v}{ws},{sep}"));
        let one = ("bearer|BASIC|Negotiate", prop::collection::vec(param, 0..4));
        prop::collection::vec(one, 1..4).prop_map(|cs| {
            let cs: Vec<_> = cs
                .into_iter()
                .map(|(s, ps)| format!("{s} {}", ps.concat()))
                .collect();
            cs.join(" , ")
        })
    }

    proptest! {
        #[test]
        fn print_parse_round_trip(cs in prop::collection::vec(challenge(), 0..4)) {
            let all = Challenges::from(cs);
            prop_assert_eq!(Challenges::parse(&all.to_string()).unwrap(), all);
        }

        #[test]
        fn printing_a_parse_is_canonical(s in messy()) {
            match Challenges::parse(&s) {
                Ok(parsed) => {
                    let printed = parsed.to_string();
                    let again = Challenges::parse(&printed).unwrap();
                    prop_assert_eq!(&again, &parsed);
                    prop_assert_eq!(again.to_string(), printed);
                }
                // The generator may repeat a name; nothing else may fail.
                Err(e) => prop_assert!(e.reason().contains("appears twice"), "{}: {}", s, e),
            }
        }

        #[test]
        fn never_panics(s in any::<String>(), h in "[ ,=\"\\\\a-zA-Z0-9/:\\t]{0,40}") {
            let _ = Challenges::parse(&s);
            let _ = Challenges::parse(&h);
            let _ = h.parse::<Challenge>();
        }
    }
}
