//! The vocabulary of scopes: resource types and actions.
//!
//! Grammar, from the Docker token specification ("Token Scope Documentation",
//! `docs/spec/auth/scope.md` in CNCF distribution):
//!
//! ```text
//! resourcetype := [a-z0-9]+ ('(' [a-z0-9]+ ')')?   (the class is deprecated: accepted, dropped)
//! actions      := action (',' action)*
//! action       := [a-z]+ | '*'                    (leniently [a-z][a-z0-9_-]* | '*')
//! ```
//!
//! Registries invent actions beyond `pull`, `push`, `delete` and `*` (e.g.
//! `metadata-read`), so unknown words are carried rather than refused.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::{scope_err, write_joined};
use crate::error::ParseError;

/// Orders a word-like type by its wire string and prints it as that string.
macro_rules! word_traits {
    ($ty:ty) => {
        impl Ord for $ty {
            fn cmp(&self, other: &Self) -> Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl PartialOrd for $ty {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// Reasons given in errors: each says what was expected.
const NO_TYPE: &str = "expected a resource type such as `repository` before the first `:`";
const UNCLOSED_CLASS: &str = "a resource class must be closed with `)`, e.g. `repository(plugin)`";
const EMPTY_CLASS: &str = "expected a resource class between `(` and `)`";
const BAD_TYPE: &str = "resource types are lower-case letters and digits, e.g. `repository`";
pub(super) const NO_ACTION: &str = "a scope needs at least one action, e.g. `pull`";
const EMPTY_ACTION: &str = "empty action: separate actions with single commas, e.g. `pull,push`";
const BAD_ACTION: &str = "expected an action such as `pull`, `push`, `delete` or `*` (lower-case)";

/// A bare word that is not one of the well-known values of its enum: a resource
/// type (`[a-z0-9]+`) or an action (`[a-z][a-z0-9_-]*`).
///
/// The field is private so that `Other` can never hold a well-known word
/// (`ResourceType::Other("repository")` would otherwise differ from
/// `ResourceType::Repository`) or a string the grammar rejects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherWord(String);

impl OtherWord {
    /// The word as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

word_traits!(OtherWord);

/// The kind of resource a scope names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// `repository`: a repository; the name is the repository path.
    Repository,
    /// `registry`: the registry itself; the name is e.g. `catalog`.
    Registry,
    /// Any other `[a-z0-9]+` type, carried through unchanged.
    Other(OtherWord),
}

impl ResourceType {
    /// The type as it appears on the wire (`repository`, `registry`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Repository => "repository",
            Self::Registry => "registry",
            Self::Other(word) => word.as_str(),
        }
    }

    /// The type for a word already known to be `[a-z0-9]+`.
    fn from_word(word: &str) -> Self {
        match word {
            "repository" => Self::Repository,
            "registry" => Self::Registry,
            other => Self::Other(OtherWord(other.to_owned())),
        }
    }
}

word_traits!(ResourceType);

impl FromStr for ResourceType {
    type Err = ParseError;

    /// Parses `repository`, `registry`, `repository(plugin)` (class dropped) or
    /// any other `[a-z0-9]+` word.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        parse_type(s, s, 0)
    }
}

serde_via_str!(ResourceType);

/// One action a scope asks for or grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `pull`: read manifests, blobs and tags.
    Pull,
    /// `push`: write manifests and blobs.
    Push,
    /// `delete`: delete manifests and blobs.
    Delete,
    /// `*`: every action on the resource (Quay asks for it instead of `delete`).
    All,
    /// Any other `[a-z][a-z0-9_-]*` word, carried through unchanged.
    Other(OtherWord),
}

impl Action {
    /// The action as it appears on the wire (`pull`, `*`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Delete => "delete",
            Self::All => "*",
            Self::Other(word) => word.as_str(),
        }
    }

    /// The action for `word`, or `None` when it is not `*` or `[a-z][a-z0-9_-]*`.
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "pull" => Self::Pull,
            "push" => Self::Push,
            "delete" => Self::Delete,
            "*" => Self::All,
            other => {
                let mut bytes = other.bytes();
                let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
                let rest_ok = bytes.all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
                if !(first_ok && rest_ok) {
                    return None;
                }
                Self::Other(OtherWord(other.to_owned()))
            }
        })
    }
}

// Ordered by wire string, `*` < `delete` < `pull` < `push`, so that printed
// action lists are canonical.
word_traits!(Action);

impl FromStr for Action {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Action::from_word(s).ok_or_else(|| scope_err(s, 0, BAD_ACTION))
    }
}

serde_via_str!(Action);

/// A set of actions in canonical (lexical) order, where `*` absorbs the rest:
/// a set holding [`Action::All`] is exactly `{*}`.
///
/// The set may be empty (an intersection can leave nothing), but a parsed
/// [`Scope`](super::Scope) always has at least one action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Actions(BTreeSet<Action>);

impl Actions {
    /// The set `{*}`: every action.
    pub fn all() -> Self {
        Self(BTreeSet::from([Action::All]))
    }

    /// Whether `action` is granted: always true when the set is `{*}`.
    pub fn contains(&self, action: &Action) -> bool {
        self.is_all() || self.0.contains(action)
    }

    /// Whether the set is `{*}`.
    pub fn is_all(&self) -> bool {
        self.0.contains(&Action::All)
    }

    /// Whether the set has no action at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of actions listed (`{*}` counts as one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The actions in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = &Action> {
        self.0.iter()
    }

    /// Every action of either set (`*` absorbs).
    pub fn union(&self, other: &Actions) -> Actions {
        let mut out = self.clone();
        out.absorb(other.clone());
        out
    }

    /// Adds `other`'s actions in place, so that merging many scopes on one
    /// resource costs the size of each addition, not of the set so far.
    pub(super) fn absorb(&mut self, other: Actions) {
        if other.is_all() {
            *self = Self::all();
        } else if !self.is_all() {
            self.0.extend(other.0);
        }
    }

    /// The actions in both sets: `*` ∩ X = X; other actions match only by equality.
    pub fn intersection(&self, other: &Actions) -> Actions {
        if self.is_all() {
            other.clone()
        } else if other.is_all() {
            self.clone()
        } else {
            Actions(self.0.intersection(&other.0).cloned().collect())
        }
    }

    /// Whether every action of `self` is granted by `other`.
    pub fn is_subset(&self, other: &Actions) -> bool {
        other.is_all() || (!self.is_all() && self.0.is_subset(&other.0))
    }
}

impl FromIterator<Action> for Actions {
    /// Collects actions, normalising a set that holds `*` to exactly `{*}`.
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        let set: BTreeSet<Action> = iter.into_iter().collect();
        if set.contains(&Action::All) {
            Self::all()
        } else {
            Self(set)
        }
    }
}

impl fmt::Display for Actions {
    /// `delete,pull,push`; an empty set prints as the empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, self.0.iter(), ",")
    }
}

impl FromStr for Actions {
    type Err = ParseError;

    /// Parses a comma-separated list such as `pull,push`; it must not be empty.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        parse_actions(s, s, 0)
    }
}

serde_via_str!(Actions);

/// Parses the type segment `part`, found at byte `offset` of `input`.
pub(super) fn parse_type(
    input: &str,
    part: &str,
    offset: usize,
) -> Result<ResourceType, ParseError> {
    let (word, class) = match part.find('(') {
        Some(open) => (
            part.get(..open).unwrap_or_default(),
            Some((open, part.get(open + 1..).unwrap_or_default())),
        ),
        None => (part, None),
    };
    if word.is_empty() {
        return Err(scope_err(input, offset, NO_TYPE));
    }
    check_type_word(input, word, offset)?;
    if let Some((open, rest)) = class {
        // Deprecated `type(class)`: validated so that garbage is not silently
        // accepted, then dropped.
        let class_at = offset + open + 1;
        let Some(class_word) = rest.strip_suffix(')') else {
            return Err(scope_err(input, offset + part.len(), UNCLOSED_CLASS));
        };
        if class_word.is_empty() {
            return Err(scope_err(input, class_at, EMPTY_CLASS));
        }
        check_type_word(input, class_word, class_at)?;
    }
    Ok(ResourceType::from_word(word))
}

/// Checks that `word` (at `offset` of `input`) is `[a-z0-9]+`.
fn check_type_word(input: &str, word: &str, offset: usize) -> Result<(), ParseError> {
    match word
        .bytes()
        .position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit()))
    {
        Some(bad) => Err(scope_err(input, offset + bad, BAD_TYPE)),
        None => Ok(()),
    }
}

/// Parses the comma-separated actions `part`, found at byte `offset` of `input`.
pub(super) fn parse_actions(input: &str, part: &str, offset: usize) -> Result<Actions, ParseError> {
    if part.is_empty() {
        return Err(scope_err(input, offset, NO_ACTION));
    }
    let mut actions = BTreeSet::new();
    let mut at = offset;
    for item in part.split(',') {
        if item.is_empty() {
            return Err(scope_err(input, at, EMPTY_ACTION));
        }
        let action = Action::from_word(item).ok_or_else(|| scope_err(input, at, BAD_ACTION))?;
        actions.insert(action);
        at += item.len() + 1;
    }
    Ok(actions.into_iter().collect())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::error::ParseErrorKind;
    use proptest::prelude::*;

    #[test]
    fn other_types_and_actions_are_carried() {
        let t: ResourceType = "plugin".parse().unwrap();
        assert!(matches!(&t, ResourceType::Other(w) if w.as_str() == "plugin"));
        assert_eq!(
            "registry".parse::<ResourceType>().unwrap(),
            ResourceType::Registry
        );
        assert_eq!(
            "repository(plugin)".parse::<ResourceType>().unwrap(),
            ResourceType::Repository
        );
        let a: Actions = "pull,metadata-read".parse().unwrap();
        assert!(matches!(a.iter().next(), Some(Action::Other(w)) if w.as_str() == "metadata-read"));
        assert_eq!(a.to_string(), "metadata-read,pull");
        assert!(a.contains(&Action::Pull) && !a.contains(&Action::Push));
        assert_eq!("*".parse::<Action>().unwrap(), Action::All);
        let mut v = vec![Action::Push, Action::Pull, Action::All, Action::Delete];
        v.sort();
        assert_eq!(v, [Action::All, Action::Delete, Action::Pull, Action::Push]);
    }

    #[test]
    fn star_absorbs_and_intersects_as_everything() {
        let a = Actions::from_iter([Action::Pull, Action::All, Action::Push]);
        assert_eq!((a.len(), a.to_string()), (1, "*".to_owned()));
        assert_eq!("push,*,pull".parse::<Actions>().unwrap(), Actions::all());
        let pull_push: Actions = "push,pull".parse().unwrap();
        assert_eq!(Actions::all().intersection(&pull_push), pull_push);
        assert_eq!(pull_push.union(&Actions::all()), Actions::all());
        let e = "pull,Push".parse::<Actions>().unwrap_err();
        assert_eq!((e.kind(), e.position()), (ParseErrorKind::Scope, 5));
    }

    pub(crate) fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            Just(Action::Pull),
            Just(Action::Push),
            Just(Action::Delete),
            Just(Action::All),
            "[a-z][a-z0-9_-]{0,6}".prop_map(|w| w.parse::<Action>().unwrap()),
        ]
    }

    pub(crate) fn actions() -> impl Strategy<Value = Actions> {
        proptest::collection::vec(action(), 0..4).prop_map(Actions::from_iter)
    }

    pub(crate) fn resource_type() -> impl Strategy<Value = ResourceType> {
        prop_oneof![
            Just(ResourceType::Repository),
            Just(ResourceType::Registry),
            "[a-z0-9]{1,8}".prop_map(|w| w.parse::<ResourceType>().unwrap()),
        ]
    }

    proptest! {
        #[test]
        fn actions_lattice(a in actions(), b in actions(), c in actions()) {
            prop_assert_eq!(a.union(&b), b.union(&a));
            prop_assert_eq!(a.intersection(&b), b.intersection(&a));
            prop_assert_eq!(a.union(&b).union(&c), a.union(&b.union(&c)));
            prop_assert_eq!(a.intersection(&b).intersection(&c), a.intersection(&b.intersection(&c)));
            prop_assert_eq!(a.union(&a), a.clone());
            prop_assert_eq!(a.intersection(&a), a.clone());
            prop_assert!(a.intersection(&b).is_subset(&a));
            prop_assert!(a.intersection(&b).is_subset(&b));
            prop_assert!(a.is_subset(&a.union(&b)));
            prop_assert!(!a.union(&b).is_all() || a.union(&b).len() == 1);
        }

        #[test]
        fn actions_round_trip(a in actions()) {
            if !a.is_empty() {
                prop_assert_eq!(a.to_string().parse::<Actions>().unwrap(), a);
            }
        }

        #[test]
        fn words_never_panic(input in any::<String>(), word in "[a-z0-9*(),-]{0,12}") {
            for s in [&input, &word] {
                if let Ok(a) = s.parse::<Actions>() {
                    prop_assert_eq!(a.to_string().parse::<Actions>().unwrap().to_string(), a.to_string());
                }
                if let Ok(t) = s.parse::<ResourceType>() {
                    prop_assert_eq!(t.to_string().parse::<ResourceType>().unwrap(), t);
                }
                let _ = s.parse::<Action>();
            }
        }
    }
}
