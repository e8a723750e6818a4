//! Repository patterns that limit a personal access token: `acme/*`,
//! `acme/**`, `alice/app`, `acme/api-*`.
//!
//! ```text
//! pattern   ::= part ("/" part)*
//! part      ::= "**" | component-with-stars
//! ```
//!
//! - `*` matches any run of characters inside one path component (never `/`):
//!   `acme/*` matches `acme/api`, not `acme/a/b`; `acme/api-*` matches
//!   `acme/api-v2`.
//! - `**`, as a whole part, matches zero or more components: `acme/**` matches
//!   `acme/api`, `acme/a/b`, and `acme` itself (a repository of the `acme`
//!   namespace too); `**` alone matches every repository.
//! - Anything else matches itself exactly.
//!
//! Matching costs O(parts × components), whatever the pattern: no backtracking
//! blow-up on patterns like `**/**/**/x`.

/// The longest pattern accepted, in bytes (as long as a repository name).
const MAX_LEN: usize = berth_core::name::MAX_LEN;

/// Whether `repo` matches `pattern` (see the module doc for the syntax).
pub fn repo_pattern_matches(pattern: &str, repo: &str) -> bool {
    let parts: Vec<&str> = pattern.split('/').collect();
    let components: Vec<&str> = repo.split('/').collect();
    // row[j]: whether the parts so far match the first j components.
    let mut row = vec![false; components.len() + 1];
    row[0] = true;
    for part in parts {
        let mut next = vec![false; components.len() + 1];
        for j in 0..=components.len() {
            next[j] = if part == "**" {
                row[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && row[j - 1] && component_matches(part, components[j - 1])
            };
        }
        row = next;
    }
    row[components.len()]
}

/// Whether one component matches one part, where `*` matches any run of bytes.
fn component_matches(part: &str, text: &str) -> bool {
    let (p, t) = (part.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((spi, sti)) = star {
            // Let the last `*` absorb one more byte and retry after it.
            star = Some((spi, sti + 1));
            pi = spi + 1;
            ti = sti + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Whether every repository `inner` matches is also matched by `outer`.
///
/// Decided part by part, conservatively: an `outer` part `**` takes any run
/// of `inner` parts; any other `outer` part takes one `inner` part that is
/// not `**` and is the same text, or has no `*` and matches it, or takes any
/// part when it is made of `*` only. So `acme/api` is within `acme/*`, and
/// `acme/*` within `acme/**` or `**`, but `acme/ab*` is not found within
/// `acme/a*` (a narrower answer than the truth, never a wider one).
pub fn pattern_within(inner: &str, outer: &str) -> bool {
    let outer_parts: Vec<&str> = outer.split('/').collect();
    let inner_parts: Vec<&str> = inner.split('/').collect();
    let part_within = |i: &str, o: &str| {
        i != "**"
            && (i == o
                || o.bytes().all(|b| b == b'*')
                || (!i.contains('*') && component_matches(o, i)))
    };
    // row[j]: whether the outer parts so far take the first j inner parts.
    let mut row = vec![false; inner_parts.len() + 1];
    row[0] = true;
    for o in outer_parts {
        let mut next = vec![false; inner_parts.len() + 1];
        for j in 0..=inner_parts.len() {
            next[j] = if o == "**" {
                row[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && row[j - 1] && part_within(inner_parts[j - 1], o)
            };
        }
        row = next;
    }
    row[inner_parts.len()]
}

/// Checks a pattern's syntax; the error says what is wrong.
pub fn validate_repo_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("a pattern cannot be empty; leave the list empty to allow all".to_owned());
    }
    if pattern.len() > MAX_LEN {
        return Err(format!("a pattern is at most {MAX_LEN} characters"));
    }
    for part in pattern.split('/') {
        if part.is_empty() {
            return Err("empty path component: separate components with single `/`".to_owned());
        }
        if part == "**" {
            continue;
        }
        if part.contains("**") {
            return Err(format!(
                "`{part}`: `**` must be a whole component, e.g. `acme/**`; \
                 use `*` inside a component"
            ));
        }
        let ok = part.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'*')
        });
        if !ok {
            return Err(format!(
                "`{part}`: use lower-case letters, digits, `.`, `_`, `-` and `*`"
            ));
        }
    }
    if !pattern.contains('*') {
        berth_core::name::RepositoryName::parse(pattern).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_of_patterns() {
        for (inner, outer) in [
            ("acme/api", "acme/api"),
            ("acme/api", "acme/*"),
            ("acme/api", "acme/**"),
            ("acme/*", "acme/**"),
            ("acme/**", "acme/**"),
            ("acme/**", "**"),
            ("acme/a/b", "acme/**"),
            ("acme/api-*", "acme/*"),
            ("acme/*/x", "acme/**"),
            ("acme", "acme/**"),
        ] {
            assert!(pattern_within(inner, outer), "{inner} within {outer}");
        }
        for (inner, outer) in [
            ("acme/**", "acme/*"),
            ("acme/a/b", "acme/*"),
            ("other/api", "acme/**"),
            ("**", "acme/**"),
            ("acme/*", "acme/api"),
            ("acme/ab*", "acme/a*"),
            ("acme", "acme/*"),
        ] {
            assert!(!pattern_within(inner, outer), "{inner} not within {outer}");
        }
    }

    #[test]
    fn single_star_stays_in_one_component() {
        assert!(repo_pattern_matches("acme/*", "acme/api"));
        assert!(!repo_pattern_matches("acme/*", "acme/a/b"));
        assert!(!repo_pattern_matches("acme/*", "acme"));
        assert!(!repo_pattern_matches("acme/*", "other/api"));
        assert!(repo_pattern_matches("acme/api-*", "acme/api-v2"));
        assert!(repo_pattern_matches("acme/api-*", "acme/api-"));
        assert!(!repo_pattern_matches("acme/api-*", "acme/web-v2"));
        assert!(repo_pattern_matches("acme/*-svc", "acme/pay-svc"));
        assert!(repo_pattern_matches("acme/a*b*c", "acme/aXXbYYc"));
        assert!(!repo_pattern_matches("acme/a*b*c", "acme/aXXbYY"));
        assert!(repo_pattern_matches("*/app", "alice/app"));
        assert!(!repo_pattern_matches("*", "alice/app"));
    }

    #[test]
    fn double_star_crosses_components() {
        assert!(repo_pattern_matches("acme/**", "acme/api"));
        assert!(repo_pattern_matches("acme/**", "acme/a/b"));
        assert!(repo_pattern_matches("acme/**", "acme"));
        assert!(!repo_pattern_matches("acme/**", "acmex/api"));
        assert!(!repo_pattern_matches("acme/**", "other/acme/api"));
        assert!(repo_pattern_matches("**", "any/thing/at/all"));
        assert!(repo_pattern_matches("acme/**/db", "acme/db"));
        assert!(repo_pattern_matches("acme/**/db", "acme/x/y/db"));
        assert!(!repo_pattern_matches("acme/**/db", "acme/x/y/dbx"));
        assert!(repo_pattern_matches("**/**/**/x", "a/b/c/d/e/f/g/x"));
        assert!(!repo_pattern_matches("**/**/**/x", "a/b/c/d/e/f/g/y"));
    }

    #[test]
    fn literal_patterns_match_exactly() {
        assert!(repo_pattern_matches("alice/app", "alice/app"));
        assert!(!repo_pattern_matches("alice/app", "alice/app2"));
        assert!(!repo_pattern_matches("alice/app", "alice/app/sub"));
        assert!(!repo_pattern_matches("alice/app", "alice"));
    }

    #[test]
    fn long_inputs_stay_fast() {
        let repo = "a/".repeat(120) + "b";
        let pattern = "**/".repeat(100) + "c";
        assert!(!repo_pattern_matches(&pattern, &repo));
        let text = format!("acme/{}", "a".repeat(250));
        assert!(!repo_pattern_matches("acme/*a*a*a*a*a*a*a*a*b", &text));
    }

    #[test]
    fn validation() {
        for ok in [
            "acme/*",
            "acme/**",
            "alice/app",
            "**",
            "acme/api-*",
            "*/app",
        ] {
            assert_eq!(validate_repo_pattern(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "acme//x", "acme/", "/acme", "Acme/*", "acme/a**", "acme/a b", "acme/-x", "acme/?",
        ] {
            assert!(validate_repo_pattern(bad).is_err(), "{bad}");
        }
        assert!(validate_repo_pattern(&"a".repeat(300)).is_err());
    }
}
