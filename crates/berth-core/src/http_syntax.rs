//! HTTP field-value syntax shared by the header parsers of this crate
//! (RFC 9110 §5.6): tokens, optional whitespace, `#rule` list separators and
//! quoted strings.
//!
//! ```text
//! token         = 1*tchar
//! tchar         = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
//!                 "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
//! OWS           = *( SP / HTAB )
//! quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//! qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//! quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
//! ```
//!
//! Positions are byte offsets into the whole header value, so that callers can
//! report them unchanged. Non-ASCII characters count as `obs-text`.

use std::fmt;

/// A token character (RFC 9110 §5.6.2 `tchar`).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A character a quoted-string can carry: anything but controls other than HTAB
/// (RFC 9110 §5.6.4 `qdtext` / `quoted-pair`, non-ASCII as `obs-text`).
pub(crate) fn is_quotable(c: char) -> bool {
    c == '\t' || !c.is_ascii_control()
}

/// The index of the first byte at or after `i` that fails `pred`.
pub(crate) fn scan_while(b: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while b.get(i).is_some_and(|&c| pred(c)) {
        i += 1;
    }
    i
}

/// Skips optional whitespace (RFC 9110 §5.6.3 OWS: spaces and tabs).
pub(crate) fn skip_ows(b: &[u8], i: usize) -> usize {
    scan_while(b, i, |c| c == b' ' || c == b'\t')
}

/// `input[from..to]`, or `""` if the range is not on char boundaries (never
/// happens for the ASCII delimiters the parsers cut at).
pub(crate) fn slice(input: &str, from: usize, to: usize) -> &str {
    input.get(from..to).unwrap_or_default()
}

/// Reads the quoted-string whose opening `"` is at `start`; returns the
/// unescaped value and the index after the closing quote, or where and why it failed.
pub(crate) fn parse_quoted(input: &str, start: usize) -> Result<(String, usize), (usize, String)> {
    let unterminated = || {
        (
            input.len(),
            format!("unterminated quoted string opened at byte {start}: expected a closing `\"`"),
        )
    };
    let body = start + 1;
    let mut out = String::new();
    let mut chars = input.get(body..).unwrap_or_default().char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((out, body + off + 1)),
            '\\' => match chars.next() {
                Some((_, e)) if is_quotable(e) => out.push(e),
                Some((off, _)) => {
                    return Err((
                        body + off,
                        "a `\\` in a quoted string must escape a visible character, space or tab"
                            .to_owned(),
                    ));
                }
                None => return Err(unterminated()),
            },
            c if is_quotable(c) => out.push(c),
            _ => {
                return Err((
                    body + off,
                    "control characters are not allowed in a quoted string".to_owned(),
                ));
            }
        }
    }
    Err(unterminated())
}

/// Writes `value` as a quoted-string, escaping `"` and `\`.
pub(crate) fn write_quoted(f: &mut impl fmt::Write, value: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in value.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

/// Displays at most 32 bytes of a string (cut on a char boundary, then `...`),
/// for naming input inside an error reason: a hostile header with a
/// megabyte-long parameter name must not produce a megabyte-long message.
pub(crate) struct Short<'a>(pub(crate) &'a str);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 32;
        if self.0.len() <= MAX {
            return f.write_str(self.0);
        }
        let end = (0..=MAX).rev().find(|&i| self.0.is_char_boundary(i));
        write!(f, "{}...", slice(self.0, 0, end.unwrap_or(0)))
    }
}

/// Skips OWS and commas: the empty list elements RFC 9110 §5.6.1 tells recipients to ignore.
pub(crate) fn skip_separators(b: &[u8], i: usize) -> usize {
    scan_while(b, i, |c| c == b' ' || c == b'\t' || c == b',')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quoted_strings() {
        assert_eq!(
            parse_quoted(r#"x="a\"b" y"#, 2),
            Ok((r#"a"b"#.to_owned(), 8))
        );
        assert_eq!(parse_quoted("\"é\\\t\"", 0), Ok(("é\t".to_owned(), 6)));
        let (at, why) = parse_quoted("\"abc", 0).unwrap_err();
        assert_eq!(at, 4);
        assert!(why.starts_with("unterminated quoted string opened at byte 0"));
        assert_eq!(parse_quoted("\"a\nb\"", 0).unwrap_err().0, 2);
        assert_eq!(parse_quoted("\"a\\\n\"", 0).unwrap_err().0, 3);
        let mut out = String::new();
        write_quoted(&mut out, r#"a"b\c"#).unwrap();
        assert_eq!(out, r#""a\"b\\c""#);
    }

    #[test]
    fn scanning() {
        let b = b" \t, ,tok=x";
        assert_eq!((skip_ows(b, 0), skip_separators(b, 0)), (2, 5));
        assert_eq!(scan_while(b, 5, is_tchar), 8);
        assert_eq!(slice("é", 0, 1), "");
        assert_eq!(Short("realm").to_string(), "realm");
        let long = Short(&"é".repeat(20)).to_string();
        assert_eq!(long, format!("{}...", "é".repeat(16)));
        assert!(
            is_quotable('\t') && is_quotable('é') && !is_quotable('\n') && !is_quotable('\u{7f}')
        );
    }

    proptest! {
        #[test]
        fn quoting_round_trips(v in "[\\t\\x20-\\x7eé中😀]{0,32}") {
            let mut q = String::new();
            write_quoted(&mut q, &v).unwrap();
            prop_assert_eq!(parse_quoted(&q, 0), Ok((v, q.len())));
        }

        #[test]
        fn never_panics(s in any::<String>(), at in 0usize..40) {
            let _ = parse_quoted(&s, at);
            let _ = slice(&s, at, at + 3);
        }
    }
}
