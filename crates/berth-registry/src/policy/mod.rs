//! Who may do what: the one access decision of berth.
//!
//! [`allowed_actions`] is a pure function of a [`Subject`] (who is asking, and
//! through which credential) and a repository (its name and, when it exists,
//! whether it is public). The token service calls it to compute a grant
//! ([`grant`]: requested ∩ allowed); the request gate calls it to tell "your
//! token lacks this action, ask for it" (401 `insufficient_scope`) from "you may
//! not" (404 or 403). No other code decides access.
//!
//! The rules, in order:
//!
//! | subject | on | actions |
//! |---|---|---|
//! | an administrator | every repository | pull, push, delete |
//! | a user | repositories under their own name (`alice/...`) | pull, push, delete |
//! | an organisation member | the organisation's repositories | member: pull; maintainer: pull, push; owner: pull, push, delete |
//! | a robot account | its organisation's repositories | pull, push, delete (bounded by its token) |
//! | anyone, anonymous included | a public repository | pull |
//! | a personal access token | as its user, intersected with the token's actions and repository patterns | |
//! | anyone | `registry:catalog:*` | `*` (the listing shows only what the caller may pull) |
//!
//! Everything else is refused. A repository that does not exist is private:
//! creating one needs push on its namespace, which only the rows above give.
//!
//! When something is refused, [`refusal`] tells whether the subject's own
//! rights or its personal access token's limits refused it, and [`reach`]
//! where the subject's rights would allow it (both derived from
//! [`allowed_actions`], so they cannot drift from the table): the gate words
//! its 403 from them.

use berth_core::name::RepositoryName;
use berth_core::scope::{Action, Actions, ResourceType, Scope, Scopes};

use crate::identity::Role;
use crate::identity::patterns::repo_pattern_matches;

/// Who is asking, as the token service and the gate know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// No credentials.
    Anonymous,
    /// An authenticated user or robot account.
    User(Principal),
}

/// An authenticated identity with what policy needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's (or robot's) name: `sub` in its tokens.
    pub name: String,
    /// Administrators may do everything.
    pub is_admin: bool,
    /// The organisation a robot account belongs to.
    pub robot_of: Option<String>,
    /// Organisations the user belongs to, with the role held in each.
    pub memberships: Vec<(String, Role)>,
    /// When the user authenticated with a personal access token: its limits.
    pub token: Option<TokenLimits>,
}

/// What a personal access token (or robot token) narrows its user's rights to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLimits {
    /// The token's id (carried in the JWTs issued for it as `berth_pat`).
    pub token_id: i64,
    /// The token's name, unique among its user's tokens (empty when the token
    /// is no longer known).
    pub name: String,
    /// The actions the token carries (a subset of pull, push, delete).
    pub actions: Actions,
    /// Repository patterns (`acme/*`, `acme/**`); empty means every repository.
    pub repositories: Vec<String>,
}

/// What policy needs to know about an existing repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositoryFacts {
    /// Anyone, anonymous included, may pull a public repository.
    pub public: bool,
}

impl Subject {
    /// The `sub` claim for this subject: the user's name, empty for anonymous.
    pub fn name(&self) -> &str {
        match self {
            Self::Anonymous => "",
            Self::User(p) => &p.name,
        }
    }
}

/// The actions `subject` may perform on repository `name`; `facts` is `None`
/// when the repository does not exist.
pub fn allowed_actions(
    subject: &Subject,
    name: &RepositoryName,
    facts: Option<RepositoryFacts>,
) -> Actions {
    let public_pull = || -> Actions {
        if facts.is_some_and(|f| f.public) {
            std::iter::once(Action::Pull).collect()
        } else {
            Actions::default()
        }
    };
    let Subject::User(principal) = subject else {
        return public_pull();
    };
    let namespace = name.namespace();
    let own: Actions = if principal.is_admin {
        all_actions()
    } else if let Some(org) = &principal.robot_of {
        if org == namespace {
            all_actions()
        } else {
            Actions::default()
        }
    } else if principal.name == namespace {
        all_actions()
    } else {
        principal
            .memberships
            .iter()
            .find(|(org, _)| org == namespace)
            .map(|(_, role)| role_actions(*role))
            .unwrap_or_default()
    };
    let actions = own.union(&public_pull());
    match &principal.token {
        None => actions,
        Some(limits) => {
            let in_scope = limits.repositories.is_empty()
                || limits
                    .repositories
                    .iter()
                    .any(|p| repo_pattern_matches(p, name.as_str()));
            if in_scope {
                actions.intersection(&limits.actions)
            } else {
                Actions::default()
            }
        }
    }
}

/// Why a subject may not perform an action it was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The subject's own rights do not reach the repository.
    Rights,
    /// The subject's rights do, but the limits of the personal access token it
    /// authenticated with do not.
    TokenLimits,
}

/// Why `subject` may not perform `action` on repository `name`; `None` when it may.
pub fn refusal(
    subject: &Subject,
    name: &RepositoryName,
    facts: Option<RepositoryFacts>,
    action: &Action,
) -> Option<Refusal> {
    if is_allowed(subject, name, facts, action) {
        return None;
    }
    match subject {
        Subject::User(p) if p.token.is_some() => {
            let unlimited = Subject::User(Principal {
                token: None,
                ..p.clone()
            });
            Some(if is_allowed(&unlimited, name, facts, action) {
                Refusal::TokenLimits
            } else {
                Refusal::Rights
            })
        }
        _ => Some(Refusal::Rights),
    }
}

/// Where a principal's own rights (its token's limits aside) allow an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every repository (administrators).
    Everywhere,
    /// The repositories of these namespaces, each with the standing that
    /// gives the action there, in the order: own namespace, organisations.
    Namespaces(Vec<(String, Standing)>),
}

/// What gives a principal its rights in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The user's own namespace.
    Own,
    /// An organisation the user belongs to, with this role.
    Member(Role),
    /// The organisation of a robot account.
    Robot,
}

/// Where `principal` may perform `action` by its own rights: its namespace
/// and organisations as the rule table gives them (public repositories, which
/// give pull only, aside).
pub fn reach(principal: &Principal, action: &Action) -> Reach {
    if principal.is_admin {
        return Reach::Everywhere;
    }
    let subject = Subject::User(Principal {
        token: None,
        ..principal.clone()
    });
    let mut candidates: Vec<(String, Standing)> = Vec::new();
    match &principal.robot_of {
        Some(org) => candidates.push((org.clone(), Standing::Robot)),
        None => candidates.push((principal.name.clone(), Standing::Own)),
    }
    candidates.extend(
        principal
            .memberships
            .iter()
            .map(|(org, role)| (org.clone(), Standing::Member(*role))),
    );
    // Asked of `allowed_actions` itself, so that this list cannot drift from
    // the rules: a repository that does not exist in each namespace.
    let namespaces = candidates
        .into_iter()
        .filter(|(namespace, _)| {
            RepositoryName::parse(&format!("{namespace}/x"))
                .is_ok_and(|name| allowed_actions(&subject, &name, None).contains(action))
        })
        .collect();
    Reach::Namespaces(namespaces)
}

/// The limits of the personal access token the subject authenticated with.
pub fn token_limits(subject: &Subject) -> Option<&TokenLimits> {
    match subject {
        Subject::User(p) => p.token.as_ref(),
        Subject::Anonymous => None,
    }
}

/// Whether a repository listed for `subject` (the catalog) stays listed once
/// its token's limits apply: the token must carry pull and match the name.
pub fn token_admits_listing(subject: &Subject, name: &str) -> bool {
    match token_limits(subject) {
        None => true,
        Some(limits) => {
            limits.actions.contains(&Action::Pull)
                && (limits.repositories.is_empty()
                    || limits
                        .repositories
                        .iter()
                        .any(|p| repo_pattern_matches(p, name)))
        }
    }
}

/// Whether `subject` may perform `action` on repository `name`.
pub fn is_allowed(
    subject: &Subject,
    name: &RepositoryName,
    facts: Option<RepositoryFacts>,
    action: &Action,
) -> bool {
    allowed_actions(subject, name, facts).contains(action)
}

/// The token grant: each requested scope intersected with what policy allows.
///
/// `facts` answers for each repository name whether it exists and is public.
/// Scopes on names that are not valid repository names, and on resource types
/// other than `repository` and `registry:catalog`, are dropped: a partial or
/// empty grant is an answer, not an error.
pub fn grant(
    subject: &Subject,
    requested: &Scopes,
    facts: impl Fn(&RepositoryName) -> Option<RepositoryFacts>,
) -> Scopes {
    let mut granted = Scopes::new();
    for scope in requested.iter() {
        let allowed = match scope.resource_type() {
            ResourceType::Repository => match RepositoryName::parse(scope.name()) {
                Ok(name) => allowed_actions(subject, &name, facts(&name)),
                Err(_) => continue,
            },
            ResourceType::Registry if scope.name() == "catalog" => Actions::all(),
            _ => continue,
        };
        let actions = scope.actions().intersection(&allowed);
        if actions.is_empty() {
            continue;
        }
        if let Ok(scope) = Scope::new(scope.resource_type().clone(), scope.name(), actions) {
            granted.insert(scope);
        }
    }
    granted
}

fn all_actions() -> Actions {
    [Action::Pull, Action::Push, Action::Delete]
        .into_iter()
        .collect()
}

fn role_actions(role: Role) -> Actions {
    match role {
        Role::Member => [Action::Pull].into_iter().collect(),
        Role::Maintainer => [Action::Pull, Action::Push].into_iter().collect(),
        Role::Owner => all_actions(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap()
    }

    fn user(name: &str) -> Principal {
        Principal {
            name: name.to_owned(),
            is_admin: false,
            robot_of: None,
            memberships: Vec::new(),
            token: None,
        }
    }

    fn actions(s: &str) -> Actions {
        s.parse().unwrap()
    }

    const PUBLIC: Option<RepositoryFacts> = Some(RepositoryFacts { public: true });
    const PRIVATE: Option<RepositoryFacts> = Some(RepositoryFacts { public: false });

    /// One table: every row of the module doc's rule table, and the refusals.
    #[test]
    fn rule_table() {
        let alice = Subject::User(user("alice"));
        let admin = Subject::User(Principal {
            is_admin: true,
            ..user("root")
        });
        let bob = Subject::User(Principal {
            memberships: vec![
                ("acme".into(), Role::Member),
                ("build".into(), Role::Maintainer),
                ("ops".into(), Role::Owner),
            ],
            ..user("bob")
        });
        let robot = Subject::User(Principal {
            robot_of: Some("acme".into()),
            ..user("acme-ci")
        });
        let cases: &[(&Subject, &str, Option<RepositoryFacts>, &str)] = &[
            (&Subject::Anonymous, "alice/app", PUBLIC, "pull"),
            (&Subject::Anonymous, "alice/app", PRIVATE, ""),
            (&Subject::Anonymous, "alice/app", None, ""),
            (&alice, "alice/app", PRIVATE, "delete,pull,push"),
            (&alice, "alice/new", None, "delete,pull,push"),
            (&alice, "bob/app", PRIVATE, ""),
            (&alice, "bob/app", PUBLIC, "pull"),
            (&alice, "bob/app", None, ""),
            (&admin, "bob/app", PRIVATE, "delete,pull,push"),
            (&bob, "acme/api", PRIVATE, "pull"),
            (&bob, "build/api", PRIVATE, "pull,push"),
            (&bob, "ops/api", None, "delete,pull,push"),
            (&bob, "other/api", PRIVATE, ""),
            (&robot, "acme/api", PRIVATE, "delete,pull,push"),
            (&robot, "acme-ci/x", None, ""),
            (&robot, "other/api", PUBLIC, "pull"),
        ];
        for (subject, name, facts, expected) in cases {
            let got = allowed_actions(subject, &repo(name), *facts);
            let expected = if expected.is_empty() {
                Actions::default()
            } else {
                actions(expected)
            };
            assert_eq!(got, expected, "{} on {name} ({facts:?})", subject.name());
        }
    }

    #[test]
    fn personal_access_tokens_narrow_their_user() {
        let limited = Subject::User(Principal {
            token: Some(TokenLimits {
                token_id: 1,
                name: "ci".to_owned(),
                actions: actions("pull"),
                repositories: vec!["alice/web-*".into()],
            }),
            ..user("alice")
        });
        assert_eq!(
            allowed_actions(&limited, &repo("alice/web-app"), PRIVATE),
            actions("pull")
        );
        assert!(allowed_actions(&limited, &repo("alice/api"), PRIVATE).is_empty());
        // A token never widens: pull-only on someone else's private repository is still nothing.
        assert!(allowed_actions(&limited, &repo("bob/web-x"), PRIVATE).is_empty());
    }

    #[test]
    fn refusals_say_whether_rights_or_token_limits_refuse() {
        let bob = Principal {
            memberships: vec![
                ("acme".into(), Role::Member),
                ("build".into(), Role::Maintainer),
            ],
            ..user("bob")
        };
        let push = Action::Push;
        let plain = Subject::User(bob.clone());
        assert_eq!(refusal(&plain, &repo("bob/app"), None, &push), None);
        assert_eq!(
            refusal(&plain, &repo("acme/api"), PRIVATE, &push),
            Some(Refusal::Rights)
        );
        let limited = Subject::User(Principal {
            token: Some(TokenLimits {
                token_id: 1,
                name: "ci".to_owned(),
                actions: actions("pull"),
                repositories: vec!["bob/*".into()],
            }),
            ..bob.clone()
        });
        assert_eq!(
            refusal(&limited, &repo("bob/app"), None, &push),
            Some(Refusal::TokenLimits)
        );
        assert_eq!(
            refusal(&limited, &repo("build/x"), None, &push),
            Some(Refusal::TokenLimits),
            "outside the patterns, where bob may push"
        );
        assert_eq!(
            refusal(&limited, &repo("other/x"), None, &push),
            Some(Refusal::Rights)
        );

        assert_eq!(
            reach(&bob, &push),
            Reach::Namespaces(vec![
                ("bob".into(), Standing::Own),
                ("build".into(), Standing::Member(Role::Maintainer)),
            ])
        );
        assert_eq!(
            reach(&bob, &Action::Delete),
            Reach::Namespaces(vec![("bob".into(), Standing::Own)])
        );
        let robot = Principal {
            robot_of: Some("acme".into()),
            ..user("acme-ci")
        };
        assert_eq!(
            reach(&robot, &push),
            Reach::Namespaces(vec![("acme".into(), Standing::Robot)])
        );
        let admin = Principal {
            is_admin: true,
            ..user("root")
        };
        assert_eq!(reach(&admin, &push), Reach::Everywhere);
    }

    #[test]
    fn grant_is_the_request_intersected_with_policy() {
        let alice = Subject::User(user("alice"));
        let requested = Scopes::parse(
            "repository:alice/app:pull,push,delete repository:bob/lib:pull,push registry:catalog:* repository:Bad:pull",
        )
        .unwrap();
        let facts = |name: &RepositoryName| match name.as_str() {
            "bob/lib" => PUBLIC,
            _ => None,
        };
        assert_eq!(
            grant(&alice, &requested, facts).to_string(),
            "registry:catalog:* repository:alice/app:delete,pull,push repository:bob/lib:pull"
        );
        // Anonymous asking for more than pull gets the subset, not an error.
        assert_eq!(
            grant(&Subject::Anonymous, &requested, facts).to_string(),
            "registry:catalog:* repository:bob/lib:pull"
        );
        // `*` means everything the subject may do.
        let star = Scopes::parse("repository:alice/app:*").unwrap();
        assert_eq!(
            grant(&alice, &star, facts).to_string(),
            "repository:alice/app:delete,pull,push"
        );
    }
}
