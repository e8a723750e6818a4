//! `GET /v2/_catalog`: the repository list, paginated with `n`/`last` and `Link`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use berth_core::scope::Action;

use super::{pagination, set_next_link};
use crate::Registry;
use crate::error::RegistryError;
use crate::meta::{CatalogFilter, NameRange};
use crate::policy::{self, Subject};

/// distribution-spec "Listing Repositories" (catalog extension): names in
/// byte order after `last`, at most `n`, listing only what the caller may
/// pull: `filter` (its namespaces, and public repositories) in the query,
/// then the limits of the personal access token it came with, if any. The
/// page is made of names that pass both, so it is full whenever more such
/// names exist, and `Link: <...>; rel="next"` is sent only when there is a
/// next one.
///
/// Served by index range scans, so a page costs the same at 100 repositories
/// and at 100,000: one range for an ordinary caller, and for a token limited
/// by repository patterns one range per pattern's literal prefix (`acme/*`
/// reads the `acme` range only), never every repository.
pub async fn list_repositories(
    r: &Registry,
    query: Option<&str>,
    filter: &CatalogFilter,
    subject: Option<&Subject>,
) -> Result<Response, RegistryError> {
    let (n, last) = pagination(query, r.config.max_page)?;
    let mut names: Vec<String> = Vec::new();
    let mut more = false;
    // One name beyond the page tells whether there is a next one.
    let batch = n.saturating_add(1);
    'ranges: for prefix in ranges(subject) {
        if n == 0 {
            break;
        }
        let mut after = last.clone();
        loop {
            let range = NameRange {
                after: after.as_deref(),
                prefix: prefix.as_deref(),
            };
            let found = r.meta.list_repositories(range, batch, filter).await?;
            let exhausted = found.len() < batch as usize;
            after = found.last().cloned().or(after);
            for name in found {
                if !subject.is_none_or(|s| policy::token_admits_listing(s, &name)) {
                    continue;
                }
                if names.len() == n as usize {
                    more = true;
                    break 'ranges;
                }
                names.push(name);
            }
            if exhausted {
                break;
            }
        }
    }
    let next = if more { names.last().cloned() } else { None };
    let mut response = Json(serde_json::json!({ "repositories": names })).into_response();
    set_next_link(&mut response, "/v2/_catalog", n, next);
    Ok(response)
}

/// The name ranges to read, in byte order and disjoint: every name (`None`)
/// unless the caller's personal access token confines it to repository
/// patterns, then the literal prefix of each pattern (none at all when the
/// token cannot pull).
fn ranges(subject: Option<&Subject>) -> Vec<Option<String>> {
    let Some(limits) = subject.and_then(policy::token_limits) else {
        return vec![None];
    };
    if !limits.actions.contains(&Action::Pull) {
        return Vec::new();
    }
    let mut prefixes: Vec<String> = limits
        .repositories
        .iter()
        .map(|pattern| literal_prefix(pattern).to_owned())
        .collect();
    if prefixes.is_empty() || prefixes.iter().any(String::is_empty) {
        return vec![None];
    }
    prefixes.sort();
    // A prefix that starts with an earlier one is inside its range.
    let mut kept: Vec<String> = Vec::new();
    for prefix in prefixes {
        if !kept.last().is_some_and(|k| prefix.starts_with(k.as_str())) {
            kept.push(prefix);
        }
    }
    kept.into_iter().map(Some).collect()
}

/// What every name a pattern matches starts with: the text before its first
/// `*`, without a trailing `/` (`acme/**` matches `acme` itself).
fn literal_prefix(pattern: &str) -> &str {
    let literal = pattern.split('*').next().unwrap_or("");
    literal.strip_suffix('/').unwrap_or(literal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::patterns::repo_pattern_matches;
    use crate::policy::{Principal, TokenLimits};

    fn limited(actions: &str, patterns: &[&str]) -> Subject {
        Subject::User(Principal {
            name: "bob".to_owned(),
            is_admin: false,
            robot_of: None,
            memberships: Vec::new(),
            token: Some(TokenLimits {
                token_id: 1,
                name: "ci".to_owned(),
                actions: actions.parse().unwrap_or_default(),
                repositories: patterns.iter().map(|p| (*p).to_owned()).collect(),
            }),
        })
    }

    #[test]
    fn token_patterns_become_disjoint_prefix_ranges() {
        let some = |v: &[&str]| v.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
        assert_eq!(ranges(None), vec![None]);
        assert_eq!(ranges(Some(&limited("pull", &[]))), vec![None]);
        assert_eq!(ranges(Some(&limited("push", &["bob/one"]))), vec![]);
        assert_eq!(
            ranges(Some(&limited("pull", &["bob/one"]))),
            some(&["bob/one"])
        );
        assert_eq!(
            ranges(Some(&limited(
                "pull",
                &["zed/*", "acme/**", "acme/api-*", "bob/one"]
            ))),
            some(&["acme", "bob/one", "zed"])
        );
        assert_eq!(
            ranges(Some(&limited("pull", &["bob/one", "**"]))),
            vec![None]
        );
    }

    #[test]
    fn every_name_a_pattern_matches_starts_with_its_literal_prefix() {
        let names = [
            "acme",
            "acme/api",
            "acme/a/b",
            "acme/api-v2",
            "acme-x/y",
            "bob/one",
            "bob/one/x",
        ];
        for pattern in [
            "acme/*",
            "acme/**",
            "acme/api-*",
            "bob/one",
            "**",
            "*/one",
            "a*",
        ] {
            let prefix = literal_prefix(pattern);
            for name in names {
                if repo_pattern_matches(pattern, name) {
                    assert!(name.starts_with(prefix), "{pattern} matches {name}");
                }
            }
        }
    }
}
