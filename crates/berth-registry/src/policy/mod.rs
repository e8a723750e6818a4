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
//! | a workload (a CI job's ID token, exchanged) | the repositories of the trust rules that accepted it, each rule's patterns inside its namespace | each rule's actions |
//! | anyone | `registry:catalog:*` | `*` (the listing shows only what the caller may pull) |
//! | anyone (a `public` proxy), any authenticated subject (an `authenticated` one) | a repository of a pull-through cache namespace (`proxy/`), pulled through yet or not | pull; administrators also delete; nobody pushes (the rows above do not apply there) |
//!
//! Everything else is refused. A repository that does not exist is private:
//! creating one needs push on its namespace, which only the rows above give.
//!
//! When something is refused, [`refusal`] tells whether the subject's own
//! rights or its personal access token's limits refused it, and [`reach`]
//! where the subject's rights would allow it (both derived from
//! [`allowed_actions`], so they cannot drift from the table): the gate words
//! its 403 from them.
//!
//! # The account API
//!
//! The JSON API under `/api/v1/` (self-service and administration) asks the
//! functions below, each of which answers `Ok` or an [`AccountDenial`] that
//! the HTTP layer words. They decide from the subject alone (never from
//! whether the organisation, user or repository named exists), so a refusal
//! reads the same for what exists and what does not.
//!
//! | subject | may | function |
//! |---|---|---|
//! | an administrator (password, refresh token, or a token carrying pull, push and delete with no repository patterns) | everything in this table, for anyone; list users, organisations and repositories; create users and organisations; delete users, organisations, robots and repositories; set any password without the old one; rotate and retire signing keys | [`administer`] |
//! | a user or robot | list, create and revoke their own personal access tokens | [`manage_tokens`] |
//! | an organisation owner | the same for the robots of the organisation | [`manage_tokens`] |
//! | anyone but an administrator | create a token only within its owner's rights: each action, on each repository pattern's namespace (a literal first component), where the rule table above gives the owner that action by their own rights | [`create_token`] |
//! | a user (not a robot, not through a personal access token) | change their own password, giving the old one | [`change_own_password`] |
//! | an organisation owner | add members, change their roles, remove them; create, list and delete robots | [`manage_org`] |
//! | an organisation member (any role) | list its members and robots | [`view_org`] |
//! | a user; an organisation owner | set the visibility of the repositories of their own namespace; of the organisation's; list those repositories with their visibility | [`set_visibility`], [`repository_listing`] |
//! | a user; an organisation owner | list, create and remove the trust rules (workload identity) of their own namespace; of the organisation's: a rule grants only pull, push, delete inside that namespace, which is what its owner holds | [`manage_trust`] |
//! | a personal access token | the above only within its own limits: a token it creates or revokes carries no action, repository pattern or expiry beyond its own (it may always revoke itself); organisation management needs pull, push and delete on all of `<org>/**`, visibility all three on the repository; never the password | [`create_token`], [`revoke_token`], [`manage_org`], [`set_visibility`], [`change_own_password`] |
//!
//! Why a personal access token never changes the password: it is a narrow,
//! often long-lived credential handed to CI or a script; the password is the
//! credential that makes every other, and its change ends the logins made
//! with the old one. A leaked token must not be a way to take the account
//! over, even with the old password guessed beside it.

use berth_core::name::RepositoryName;
use berth_core::scope::{Action, Actions, ResourceType, Scope, Scopes};

use crate::identity::Role;
use crate::identity::patterns::{pattern_within, repo_pattern_matches};
use crate::meta::CatalogFilter;

/// Who is asking, as the token service and the gate know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// No credentials.
    Anonymous,
    /// An authenticated user or robot account.
    User(Principal),
    /// A CI job, by the ID token it exchanged (`trust/`).
    Workload(Workload),
}

/// A CI job whose ID token trust rules accepted: it may do what they grant,
/// nothing else (it is nobody's account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `trust:<ns>/<rule>[+...]:<ID token sub>[@run:<id>]`: `sub` of its tokens.
    pub name: String,
    /// What each accepting rule grants.
    pub grants: Vec<TrustGrant>,
}

/// What one trust rule grants a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustGrant {
    /// The rule's id (`berth_trust`).
    pub rule_id: i64,
    /// The rule's namespace: its patterns lie inside it.
    pub namespace: String,
    /// The actions granted.
    pub actions: Actions,
    /// Repository patterns (`acme/app`, `acme/*`).
    pub repositories: Vec<String>,
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
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

/// What policy needs to know about an existing repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositoryFacts {
    /// Anyone, anonymous included, may pull a public repository.
    pub public: bool,
    /// A repository of a pull-through cache namespace: another registry's
    /// content, which nobody pushes into.
    pub proxied: bool,
}

impl Subject {
    /// The `sub` claim for this subject: the user's name, empty for anonymous.
    pub fn name(&self) -> &str {
        match self {
            Self::Anonymous => "",
            Self::User(p) => &p.name,
            Self::Workload(w) => &w.name,
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
    if let Some(facts) = facts.filter(|f| f.proxied) {
        return proxied_actions(subject, name, facts);
    }
    let principal = match subject {
        Subject::Anonymous => return public_pull(),
        Subject::Workload(workload) => {
            return workload
                .grants
                .iter()
                .filter(|g| {
                    g.namespace == name.namespace()
                        && g.repositories
                            .iter()
                            .any(|p| repo_pattern_matches(p, name.as_str()))
                })
                .fold(public_pull(), |acc, g| acc.union(&g.actions));
        }
        Subject::User(principal) => principal,
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
    token_narrowed(principal, name, own.union(&public_pull()))
}

/// `actions` as far as the personal access token `principal` signed in
/// with (if any) allows on `name`: its actions, on its repository patterns.
fn token_narrowed(principal: &Principal, name: &RepositoryName, actions: Actions) -> Actions {
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

/// The actions on a repository of a pull-through cache namespace: pull for
/// anyone when the proxy is public, for any authenticated subject
/// otherwise; delete for administrators (to purge a cached copy); push for
/// nobody. A personal access token's limits apply as everywhere.
fn proxied_actions(subject: &Subject, name: &RepositoryName, facts: RepositoryFacts) -> Actions {
    let pull: Actions = std::iter::once(Action::Pull).collect();
    match subject {
        Subject::Anonymous if facts.public => pull,
        Subject::Anonymous => Actions::default(),
        Subject::Workload(_) => pull,
        Subject::User(principal) => {
            let own = if principal.is_admin {
                [Action::Pull, Action::Delete].into_iter().collect()
            } else {
                pull
            };
            token_narrowed(principal, name, own)
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
        Subject::Anonymous | Subject::Workload(_) => None,
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

/// Which repositories listings show `subject` (the catalog, the web
/// interface's explore page), before its token's limits
/// ([`token_admits_listing`]): every one for an administrator; public ones
/// and those of its namespaces (its own or its robot's organisation, its
/// memberships) for a user; public ones for anonymous callers and
/// workloads (a workload's rules name repositories, not namespaces: it
/// knows its own by name).
pub fn catalog_filter(subject: &Subject) -> CatalogFilter {
    match subject {
        Subject::Anonymous | Subject::Workload(_) => CatalogFilter::Visible {
            namespaces: Vec::new(),
        },
        Subject::User(p) if p.is_admin => CatalogFilter::All,
        Subject::User(p) => {
            let mut namespaces: Vec<String> =
                p.memberships.iter().map(|(org, _)| org.clone()).collect();
            match &p.robot_of {
                Some(org) => namespaces.push(org.clone()),
                None => namespaces.push(p.name.clone()),
            }
            CatalogFilter::Visible { namespaces }
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

// ---------------------------------------------------------------------------
// The account API (see the module doc's second table)

/// What a personal access token carries, for deciding whether one may be
/// created or revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// Its actions (a subset of pull, push, delete).
    pub actions: Actions,
    /// Its repository patterns; empty means every repository its user may reach.
    pub repositories: Vec<String>,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

/// What a token asked for carries beyond the token the subject authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broader {
    /// These actions.
    Actions(Actions),
    /// Every repository (no patterns), where the subject's token has patterns.
    AllRepositories,
    /// This pattern, within none of the subject's token's patterns.
    Pattern(String),
    /// A later expiry.
    Expiry,
}

/// Why an account action is refused: what the HTTP layer words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountDenial {
    /// Only an administrator may.
    NotAdministrator,
    /// An administrator's personal access token that does not carry pull,
    /// push and delete on every repository.
    LimitedAdministratorToken(TokenLimits),
    /// A personal access token never changes the password.
    PasswordByToken,
    /// A robot account has no password.
    Robot,
    /// The tokens of another user who is no robot of an organisation the
    /// subject owns.
    OthersTokens {
        /// Whose tokens were asked for.
        owner: String,
    },
    /// The token asked for is broader than the subject's own token.
    BroaderThanToken {
        /// What exceeds.
        what: Broader,
        /// The subject's token.
        limits: TokenLimits,
    },
    /// The token asked for reaches beyond what its owner may do.
    BeyondRights {
        /// The token's owner.
        owner: String,
        /// The action the owner does not have there.
        action: Action,
        /// The pattern outside the owner's rights; `None` when the owner has
        /// the action nowhere.
        pattern: Option<String>,
        /// Where the owner does have it.
        reach: Reach,
    },
    /// Not an owner of the organisation.
    NotOwner {
        /// The organisation.
        org: String,
        /// The subject's role there, if it is a member.
        role: Option<Role>,
    },
    /// Not a member of the organisation.
    NotMember {
        /// The organisation.
        org: String,
    },
    /// The repository is in no namespace the subject manages.
    NotManager {
        /// The repository.
        repository: String,
    },
    /// A listing of a namespace the subject does not manage.
    NotNamespaceManager {
        /// The namespace asked for.
        namespace: String,
        /// The namespaces the subject manages.
        managed: Vec<String>,
    },
    /// Trust rules of a namespace the subject does not manage.
    NotTrustManager {
        /// The namespace asked for.
        namespace: String,
        /// The namespaces whose rules the subject manages.
        managed: Vec<String>,
    },
    /// The subject's personal access token does not carry pull, push and
    /// delete on all of `scope` (`acme/**`, or one repository).
    TokenTooNarrow {
        /// What the action needs the token to cover.
        scope: String,
        /// The subject's token.
        limits: TokenLimits,
    },
}

/// Whether `principal` may use the administrator API: an administrator,
/// through a password, a refresh token, or a personal access token carrying
/// pull, push and delete with no repository patterns (a token handed to CI
/// for pulls must not administer the registry).
pub fn administer(principal: &Principal) -> Result<(), AccountDenial> {
    if !principal.is_admin {
        return Err(AccountDenial::NotAdministrator);
    }
    match &principal.token {
        Some(limits)
            if !all_actions().is_subset(&limits.actions) || !limits.repositories.is_empty() =>
        {
            Err(AccountDenial::LimitedAdministratorToken(limits.clone()))
        }
        _ => Ok(()),
    }
}

/// Whether `principal` may list, create and revoke the personal access
/// tokens of `owner` (a robot of `owner_robot_of`, if it is one): their own,
/// the robots' of an organisation they own, anyone's for an administrator.
pub fn manage_tokens(
    principal: &Principal,
    owner: &str,
    owner_robot_of: Option<&str>,
) -> Result<(), AccountDenial> {
    if principal.name == owner {
        return Ok(());
    }
    if let Some(org) = owner_robot_of
        && role_in(principal, org) == Some(Role::Owner)
    {
        return manage_org(principal, org);
    }
    if principal.is_admin {
        return administer(principal);
    }
    Err(AccountDenial::OthersTokens {
        owner: owner.to_owned(),
    })
}

/// Whether `actor` may create the token `asked` for `owner` (a [`Principal`]
/// whose memberships and robot organisation are the owner's; its token is
/// ignored): [`manage_tokens`], then, unless an administrator gives it to
/// another user (a token never grants more than its user may do at the
/// moment it is used), within the owner's rights and within the actor's own
/// personal access token.
pub fn create_token(
    actor: &Principal,
    owner: &Principal,
    asked: &TokenSpec,
) -> Result<(), AccountDenial> {
    if actor.name != owner.name && administer(actor).is_ok() {
        return Ok(());
    }
    manage_tokens(actor, &owner.name, owner.robot_of.as_deref())?;
    if let Some(limits) = &actor.token {
        within_token(asked, limits)?;
    }
    within_rights(owner, asked)
}

/// Whether `actor` may revoke `owner`'s token `existing` (id `existing_id`):
/// [`manage_tokens`], and through a personal access token only a token no
/// broader than it, or itself.
pub fn revoke_token(
    actor: &Principal,
    owner: &str,
    owner_robot_of: Option<&str>,
    existing_id: i64,
    existing: &TokenSpec,
) -> Result<(), AccountDenial> {
    if actor.name != owner && administer(actor).is_ok() {
        return Ok(());
    }
    manage_tokens(actor, owner, owner_robot_of)?;
    match &actor.token {
        Some(limits) if limits.token_id != existing_id => within_token(existing, limits),
        _ => Ok(()),
    }
}

/// Whether `principal` may change their own password (the old one is
/// checked apart): a person, not through a personal access token (see the
/// module doc).
pub fn change_own_password(principal: &Principal) -> Result<(), AccountDenial> {
    if principal.robot_of.is_some() {
        return Err(AccountDenial::Robot);
    }
    if principal.token.is_some() {
        return Err(AccountDenial::PasswordByToken);
    }
    Ok(())
}

/// Whether `principal` may manage organisation `org`'s members and robots:
/// its owners (through a personal access token only one carrying pull, push
/// and delete on all of `<org>/**`), and administrators.
pub fn manage_org(principal: &Principal, org: &str) -> Result<(), AccountDenial> {
    let role = role_in(principal, org);
    if role == Some(Role::Owner) {
        return match &principal.token {
            Some(limits) if !token_carries_all_on(limits, &format!("{org}/**")) => {
                Err(AccountDenial::TokenTooNarrow {
                    scope: format!("{org}/**"),
                    limits: limits.clone(),
                })
            }
            _ => Ok(()),
        };
    }
    if principal.is_admin {
        return administer(principal);
    }
    Err(AccountDenial::NotOwner {
        org: org.to_owned(),
        role,
    })
}

/// Whether `principal` may list organisation `org`'s members and robots:
/// any member, and administrators.
pub fn view_org(principal: &Principal, org: &str) -> Result<(), AccountDenial> {
    if role_in(principal, org).is_some() {
        return Ok(());
    }
    if principal.is_admin {
        return administer(principal);
    }
    Err(AccountDenial::NotMember {
        org: org.to_owned(),
    })
}

/// Whether `principal` may make repository `name` public or private: the
/// user of its namespace, the owners of its organisation (through a
/// personal access token only one carrying pull, push and delete on it),
/// administrators.
pub fn set_visibility(principal: &Principal, name: &RepositoryName) -> Result<(), AccountDenial> {
    let namespace = name.namespace();
    let manages = (principal.robot_of.is_none() && principal.name == namespace)
        || role_in(principal, namespace) == Some(Role::Owner);
    if manages {
        return match &principal.token {
            Some(limits) if !token_carries_all_on(limits, name.as_str()) => {
                Err(AccountDenial::TokenTooNarrow {
                    scope: name.as_str().to_owned(),
                    limits: limits.clone(),
                })
            }
            _ => Ok(()),
        };
    }
    if principal.is_admin {
        return administer(principal);
    }
    Err(AccountDenial::NotManager {
        repository: name.as_str().to_owned(),
    })
}

/// Which namespaces' repositories a listing of repositories with their
/// visibility shows `principal`: `asked` (or, when `None`, every namespace
/// for an administrator; their own and the organisations they own for
/// anyone else, as `Some` list). Anyone but an administrator may ask only
/// for a namespace they manage.
pub fn repository_listing(
    principal: &Principal,
    asked: Option<&str>,
) -> Result<Option<Vec<String>>, AccountDenial> {
    let managed = if administer(principal).is_ok() {
        None
    } else {
        Some(managed_namespaces(principal))
    };
    match (asked, managed) {
        (None, managed) => Ok(managed),
        (Some(namespace), None) => Ok(Some(vec![namespace.to_owned()])),
        (Some(namespace), Some(managed)) if managed.iter().any(|m| m == namespace) => {
            Ok(Some(vec![namespace.to_owned()]))
        }
        (Some(namespace), Some(managed)) => Err(AccountDenial::NotNamespaceManager {
            namespace: namespace.to_owned(),
            managed,
        }),
    }
}

/// Whether `principal` may list, create and remove the trust rules of
/// `namespace`: the user whose namespace it is (not a robot), the owners of
/// the organisation, administrators. Through a personal access token only
/// one carrying pull, push and delete on all of `<namespace>/**`: a rule
/// hands access to jobs, and must not reach further than the token that
/// made it. What a rule may grant (actions, patterns inside the namespace)
/// is checked when it is parsed (`trust::rule`), and never exceeds what the
/// namespace's owner holds there.
pub fn manage_trust(principal: &Principal, namespace: &str) -> Result<(), AccountDenial> {
    let own = principal.robot_of.is_none() && principal.name == namespace;
    if own || role_in(principal, namespace) == Some(Role::Owner) {
        let scope = format!("{namespace}/**");
        return match &principal.token {
            Some(limits) if !token_carries_all_on(limits, &scope) => {
                Err(AccountDenial::TokenTooNarrow {
                    scope,
                    limits: limits.clone(),
                })
            }
            _ => Ok(()),
        };
    }
    if principal.is_admin {
        return administer(principal);
    }
    Err(AccountDenial::NotTrustManager {
        namespace: namespace.to_owned(),
        managed: managed_namespaces(principal),
    })
}

/// The namespaces `principal` manages by its own rights: its own (not a
/// robot's), then the organisations it owns.
fn managed_namespaces(principal: &Principal) -> Vec<String> {
    let own = principal.robot_of.is_none().then(|| principal.name.clone());
    let owned = principal
        .memberships
        .iter()
        .filter(|(_, role)| *role == Role::Owner)
        .map(|(org, _)| org.clone());
    own.into_iter().chain(owned).collect()
}

/// The principal's role in `org`, if it is a member.
fn role_in(principal: &Principal, org: &str) -> Option<Role> {
    principal
        .memberships
        .iter()
        .find(|(name, _)| name == org)
        .map(|(_, role)| *role)
}

/// Whether a token carries pull, push and delete on everything `scope` (a
/// pattern such as `acme/**`, or a repository name) matches.
fn token_carries_all_on(limits: &TokenLimits, scope: &str) -> bool {
    all_actions().is_subset(&limits.actions)
        && (limits.repositories.is_empty()
            || limits
                .repositories
                .iter()
                .any(|pattern| pattern_within(scope, pattern)))
}

/// Whether `asked` is no broader than the token `limits`.
fn within_token(asked: &TokenSpec, limits: &TokenLimits) -> Result<(), AccountDenial> {
    let broader = |what| AccountDenial::BroaderThanToken {
        what,
        limits: limits.clone(),
    };
    if !asked.actions.is_subset(&limits.actions) {
        let beyond: Actions = asked
            .actions
            .iter()
            .filter(|a| !limits.actions.contains(a))
            .cloned()
            .collect();
        return Err(broader(Broader::Actions(beyond)));
    }
    if !limits.repositories.is_empty() {
        if asked.repositories.is_empty() {
            return Err(broader(Broader::AllRepositories));
        }
        if let Some(outside) = asked.repositories.iter().find(|pattern| {
            !limits
                .repositories
                .iter()
                .any(|own| pattern_within(pattern, own))
        }) {
            return Err(broader(Broader::Pattern(outside.clone())));
        }
    }
    if asked.expires_at > limits.expires_at {
        return Err(broader(Broader::Expiry));
    }
    Ok(())
}

/// Whether `owner`'s own rights (its token aside) give every action of
/// `asked` on the namespace of each of its patterns.
fn within_rights(owner: &Principal, asked: &TokenSpec) -> Result<(), AccountDenial> {
    let owner = Principal {
        token: None,
        ..owner.clone()
    };
    for action in asked.actions.iter() {
        let reach = reach(&owner, action);
        let Reach::Namespaces(namespaces) = &reach else {
            continue;
        };
        let beyond = |pattern: Option<&String>| AccountDenial::BeyondRights {
            owner: owner.name.clone(),
            action: action.clone(),
            pattern: pattern.cloned(),
            reach: reach.clone(),
        };
        if asked.repositories.is_empty() && namespaces.is_empty() {
            return Err(beyond(None));
        }
        for pattern in &asked.repositories {
            let namespace = pattern.split('/').next().unwrap_or("");
            let reached =
                !namespace.contains('*') && namespaces.iter().any(|(ns, _)| ns == namespace);
            if !reached {
                return Err(beyond(Some(pattern)));
            }
        }
    }
    Ok(())
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

    const PUBLIC: Option<RepositoryFacts> = Some(RepositoryFacts {
        public: true,
        proxied: false,
    });
    const PRIVATE: Option<RepositoryFacts> = Some(RepositoryFacts {
        public: false,
        proxied: false,
    });

    #[test]
    fn a_pull_through_cache_is_pulled_by_its_access_and_pushed_by_nobody() {
        let cached = |public| {
            Some(RepositoryFacts {
                public,
                proxied: true,
            })
        };
        let admin = Principal {
            is_admin: true,
            ..user("admin")
        };
        // `hub` as a user's name changes nothing: the cache's rows replace
        // the namespace rows.
        let hub = user("hub");
        let job = Subject::Workload(Workload {
            name: "trust:hub/x".into(),
            grants: vec![TrustGrant {
                rule_id: 1,
                namespace: "hub".into(),
                actions: actions("delete,pull,push"),
                repositories: vec!["hub/**".into()],
            }],
        });
        let narrow = with_token(&user("alice"), "pull", &["acme/**"]);
        let cases: Vec<(&str, Subject, bool, &str)> = vec![
            ("anonymous, public", Subject::Anonymous, true, "pull"),
            ("anonymous, authenticated", Subject::Anonymous, false, ""),
            ("a user", Subject::User(user("alice")), false, "pull"),
            ("the namesake user", Subject::User(hub), false, "pull"),
            (
                "an administrator",
                Subject::User(admin),
                false,
                "delete,pull",
            ),
            ("a CI job", job, false, "pull"),
            ("a token for elsewhere", Subject::User(narrow), true, ""),
        ];
        for (who, subject, public, expected) in cases {
            let expected = if expected.is_empty() {
                Actions::default()
            } else {
                actions(expected)
            };
            assert_eq!(
                allowed_actions(&subject, &repo("hub/library/alpine"), cached(public)),
                expected,
                "{who}"
            );
        }
    }

    #[test]
    fn a_workload_may_do_what_its_rules_grant_and_no_more() {
        let grant = |id, ns: &str, a: &str, patterns: &[&str]| TrustGrant {
            rule_id: id,
            namespace: ns.to_owned(),
            actions: actions(a),
            repositories: patterns.iter().map(|p| (*p).to_owned()).collect(),
        };
        let job = Subject::Workload(Workload {
            name: "trust:acme/release+bob/tools:repo:acme/app:ref:refs/heads/main@run:7".into(),
            grants: vec![
                grant(1, "acme", "pull,push", &["acme/app", "acme/lib/*"]),
                grant(2, "bob", "pull", &["bob/tools"]),
                // A pattern outside its namespace (never stored) grants nothing.
                grant(3, "bob", "delete,pull,push", &["acme/**"]),
            ],
        });
        let cases: &[(&str, Option<RepositoryFacts>, &str)] = &[
            ("acme/app", PRIVATE, "pull,push"),
            ("acme/app", None, "pull,push"),
            ("acme/lib/x", None, "pull,push"),
            ("acme/lib/x/y", None, ""),
            ("acme/other", PRIVATE, ""),
            ("acme/other", PUBLIC, "pull"),
            ("bob/tools", PRIVATE, "pull"),
            ("bob/other", None, ""),
        ];
        for (name, facts, expected) in cases {
            let expected = if expected.is_empty() {
                Actions::default()
            } else {
                actions(expected)
            };
            assert_eq!(
                allowed_actions(&job, &repo(name), *facts),
                expected,
                "{name}"
            );
        }
        assert_eq!(token_limits(&job), None);
    }

    #[test]
    fn trust_rules_are_managed_by_the_namespace_owner() {
        let alice = user("alice");
        assert_eq!(manage_trust(&alice, "alice"), Ok(()));
        let refused = manage_trust(&alice, "acme");
        assert!(matches!(
            refused,
            Err(AccountDenial::NotTrustManager { .. })
        ));
        let member = |role| Principal {
            memberships: vec![("acme".into(), role)],
            ..user("bob")
        };
        assert_eq!(manage_trust(&member(Role::Owner), "acme"), Ok(()));
        assert!(manage_trust(&member(Role::Maintainer), "acme").is_err());
        let robot = Principal {
            robot_of: Some("acme".into()),
            ..user("acme-ci")
        };
        assert!(manage_trust(&robot, "acme").is_err());
        assert!(manage_trust(&robot, "acme-ci").is_err());
        let admin = Principal {
            is_admin: true,
            ..user("root")
        };
        assert_eq!(manage_trust(&admin, "acme"), Ok(()));
        let with_token = |a: &str, patterns: &[&str]| Principal {
            token: Some(TokenLimits {
                token_id: 1,
                name: "ci".into(),
                actions: actions(a),
                repositories: patterns.iter().map(|p| (*p).to_owned()).collect(),
                expires_at: i64::MAX,
            }),
            ..user("alice")
        };
        assert_eq!(
            manage_trust(&with_token("delete,pull,push", &[]), "alice"),
            Ok(())
        );
        assert!(matches!(
            manage_trust(&with_token("pull", &[]), "alice"),
            Err(AccountDenial::TokenTooNarrow { .. })
        ));
        assert!(manage_trust(&with_token("delete,pull,push", &["alice/app"]), "alice").is_err());
    }

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
                expires_at: i64::MAX,
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
                expires_at: i64::MAX,
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

    fn spec(actions_: &str, repositories: &[&str], expires_at: i64) -> TokenSpec {
        TokenSpec {
            actions: actions(actions_),
            repositories: repositories.iter().map(|r| (*r).to_owned()).collect(),
            expires_at,
        }
    }

    fn with_token(p: &Principal, actions_: &str, repositories: &[&str]) -> Principal {
        Principal {
            token: Some(TokenLimits {
                token_id: 7,
                name: "ci".to_owned(),
                actions: actions(actions_),
                repositories: repositories.iter().map(|r| (*r).to_owned()).collect(),
                expires_at: 1_000,
            }),
            ..p.clone()
        }
    }

    /// The account API's table, row by row.
    #[test]
    fn account_rules() {
        let admin = Principal {
            is_admin: true,
            ..user("root")
        };
        let olive = Principal {
            memberships: vec![("acme".into(), Role::Owner), ("beta".into(), Role::Member)],
            ..user("olive")
        };
        let bob = Principal {
            memberships: vec![("acme".into(), Role::Maintainer)],
            ..user("bob")
        };
        let robot = Principal {
            robot_of: Some("acme".into()),
            ..user("acme-ci")
        };

        // Administration.
        assert_eq!(administer(&admin), Ok(()));
        assert_eq!(administer(&olive), Err(AccountDenial::NotAdministrator));
        assert!(administer(&with_token(&admin, "pull,push,delete", &[])).is_ok());
        assert!(matches!(
            administer(&with_token(&admin, "pull", &[])),
            Err(AccountDenial::LimitedAdministratorToken(_))
        ));
        assert!(matches!(
            administer(&with_token(&admin, "pull,push,delete", &["root/*"])),
            Err(AccountDenial::LimitedAdministratorToken(_))
        ));

        // Whose tokens.
        assert_eq!(manage_tokens(&bob, "bob", None), Ok(()));
        assert_eq!(manage_tokens(&olive, "acme-ci", Some("acme")), Ok(()));
        assert_eq!(
            manage_tokens(&bob, "acme-ci", Some("acme")),
            Err(AccountDenial::OthersTokens {
                owner: "acme-ci".into()
            })
        );
        assert!(manage_tokens(&bob, "olive", None).is_err());
        assert_eq!(manage_tokens(&admin, "bob", None), Ok(()));
        assert_eq!(manage_tokens(&robot, "acme-ci", Some("acme")), Ok(()));

        // Within the owner's rights.
        assert_eq!(
            create_token(&bob, &bob, &spec("pull,push,delete", &["bob/*"], 10)),
            Ok(())
        );
        assert_eq!(
            create_token(&bob, &bob, &spec("pull,push", &["acme/**"], 10)),
            Ok(())
        );
        assert_eq!(
            create_token(&bob, &bob, &spec("pull,push,delete", &[], 10)),
            Ok(())
        );
        assert!(matches!(
            create_token(&bob, &bob, &spec("pull,delete", &["acme/*"], 10)),
            Err(AccountDenial::BeyondRights { action: Action::Delete, pattern: Some(p), .. }) if p == "acme/*"
        ));
        assert!(matches!(
            create_token(&bob, &bob, &spec("pull", &["olive/*"], 10)),
            Err(AccountDenial::BeyondRights { pattern: Some(p), .. }) if p == "olive/*"
        ));
        assert!(matches!(
            create_token(&bob, &bob, &spec("pull", &["**"], 10)),
            Err(AccountDenial::BeyondRights { .. })
        ));
        assert_eq!(
            create_token(&admin, &admin, &spec("pull", &["**"], 10)),
            Ok(())
        );
        // An administrator gives another user any token; the grant bounds it.
        assert_eq!(
            create_token(&admin, &bob, &spec("pull", &["x/*"], 10)),
            Ok(())
        );
        // An owner gives its robot tokens on the organisation only.
        assert_eq!(
            create_token(&olive, &robot, &spec("pull,push,delete", &["acme/*"], 10)),
            Ok(())
        );
        assert!(create_token(&olive, &robot, &spec("pull", &["olive/*"], 10)).is_err());

        // Within the caller's own token.
        let narrow = with_token(&bob, "pull,push", &["bob/*", "acme/**"]);
        assert_eq!(
            create_token(&narrow, &bob, &spec("pull", &["bob/app"], 1_000)),
            Ok(())
        );
        assert!(matches!(
            create_token(&narrow, &bob, &spec("pull,delete", &["bob/app"], 10)),
            Err(AccountDenial::BroaderThanToken {
                what: Broader::Actions(_),
                ..
            })
        ));
        assert!(matches!(
            create_token(&narrow, &bob, &spec("pull", &[], 10)),
            Err(AccountDenial::BroaderThanToken {
                what: Broader::AllRepositories,
                ..
            })
        ));
        assert!(matches!(
            create_token(&narrow, &bob, &spec("pull", &["bob/**"], 10)),
            Err(AccountDenial::BroaderThanToken { what: Broader::Pattern(p), .. }) if p == "bob/**"
        ));
        assert!(matches!(
            create_token(&narrow, &bob, &spec("pull", &["bob/app"], 1_001)),
            Err(AccountDenial::BroaderThanToken {
                what: Broader::Expiry,
                ..
            })
        ));
        // Revoking: only tokens no broader than itself, or itself.
        assert_eq!(
            revoke_token(
                &narrow,
                "bob",
                None,
                7,
                &spec("pull,push,delete", &[], 9_999)
            ),
            Ok(())
        );
        assert!(revoke_token(&narrow, "bob", None, 8, &spec("pull,push,delete", &[], 10)).is_err());
        assert_eq!(
            revoke_token(&narrow, "bob", None, 8, &spec("pull", &["acme/x"], 10)),
            Ok(())
        );

        // Passwords.
        assert_eq!(change_own_password(&bob), Ok(()));
        assert_eq!(
            change_own_password(&with_token(&bob, "pull,push,delete", &[])),
            Err(AccountDenial::PasswordByToken)
        );
        assert_eq!(change_own_password(&robot), Err(AccountDenial::Robot));

        // Organisations.
        assert_eq!(manage_org(&olive, "acme"), Ok(()));
        assert_eq!(
            manage_org(&bob, "acme"),
            Err(AccountDenial::NotOwner {
                org: "acme".into(),
                role: Some(Role::Maintainer)
            })
        );
        assert_eq!(
            manage_org(&bob, "nowhere"),
            Err(AccountDenial::NotOwner {
                org: "nowhere".into(),
                role: None
            })
        );
        assert_eq!(manage_org(&admin, "nowhere"), Ok(()));
        assert_eq!(
            manage_org(
                &with_token(&olive, "pull,push,delete", &["acme/**"]),
                "acme"
            ),
            Ok(())
        );
        assert!(matches!(
            manage_org(&with_token(&olive, "pull,push,delete", &["acme/*"]), "acme"),
            Err(AccountDenial::TokenTooNarrow { .. })
        ));
        assert_eq!(view_org(&bob, "acme"), Ok(()));
        assert_eq!(view_org(&olive, "beta"), Ok(()));
        assert_eq!(
            view_org(&bob, "beta"),
            Err(AccountDenial::NotMember { org: "beta".into() })
        );

        // Visibility.
        assert_eq!(set_visibility(&bob, &repo("bob/app")), Ok(()));
        assert_eq!(set_visibility(&olive, &repo("acme/app")), Ok(()));
        assert!(matches!(
            set_visibility(&bob, &repo("acme/app")),
            Err(AccountDenial::NotManager { .. })
        ));
        assert!(set_visibility(&olive, &repo("beta/app")).is_err());
        assert!(set_visibility(&robot, &repo("acme/app")).is_err());
        assert!(set_visibility(&robot, &repo("acme-ci/app")).is_err());
        assert_eq!(set_visibility(&admin, &repo("any/thing")), Ok(()));
        assert!(matches!(
            set_visibility(&with_token(&bob, "pull,push", &[]), &repo("bob/app")),
            Err(AccountDenial::TokenTooNarrow { .. })
        ));
        assert_eq!(repository_listing(&admin, None), Ok(None));
        assert_eq!(
            repository_listing(&olive, None),
            Ok(Some(vec!["olive".into(), "acme".into()]))
        );
        assert_eq!(
            repository_listing(&olive, Some("acme")),
            Ok(Some(vec!["acme".into()]))
        );
        assert!(repository_listing(&olive, Some("beta")).is_err());
        assert_eq!(repository_listing(&robot, None), Ok(Some(vec![])));
    }
}
