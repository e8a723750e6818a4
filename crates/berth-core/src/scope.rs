//! Token scopes: what a client asks the token service for, and what a token grants.
//!
//! Grammar, from the Docker token specification ("Token Scope Documentation",
//! `docs/spec/auth/scope.md` in CNCF distribution):
//!
//! ```text
//! scope          := resourcescope (' ' resourcescope)*
//! resourcescope  := resourcetype ':' resourcename ':' action (',' action)*
//! resourcetype   := [a-z0-9]+ ('(' [a-z0-9]+ ')')?
//! resourcename   := [^\s]+            (may itself contain ':', e.g. `localhost:5000/foo`)
//! action         := [a-z]+ | '*'
//! ```
//!
//! Because a resource name may contain `host:port`, the type is read up to the
//! first `:` and the actions after the last `:`; everything between is the name.
//! The class in parentheses (`repository(plugin)`) is deprecated: it is accepted
//! and dropped, so it is neither printed nor compared. Actions other than the
//! well-known ones are accepted leniently as `[a-z][a-z0-9_-]*`, because some
//! registries invent their own (e.g. `metadata-read`).
//!
//! The resource name is deliberately not validated as a repository name here:
//! that is the registry's job, and the token service must be able to name a
//! scope it refuses. It only has to be non-empty and free of whitespace and
//! control characters, so that a list of scopes stays unambiguous.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::{ParseError, ParseErrorKind};

// Reasons given in errors: each says what was expected.
const SHAPE: &str = "expected `type:name:actions`, e.g. `repository:library/alpine:pull`";
const NO_NAME: &str = "expected a resource name between the two `:`, e.g. `library/alpine`";
const BAD_NAME: &str = "resource names cannot contain whitespace or control characters";

/// Implements serde for a type through its canonical string form; deserialising
/// goes through `FromStr`, so a value read from JSON is always valid.
macro_rules! serde_via_str {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

mod action;

pub use action::{Action, Actions, OtherWord, ResourceType};
use action::{NO_ACTION, parse_actions, parse_type};

/// One resource scope: `type:name:actions`, e.g. `repository:library/alpine:pull`.
///
/// Invariants: the name is non-empty with no whitespace or control character,
/// and there is at least one action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    resource_type: ResourceType,
    name: String,
    actions: Actions,
}

impl Scope {
    /// A scope on `name`, checking that the name is usable in a scope list and
    /// that at least one action is given.
    pub fn new(
        resource_type: ResourceType,
        name: impl Into<String>,
        actions: Actions,
    ) -> Result<Self, ParseError> {
        let name = name.into();
        check_name(&name, &name, 0)?;
        if actions.is_empty() {
            return Err(scope_err(&name, name.len(), NO_ACTION));
        }
        Ok(Self {
            resource_type,
            name,
            actions,
        })
    }

    /// `repository:<name>:<actions>`.
    pub fn repository(name: &str, actions: &[Action]) -> Result<Self, ParseError> {
        Self::new(
            ResourceType::Repository,
            name,
            actions.iter().cloned().collect(),
        )
    }

    /// `repository:<name>:<action>` for a name already known to be a valid
    /// repository name (which is always a valid scope name).
    pub fn for_repository(name: &crate::name::RepositoryName, action: Action) -> Self {
        Self {
            resource_type: ResourceType::Repository,
            name: name.as_str().to_owned(),
            actions: std::iter::once(action).collect(),
        }
    }

    /// `registry:catalog:*`: listing the registry's repositories.
    pub fn catalog() -> Self {
        Self {
            resource_type: ResourceType::Registry,
            name: "catalog".to_owned(),
            actions: Actions::all(),
        }
    }

    /// The kind of resource.
    pub fn resource_type(&self) -> &ResourceType {
        &self.resource_type
    }

    /// The resource's name (for a repository, its path, possibly with `host:port`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actions asked for or granted; never empty.
    pub fn actions(&self) -> &Actions {
        &self.actions
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.resource_type, self.name, self.actions)
    }
}

impl FromStr for Scope {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        // The name may contain ':' (host:port), so the type ends at the first
        // colon and the actions start after the last one.
        let (Some(first), Some(last)) = (s.find(':'), s.rfind(':')) else {
            return Err(scope_err(s, s.len(), SHAPE));
        };
        if first == last {
            return Err(scope_err(s, s.len(), SHAPE));
        }
        let type_part = s.get(..first).unwrap_or_default();
        let name = s.get(first + 1..last).unwrap_or_default();
        let actions_part = s.get(last + 1..).unwrap_or_default();
        let resource_type = parse_type(s, type_part, 0)?;
        check_name(s, name, first + 1)?;
        let actions = parse_actions(s, actions_part, last + 1)?;
        Ok(Self {
            resource_type,
            name: name.to_owned(),
            actions,
        })
    }
}

serde_via_str!(Scope);

/// A set of resource scopes with at most one entry per resource (type, name):
/// scopes on the same resource merge their actions. Iterates and prints in
/// canonical order, by type then name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes {
    // Nested so that `get` can look a name up by `&str` without allocating.
    by_type: BTreeMap<ResourceType, BTreeMap<String, Scope>>,
}

impl Scopes {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one space-separated list (runs of spaces or tabs are tolerated;
    /// the empty string is the empty set). An error quotes the offending scope.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Self::parse_all([s])
    }

    /// Parses repeated `scope` parameters, each possibly a space-separated list.
    pub fn parse_all<'a, I: IntoIterator<Item = &'a str>>(values: I) -> Result<Self, ParseError> {
        let mut scopes = Self::new();
        for value in values {
            for item in value.split_whitespace() {
                scopes.insert(item.parse()?);
            }
        }
        Ok(scopes)
    }

    /// Adds a scope, merging its actions into an existing entry for the resource.
    pub fn insert(&mut self, scope: Scope) {
        let names = self.by_type.entry(scope.resource_type.clone()).or_default();
        match names.get_mut(&scope.name) {
            Some(existing) => existing.actions.absorb(scope.actions),
            None => {
                names.insert(scope.name.clone(), scope);
            }
        }
    }

    /// Merges every scope of `other` into `self`.
    pub fn merge(&mut self, other: &Scopes) {
        for scope in other.iter() {
            self.insert(scope.clone());
        }
    }

    /// Every scope of either set, merged per resource.
    pub fn union(&self, other: &Scopes) -> Scopes {
        let mut out = self.clone();
        out.merge(other);
        out
    }

    /// The token grant: per resource, the actions of `self` (requested) that
    /// `allowed` also holds; resources left with no action are dropped.
    pub fn intersect(&self, allowed: &Scopes) -> Scopes {
        self.iter()
            .filter_map(|scope| {
                let granted = allowed.get(&scope.resource_type, &scope.name)?;
                let actions = scope.actions.intersection(granted);
                (!actions.is_empty()).then(|| Scope {
                    actions,
                    ..scope.clone()
                })
            })
            .collect()
    }

    /// The actions held on one resource, if any.
    pub fn get(&self, resource_type: &ResourceType, name: &str) -> Option<&Actions> {
        self.by_type
            .get(resource_type)?
            .get(name)
            .map(Scope::actions)
    }

    /// Whether `action` is held on the resource (`*` grants every action).
    pub fn permits(&self, resource_type: &ResourceType, name: &str, action: &Action) -> bool {
        self.get(resource_type, name)
            .is_some_and(|actions| actions.contains(action))
    }

    /// Whether every action of `self` is also held by `other`.
    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.iter().all(|scope| {
            other
                .get(&scope.resource_type, &scope.name)
                .is_some_and(|held| scope.actions.is_subset(held))
        })
    }

    /// The scopes in canonical order (type, then name).
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.by_type.values().flat_map(BTreeMap::values)
    }

    /// The number of resources named.
    pub fn len(&self) -> usize {
        self.by_type.values().map(BTreeMap::len).sum()
    }

    /// Whether no resource is named.
    pub fn is_empty(&self) -> bool {
        self.by_type.values().all(BTreeMap::is_empty)
    }
}

impl FromIterator<Scope> for Scopes {
    /// Collects scopes, merging those on the same resource.
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Self::new();
        iter.into_iter().for_each(|scope| scopes.insert(scope));
        scopes
    }
}

impl fmt::Display for Scopes {
    /// Space-separated canonical scopes; the empty set prints as "".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, self.iter(), " ")
    }
}

impl FromStr for Scopes {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

serde_via_str!(Scopes);

/// Writes `items` separated by `sep`.
fn write_joined<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = T>,
    sep: &str,
) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// A scope error at byte `at` of `input`.
fn scope_err(input: &str, at: usize, reason: &str) -> ParseError {
    ParseError::new(ParseErrorKind::Scope, input, at, reason)
}

/// Checks a resource name (at `offset` of `input`): non-empty, no whitespace,
/// no control characters.
fn check_name(input: &str, name: &str, offset: usize) -> Result<(), ParseError> {
    if name.is_empty() {
        return Err(scope_err(input, offset, NO_NAME));
    }
    match name
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        Some((at, _)) => Err(scope_err(input, offset + at, BAD_NAME)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use action::tests::{actions, resource_type};
    use proptest::prelude::*;

    fn scope(s: &str) -> Scope {
        s.parse().unwrap()
    }

    fn scopes(s: &str) -> Scopes {
        Scopes::parse(s).unwrap()
    }

    #[test]
    fn docker_spec_examples() {
        let s = scope("repository:samalba/my-app:pull,push");
        let expected = Scope::repository("samalba/my-app", &[Action::Push, Action::Pull]);
        assert_eq!(s, expected.unwrap());
        assert_eq!(s.to_string(), "repository:samalba/my-app:pull,push");

        let s = scope("registry:catalog:*");
        assert_eq!(s, Scope::catalog());
        assert_eq!(s.resource_type(), &ResourceType::Registry);
        assert!(s.actions().is_all());
        assert!(s.actions().contains(&Action::Delete));
        assert_eq!(s.to_string(), "registry:catalog:*");
    }

    #[test]
    fn name_with_host_and_port() {
        let s = scope("repository:localhost:5000/foo/bar:pull");
        let parts = (s.resource_type(), s.name(), s.actions());
        let pull = Actions::from_iter([Action::Pull]);
        assert_eq!(
            parts,
            (&ResourceType::Repository, "localhost:5000/foo/bar", &pull)
        );
        assert_eq!(s.to_string(), "repository:localhost:5000/foo/bar:pull");
    }

    #[test]
    fn deprecated_class_is_dropped() {
        let s = scope("repository(plugin):foo:pull");
        assert_eq!(s, scope("repository:foo:pull"));
        assert_eq!(s.to_string(), "repository:foo:pull");
        let e = "repository(plugin:foo:pull".parse::<Scope>().unwrap_err();
        assert_eq!(e.position(), 17);
        let e = "repository():foo:pull".parse::<Scope>().unwrap_err();
        assert_eq!(e.position(), 11);
    }

    #[test]
    fn ghcr_seed_scopes() {
        let s = scope("repository:toddysm/python:pull,push,delete");
        assert_eq!(s.to_string(), "repository:toddysm/python:delete,pull,push");
        // GHCR's placeholder parses; deciding it is a placeholder is the client's job.
        let s = scope("repository:user/image:pull");
        assert_eq!(s.name(), "user/image");
        assert_eq!(s, Scope::repository("user/image", &[Action::Pull]).unwrap());
    }

    #[test]
    fn list_merges_duplicates_and_star_absorbs() {
        let s = scopes("repository:a:pull repository:a:push repository:a:pull");
        assert_eq!(s.len(), 1);
        assert_eq!(s.to_string(), "repository:a:pull,push");

        let s = scopes("repository:b:pull\t  repository:a:push registry:catalog:* repository:b:*");
        assert_eq!(
            s.to_string(),
            "registry:catalog:* repository:a:push repository:b:*"
        );
        assert!(s.permits(&ResourceType::Repository, "b", &Action::Delete));
        assert!(!s.permits(&ResourceType::Repository, "a", &Action::Pull));
        assert_eq!(s.get(&ResourceType::Repository, "c"), None);

        let s = Scopes::parse_all(["repository:a:pull repository:b:push", "repository:a:delete"])
            .unwrap();
        assert_eq!(s.to_string(), "repository:a:delete,pull repository:b:push");
        assert!(scopes("").is_empty());
        assert!(scopes("  \t ").is_empty());
        assert_eq!(scopes("").to_string(), "");
    }

    #[test]
    fn grant_is_requested_intersect_allowed() {
        let requested = scopes("repository:a:pull,push repository:b:push registry:catalog:*");
        let allowed = scopes("repository:a:* repository:b:pull registry:catalog:*");
        let granted = requested.intersect(&allowed);
        assert_eq!(
            granted.to_string(),
            "registry:catalog:* repository:a:pull,push"
        );
        assert!(requested.intersect(&Scopes::new()).is_empty());
    }

    #[test]
    fn invalid_scopes_say_where_and_why() {
        let cases = [
            ("repository:foo", 14, "expected `type:name:actions`"),
            ("repository", 10, "expected `type:name:actions`"),
            ("repository::pull", 11, "expected a resource name"),
            (":foo:pull", 0, "expected a resource type"),
            ("Repository:foo:pull", 0, "lower-case letters and digits"),
            ("repository:foo:pull,", 20, "empty action"),
            ("repository:foo:pull,,push", 20, "empty action"),
            ("repository:foo:PULL", 15, "expected an action"),
            ("repository:foo:pull,PUSH", 20, "expected an action"),
            ("repository:foo:", 15, "at least one action"),
            ("repository:fo\u{7}o:pull", 13, "control characters"),
        ];
        for (input, position, reason) in cases {
            let e = input.parse::<Scope>().unwrap_err();
            assert_eq!(e.kind(), ParseErrorKind::Scope, "{input}");
            assert_eq!(e.position(), position, "{input}: {e}");
            assert!(e.reason().contains(reason), "{input}: {e}");
        }
        let e = Scopes::parse("repository:a:pull repository:foo").unwrap_err();
        assert_eq!(e.input(), "repository:foo");
        let e = "".parse::<Actions>().unwrap_err();
        assert!(e.reason().contains("at least one action, e.g. `pull`"));
        assert!(Scope::new(ResourceType::Repository, "a b", Actions::all()).is_err());
        assert!(Scope::new(ResourceType::Repository, "", Actions::all()).is_err());
        assert!(Scope::new(ResourceType::Repository, "a", Actions::default()).is_err());
    }

    #[test]
    fn merging_many_scopes_stays_linear() {
        // One resource with many actions, then re-asked many times: each merge
        // must cost the addition, not the whole set (fuzzers find quadratic paths).
        let words: Vec<String> = (0..20_000).map(|i| format!("a{i}")).collect();
        let mut list = format!("repository:x:{}", words.join(","));
        list.push_str(&" repository:x:pull".repeat(20_000));
        let s = scopes(&list);
        assert_eq!(
            s.get(&ResourceType::Repository, "x").map(Actions::len),
            Some(20_001)
        );
    }

    #[test]
    fn serde_uses_the_string_form() {
        let s = scope("repository:a:push,pull");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#""repository:a:pull,push""#);
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Scope>(r#""repository:a""#).is_err());
        assert!(serde_json::from_str::<Action>(r#""PULL""#).is_err());
        let list: Scopes =
            serde_json::from_str(r#""repository:b:pull repository:a:pull""#).unwrap();
        assert_eq!(list.to_string(), "repository:a:pull repository:b:pull");
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9._/:-]{1,20}",
            "[^\\s\\p{Cc}]{1,8}".prop_filter("no whitespace", |s| {
                !s.chars().any(|c| c.is_whitespace() || c.is_control())
            }),
        ]
    }

    fn a_scope() -> impl Strategy<Value = Scope> {
        (
            resource_type(),
            prop_oneof![Just("a".to_owned()), Just("b".to_owned()), name()],
            actions(),
        )
            .prop_filter_map("needs an action", |(t, n, a)| Scope::new(t, n, a).ok())
    }

    fn a_scopes() -> impl Strategy<Value = Scopes> {
        proptest::collection::vec(a_scope(), 0..6).prop_map(Scopes::from_iter)
    }

    proptest! {
        #[test]
        fn scope_round_trips(s in a_scope()) {
            prop_assert_eq!(s.to_string().parse::<Scope>().unwrap(), s);
        }

        #[test]
        fn scopes_round_trip(s in a_scopes()) {
            prop_assert_eq!(Scopes::parse(&s.to_string()).unwrap(), s);
        }

        #[test]
        fn printing_is_canonical(input in "[a-z(): ,*A-Z\t]{0,40}") {
            if let Ok(s) = Scopes::parse(&input) {
                let printed = s.to_string();
                prop_assert_eq!(Scopes::parse(&printed).unwrap().to_string(), printed);
            }
            if let Ok(s) = input.parse::<Scope>() {
                let printed = s.to_string();
                prop_assert_eq!(printed.parse::<Scope>().unwrap().to_string(), printed);
            }
        }

        #[test]
        fn parsing_never_panics(input in any::<String>()) {
            let _ = Scopes::parse(&input);
            let _ = input.parse::<Scope>();
            let _ = input.parse::<Actions>();
            let _ = input.parse::<ResourceType>();
        }

        #[test]
        fn scopes_lattice(a in a_scopes(), b in a_scopes(), c in a_scopes()) {
            prop_assert_eq!(a.union(&b), b.union(&a));
            prop_assert_eq!(a.intersect(&b), b.intersect(&a));
            prop_assert_eq!(a.union(&b).union(&c), a.union(&b.union(&c)));
            prop_assert_eq!(a.intersect(&b).intersect(&c), a.intersect(&b.intersect(&c)));
            prop_assert_eq!(a.union(&a), a.clone());
            prop_assert_eq!(a.intersect(&a), a.clone());
            prop_assert!(a.intersect(&b).is_subset(&a));
            prop_assert!(a.intersect(&b).is_subset(&b));
            prop_assert!(a.is_subset(&a.union(&b)) && b.is_subset(&a.union(&b)));
            prop_assert!(a.intersect(&b).iter().all(|s| !s.actions().is_empty()));
        }
    }
}
