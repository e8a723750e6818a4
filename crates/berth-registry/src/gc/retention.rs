//! Retention policies: which tags of a repository the collector removes.
//!
//! A policy names the repositories it governs with a pattern (`acme/*`,
//! `tmp/**`, `**` for a default; the syntax of `identity/patterns.rs`); the
//! first policy whose pattern matches a repository governs it, and a
//! repository no policy matches keeps every tag. Under a policy a tag stays
//! when any of its keep rules keeps it, or when it is protected; every other
//! tag is removed, and its manifest, once untagged, goes after the untagged
//! delay like any other (the garbage collector's review).
//!
//! In the TOML file (`berth serve --config`):
//!
//! ```toml
//! [[retention]]
//! repositories = "ci/**"
//! keep_last_pushed = 10           # the 10 most recently pushed tags
//! keep_last_pulled = 5            # the 5 most recently pulled
//! keep_pushed_within = "14d"      # pushed in the last 14 days
//! keep_pulled_within = "30d"      # pulled in the last 30 days
//! keep_tags = '^v\d+\.\d+\.\d+$'  # matching this regular expression
//! protect_tags = '^(latest|stable)$'  # never removed, not counted above
//! ```
//!
//! Durations are a number with `s`, `m`, `h`, `d` or `w`. A tag's push time
//! is when it last moved to its manifest; its pull time is its manifest's
//! last `GET` (recorded at most once a minute per manifest, `gc/pulls.rs`);
//! a tag never pulled is not kept by the pull rules.

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::identity::patterns::{repo_pattern_matches, validate_repo_pattern};
use crate::meta::gc_sql::TagFacts;

/// A policy as the TOML file writes it (`[[retention]]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyText {
    /// The repositories it governs (a pattern).
    pub repositories: String,
    /// Keeps the n most recently pushed tags.
    pub keep_last_pushed: Option<usize>,
    /// Keeps the n most recently pulled tags.
    pub keep_last_pulled: Option<usize>,
    /// Keeps tags pushed within this duration.
    pub keep_pushed_within: Option<String>,
    /// Keeps tags pulled within this duration.
    pub keep_pulled_within: Option<String>,
    /// Keeps tags matching this regular expression.
    pub keep_tags: Option<String>,
    /// Never removes tags matching this regular expression.
    pub protect_tags: Option<String>,
}

/// A policy, checked.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The repositories it governs (a pattern).
    pub repositories: String,
    keep_last_pushed: Option<usize>,
    keep_last_pulled: Option<usize>,
    keep_pushed_within: Option<Duration>,
    keep_pulled_within: Option<Duration>,
    keep_tags: Option<Regex>,
    protect_tags: Option<Regex>,
}

impl Policy {
    /// Checks a policy as written; the error names the policy and what to fix.
    pub fn parse(text: &PolicyText) -> Result<Self, String> {
        let name = &text.repositories;
        validate_repo_pattern(name).map_err(|e| format!("retention policy `{name}`: {e}"))?;
        let duration = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| format!("retention policy `{name}`: {field}: {e}"))
        };
        let regex = |field: &str, value: &Option<String>| {
            value.as_deref().map(Regex::new).transpose().map_err(|e| {
                format!("retention policy `{name}`: {field} is not a regular expression: {e}")
            })
        };
        let policy = Self {
            repositories: name.clone(),
            keep_last_pushed: text.keep_last_pushed,
            keep_last_pulled: text.keep_last_pulled,
            keep_pushed_within: duration("keep_pushed_within", &text.keep_pushed_within)?,
            keep_pulled_within: duration("keep_pulled_within", &text.keep_pulled_within)?,
            keep_tags: regex("keep_tags", &text.keep_tags)?,
            protect_tags: regex("protect_tags", &text.protect_tags)?,
        };
        if policy.keep_last_pushed.is_none()
            && policy.keep_last_pulled.is_none()
            && policy.keep_pushed_within.is_none()
            && policy.keep_pulled_within.is_none()
            && policy.keep_tags.is_none()
        {
            return Err(format!(
                "retention policy `{name}` has no keep rule, so it would remove every tag of its \
                 repositories; give keep_last_pushed, keep_last_pulled, keep_pushed_within, \
                 keep_pulled_within or keep_tags"
            ));
        }
        Ok(policy)
    }

    /// Whether it governs `repository`.
    pub fn matches(&self, repository: &str) -> bool {
        repo_pattern_matches(&self.repositories, repository)
    }

    /// The tags it removes from `tags` at `now` (unix seconds), in the order given.
    pub fn expired<'a>(&self, tags: &'a [TagFacts], now: i64) -> Vec<&'a TagFacts> {
        let protected = |t: &TagFacts| {
            self.protect_tags
                .as_ref()
                .is_some_and(|re| re.is_match(&t.name))
        };
        let candidates: Vec<&TagFacts> = tags.iter().filter(|t| !protected(t)).collect();
        let mut kept = vec![false; candidates.len()];
        if let Some(n) = self.keep_last_pushed {
            let mut order: Vec<usize> = (0..candidates.len()).collect();
            order.sort_by(|&a, &b| {
                candidates[b]
                    .pushed_at
                    .cmp(&candidates[a].pushed_at)
                    .then_with(|| candidates[a].name.cmp(&candidates[b].name))
            });
            for &i in order.iter().take(n) {
                kept[i] = true;
            }
        }
        if let Some(n) = self.keep_last_pulled {
            let mut order: Vec<usize> = (0..candidates.len())
                .filter(|&i| candidates[i].pulled_at.is_some())
                .collect();
            order.sort_by(|&a, &b| {
                candidates[b]
                    .pulled_at
                    .cmp(&candidates[a].pulled_at)
                    .then_with(|| candidates[a].name.cmp(&candidates[b].name))
            });
            for &i in order.iter().take(n) {
                kept[i] = true;
            }
        }
        let since = |within: Duration| {
            now.saturating_sub(i64::try_from(within.as_secs()).unwrap_or(i64::MAX))
        };
        for (i, tag) in candidates.iter().enumerate() {
            kept[i] = kept[i]
                || self
                    .keep_pushed_within
                    .is_some_and(|d| tag.pushed_at >= since(d))
                || self
                    .keep_pulled_within
                    .is_some_and(|d| tag.pulled_at.is_some_and(|at| at >= since(d)))
                || self
                    .keep_tags
                    .as_ref()
                    .is_some_and(|re| re.is_match(&tag.name));
        }
        candidates
            .into_iter()
            .zip(kept)
            .filter(|(_, kept)| !kept)
            .map(|(tag, _)| tag)
            .collect()
    }
}

/// The policy governing `repository`: the first that matches.
pub fn policy_for<'a>(policies: &'a [Policy], repository: &str) -> Option<&'a Policy> {
    policies.iter().find(|p| p.matches(repository))
}

/// `90s`, `30m`, `12h`, `14d`, `2w`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a duration; write a number and s, m, h, d or w, e.g. 14d")
    })?;
    let unit_secs = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use s, m, h, d or w, e.g. 14d"
            ));
        }
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, pushed_at: i64, pulled_at: Option<i64>) -> TagFacts {
        TagFacts {
            name: name.to_owned(),
            digest: format!("sha256:{name}"),
            pushed_at,
            pulled_at,
        }
    }

    fn policy(text: PolicyText) -> Policy {
        Policy::parse(&text).unwrap()
    }

    fn names(tags: Vec<&TagFacts>) -> Vec<&str> {
        tags.into_iter().map(|t| t.name.as_str()).collect()
    }

    const NOW: i64 = 1_000_000;

    fn tags() -> Vec<TagFacts> {
        vec![
            tag("a", NOW - 500, None),
            tag("b", NOW - 400, Some(NOW - 10)),
            tag("c", NOW - 300, Some(NOW - 5000)),
            tag("d", NOW - 200, None),
            tag("v1.0.0", NOW - 100_000, None),
            tag("latest", NOW - 100_000, None),
        ]
    }

    #[test]
    fn keep_last_pushed_keeps_the_newest_pushes() {
        let p = policy(PolicyText {
            repositories: "**".into(),
            keep_last_pushed: Some(2),
            ..Default::default()
        });
        assert_eq!(
            names(p.expired(&tags(), NOW)),
            ["a", "b", "v1.0.0", "latest"]
        );
    }

    #[test]
    fn keep_last_pulled_ignores_tags_never_pulled() {
        let p = policy(PolicyText {
            repositories: "**".into(),
            keep_last_pulled: Some(1),
            ..Default::default()
        });
        assert_eq!(
            names(p.expired(&tags(), NOW)),
            ["a", "c", "d", "v1.0.0", "latest"]
        );
    }

    #[test]
    fn durations_keep_recent_pushes_and_pulls() {
        let p = policy(PolicyText {
            repositories: "**".into(),
            keep_pushed_within: Some("250s".into()),
            keep_pulled_within: Some("1m".into()),
            ..Default::default()
        });
        assert_eq!(
            names(p.expired(&tags(), NOW)),
            ["a", "c", "v1.0.0", "latest"]
        );
    }

    #[test]
    fn regular_expressions_keep_and_protect() {
        let p = policy(PolicyText {
            repositories: "**".into(),
            keep_last_pushed: Some(1),
            keep_tags: Some(r"^v\d+\.\d+\.\d+$".into()),
            protect_tags: Some("^latest$".into()),
            ..Default::default()
        });
        // `latest` is protected and not counted: `d` is the one most recent push kept.
        assert_eq!(names(p.expired(&tags(), NOW)), ["a", "b", "c"]);
    }

    #[test]
    fn the_first_matching_policy_governs() {
        let policies = [
            policy(PolicyText {
                repositories: "ci/**".into(),
                keep_last_pushed: Some(1),
                ..Default::default()
            }),
            policy(PolicyText {
                repositories: "**".into(),
                keep_last_pushed: Some(100),
                ..Default::default()
            }),
        ];
        assert_eq!(
            policy_for(&policies, "ci/app").unwrap().repositories,
            "ci/**"
        );
        assert_eq!(
            policy_for(&policies, "acme/app").unwrap().repositories,
            "**"
        );
    }

    #[test]
    fn a_policy_without_a_keep_rule_is_refused_by_name() {
        let e = Policy::parse(&PolicyText {
            repositories: "tmp/**".into(),
            protect_tags: Some("x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("`tmp/**` has no keep rule"), "{e}");
        let e = Policy::parse(&PolicyText {
            repositories: "tmp/**".into(),
            keep_tags: Some("(".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("keep_tags is not a regular expression"), "{e}");
        let e = Policy::parse(&PolicyText {
            repositories: "tmp/**".into(),
            keep_pushed_within: Some("3 days".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("unknown unit"), "{e}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(
            parse_duration("14d").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(2 * 604_800)
        );
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
    }
}
