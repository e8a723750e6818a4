//! Identities: users, organisations, robot accounts, personal access tokens
//! (PATs) and refresh tokens, and the [`IdentityStore`] trait that keeps them.
//!
//! Rule of this layer: it knows no SQL and no HTTP. The SQL lives in
//! `meta/identity_sql.rs`; the token service and the admin commands call
//! the trait.
//!
//! # Names
//!
//! Users and organisations share one namespace: a name is the first path
//! component of the repositories it owns (`alice/app`, `acme/api`), so it must
//! be one valid repository-name component (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`),
//! and it belongs to a user or to an organisation, never both.
//!
//! # Robots
//!
//! A robot account is a [`User`] with `robot_of = Some(org)`. Its name is any
//! free valid name the caller chooses (a convention such as `acme-ci` reads
//! well, but none is enforced); it takes its place in the shared namespace so
//! that no user or organisation can later take it. A robot has no password
//! (its only credential is a PAT), is never an administrator, and is no
//! member of any organisation: its rights on its organisation's repositories
//! come from `robot_of` (see `policy`), bounded by its token. Its name is
//! reserved but owns nothing: [`IdentityStore::namespace_owner`] reports the
//! robot as a user, and the policy does not grant a robot its own name.
//!
//! # Secrets
//!
//! Passwords are stored as argon2id (or imported bcrypt) hashes; PATs and
//! refresh tokens only as the SHA-256 of a high-entropy secret ([`secret`]).
//! No `Debug` output of this module prints a password hash or a secret.

pub mod password;
pub mod patterns;
pub mod secret;

use std::fmt;
use std::str::FromStr;

use crate::trust::rule::{NewRule, TrustRule};
use async_trait::async_trait;
use berth_core::name::RepositoryName;
use berth_core::scope::{Action, Actions};

pub use patterns::{pattern_within, repo_pattern_matches, validate_repo_pattern};

/// What can go wrong with identities.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The name is already a user's or an organisation's.
    #[error("the name `{0}` is already taken by a user or an organisation; choose another")]
    NameTaken(String),
    /// A user to delete still owns repositories (its namespace's), and the
    /// caller did not ask to delete them too.
    #[error(
        "user `{user}` owns {count} {}; delete them with the user \
         (`berth admin user delete {user} --delete-repositories`, or \
         `DELETE /api/v1/users/{user}?delete_repositories=true`), or keep the user",
        if *count == 1 { "repository" } else { "repositories" }
    )]
    OwnsRepositories {
        /// The user's name.
        user: String,
        /// How many repositories its namespace holds.
        count: u64,
    },
    /// An organisation to delete still owns repositories, and the caller did
    /// not ask to delete them too.
    #[error(
        "organisation `{org}` owns {count} {}; delete them with it \
         (`berth admin org delete {org} --delete-repositories`, or \
         `DELETE /api/v1/orgs/{org}?delete_repositories=true`), or keep the organisation",
        if *count == 1 { "repository" } else { "repositories" }
    )]
    OrgOwnsRepositories {
        /// The organisation's name.
        org: String,
        /// How many repositories its namespace holds.
        count: u64,
    },
    /// The change would leave an organisation without an owner.
    #[error(
        "`{user}` is the last owner of `{org}`; make another member owner first \
         (`berth org member add {org} USER --role owner`), so that someone can still manage it"
    )]
    LastOwner {
        /// The organisation.
        org: String,
        /// Its last owner.
        user: String,
    },
    /// Something the operation needs does not exist (the message names it).
    #[error("{0} does not exist")]
    NotFound(String),
    /// A user or organisation name outside the grammar.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The user already has a personal access token of this name.
    #[error(
        "a personal access token named `{0}` already exists for this user; revoke it or choose another name"
    )]
    PatNameTaken(String),
    /// The namespace has as many trust rules as it may.
    #[error(
        "namespace `{namespace}` has {limit} trust rules, the most a namespace may have; \
         remove one (`berth trust remove {namespace} NAME`) or widen an existing one"
    )]
    RuleLimit {
        /// The namespace.
        namespace: String,
        /// The limit.
        limit: i64,
    },
    /// The namespace already has a trust rule of this name.
    #[error(
        "namespace `{namespace}` already has a trust rule named `{name}`; remove it or choose another name"
    )]
    RuleNameTaken {
        /// The namespace.
        namespace: String,
        /// The rule's name.
        name: String,
    },
    /// A personal access token request that cannot be stored as asked.
    #[error("invalid personal access token: {0}")]
    InvalidPat(String),
    /// An operation that robot accounts cannot take part in.
    #[error("not allowed for a robot account: {0}")]
    Robot(String),
    /// Hashing a password failed.
    #[error("cannot hash the password: {0}")]
    PasswordHash(String),
    /// A line of an htpasswd file that cannot be imported.
    #[error("htpasswd line {line}: {reason}")]
    Htpasswd {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// A stored value no longer parses (the database was edited by hand, or is corrupt).
    #[error("corrupt identity data: {0}")]
    Corrupt(String),
    /// The database could not be reached or answered with an error.
    #[error("identity database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A user's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// An organisation's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(pub i64);

/// A user: a person, or a robot account of an organisation.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Its name, which is also the namespace it owns (unless it is a robot).
    pub name: String,
    /// The argon2id PHC string or imported bcrypt hash; `None` when the user
    /// cannot log in with a password (robots, token-only users).
    pub password_hash: Option<String>,
    /// Whether the user administers the whole registry.
    pub is_admin: bool,
    /// The organisation this robot account belongs to; `None` for people.
    pub robot_of: Option<OrgId>,
}

impl User {
    /// Whether this is a robot account.
    pub fn is_robot(&self) -> bool {
        self.robot_of.is_some()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("is_admin", &self.is_admin)
            .field("robot_of", &self.robot_of)
            .finish()
    }
}

/// An organisation: a namespace that several users share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// Its name, which is also the namespace it owns.
    pub name: String,
}

/// A member's role in an organisation, weakest first (`Member < Maintainer < Owner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `member`: a member of the organisation.
    Member,
    /// `maintainer`: a member trusted with more than a member.
    Maintainer,
    /// `owner`: manages the organisation and its members.
    Owner,
}

impl Role {
    /// The role as stored and printed: `member`, `maintainer`, `owner`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Maintainer => "maintainer",
            Self::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: expected `member`, `maintainer` or `owner`")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "member" => Ok(Self::Member),
            "maintainer" => Ok(Self::Maintainer),
            "owner" => Ok(Self::Owner),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// Who owns a namespace (the first component of a repository name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceOwner {
    /// A user (possibly a robot: see the module doc).
    User(UserId),
    /// An organisation.
    Org(OrgId),
}

/// Whether deleting a user deletes the repositories of its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedRepositories {
    /// Refuse to delete a user who owns repositories.
    Keep,
    /// Delete them with the user.
    Delete,
}

/// What deleting a user removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedUser {
    /// The repositories deleted with it, by name.
    pub repositories: Vec<String>,
    /// The staging locations of the upload sessions deleted with them (the
    /// caller discards their bytes).
    pub staging: Vec<String>,
}

/// A user as an administrator's listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Its name.
    pub name: String,
    /// Whether it administers the registry.
    pub is_admin: bool,
    /// The organisation this robot account belongs to; `None` for people.
    pub robot_of: Option<String>,
}

/// What deleting an organisation removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedOrg {
    /// The repositories deleted with it, by name.
    pub repositories: Vec<String>,
    /// The staging locations of the upload sessions deleted with them (the
    /// caller discards their bytes).
    pub staging: Vec<String>,
    /// Its members, whose memberships ended.
    pub members: Vec<String>,
    /// Its robot accounts, deleted with their tokens.
    pub robots: Vec<String>,
}

/// A personal access token as stored (its secret is not: only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    /// Its id.
    pub id: i64,
    /// The user it acts for.
    pub user: UserId,
    /// Its name, unique among the user's tokens.
    pub name: String,
    /// What it may do: a non-empty subset of `pull`, `push`, `delete`.
    pub actions: Actions,
    /// Repository patterns it is limited to (`acme/*`, `acme/**`, `alice/app`);
    /// empty means every repository the user may reach.
    pub repositories: Vec<String>,
    /// Unix seconds after which it is refused (checked by the caller).
    pub expires_at: i64,
    /// Unix seconds it was created.
    pub created_at: i64,
    /// Unix seconds it was last used, if ever.
    pub last_used_at: Option<i64>,
}

impl Pat {
    /// Whether the token reaches `repository` by its patterns (all when it has none).
    pub fn covers(&self, repository: &str) -> bool {
        self.repositories.is_empty()
            || self
                .repositories
                .iter()
                .any(|pattern| repo_pattern_matches(pattern, repository))
    }
}

/// A personal access token to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPat {
    /// The user it acts for.
    pub user: UserId,
    /// Its name: 1 to 64 of `[A-Za-z0-9._-]`, unique among the user's tokens.
    pub name: String,
    /// SHA-256 of the secret ([`secret::generate_pat`]).
    pub secret_hash: [u8; 32],
    /// A non-empty subset of `pull`, `push`, `delete`.
    pub actions: Actions,
    /// Repository patterns ([`validate_repo_pattern`]); empty means all.
    pub repositories: Vec<String>,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

impl fmt::Debug for NewPat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPat")
            .field("user", &self.user)
            .field("name", &self.name)
            .field("secret_hash", &"<redacted>")
            .field("actions", &self.actions)
            .field("repositories", &self.repositories)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl NewPat {
    /// Checks the name, actions and patterns; the store calls it before writing.
    pub fn validate(&self) -> Result<(), IdentityError> {
        validate_pat_name(&self.name)?;
        if self.actions.is_empty() {
            return Err(IdentityError::InvalidPat(
                "it needs at least one action: `pull`, `push` or `delete`".to_owned(),
            ));
        }
        if let Some(bad) = self
            .actions
            .iter()
            .find(|a| !matches!(a, Action::Pull | Action::Push | Action::Delete))
        {
            return Err(IdentityError::InvalidPat(format!(
                "action `{bad}` cannot be granted to a token: use `pull`, `push` or `delete`"
            )));
        }
        for pattern in &self.repositories {
            validate_repo_pattern(pattern).map_err(|reason| {
                IdentityError::InvalidPat(format!("repository pattern `{pattern}`: {reason}"))
            })?;
        }
        Ok(())
    }
}

/// Checks a PAT name: 1 to 64 of `[A-Za-z0-9._-]`.
fn validate_pat_name(name: &str) -> Result<(), IdentityError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > 64 || !ok_chars {
        return Err(IdentityError::InvalidPat(format!(
            "name `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`"
        )));
    }
    Ok(())
}

/// A refresh token as stored (only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Its id.
    pub id: i64,
    /// The user it logs in.
    pub user: UserId,
    /// Unix seconds after which it is refused (checked by the caller).
    pub expires_at: i64,
    /// Unix seconds it was issued.
    pub created_at: i64,
}

/// Checks that `name` may name a user or an organisation: one valid
/// repository-name component.
pub fn validate_name(name: &str) -> Result<(), IdentityError> {
    let parsed =
        RepositoryName::parse(name).map_err(|e| IdentityError::InvalidName(e.to_string()))?;
    if parsed.depth() != 1 {
        return Err(IdentityError::InvalidName(format!(
            "`{name}` has several path components; a user or organisation name is one \
             component such as `alice` or `acme-corp`, without `/`"
        )));
    }
    Ok(())
}

/// Users, organisations, memberships, robots, PATs and refresh tokens.
/// Every method is one transaction.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// The number of users (robots included); zero on a fresh registry.
    async fn count_users(&self) -> Result<u64, IdentityError>;

    /// Creates a user (not a robot). Fails with `NameTaken` when a user or an
    /// organisation already has the name.
    async fn create_user(
        &self,
        name: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> Result<User, IdentityError>;

    /// A user (or robot) by name.
    async fn user_by_name(&self, name: &str) -> Result<Option<User>, IdentityError>;

    /// A user (or robot) by id.
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, IdentityError>;

    /// Deletes a user (or robot) with its memberships, PATs and refresh
    /// tokens, and records the revocation of its tokens; `None` when there
    /// was no such user. The repositories of its namespace go too when
    /// `repositories` says so (manifests, tags, blob links, upload sessions;
    /// blob bytes stay for a garbage collector), in the same transaction;
    /// otherwise a user whose namespace holds repositories is not deleted
    /// (`OwnsRepositories`), so that no later user of the same name inherits
    /// them.
    async fn delete_user(
        &self,
        name: &str,
        repositories: OwnedRepositories,
        by: &crate::events::Actor,
    ) -> Result<Option<DeletedUser>, IdentityError>;

    /// Replaces a user's password hash and revokes the user's refresh tokens
    /// and the registry tokens issued from its logins (a password change, say
    /// after a leak, ends every login made with the old one). Fails with `NotFound` for an unknown user and `Robot` for a
    /// robot account.
    async fn set_password(&self, name: &str, hash: &str) -> Result<(), IdentityError>;

    /// Users (robots included) by name, after `after` (exclusive), at most `limit`.
    async fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserEntry>, IdentityError>;

    /// Organisations by name, after `after` (exclusive), at most `limit`.
    async fn list_orgs(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Organization>, IdentityError>;

    /// The members of `org` with their roles, by name, after `after`
    /// (exclusive), at most `limit`.
    async fn list_members(
        &self,
        org: OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Role)>, IdentityError>;

    /// The robot accounts of `org`, by name, after `after` (exclusive), at
    /// most `limit`.
    async fn list_robots(
        &self,
        org: OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, IdentityError>;

    /// Deletes an organisation with its memberships and its robot accounts
    /// (and their tokens), and records the revocation of the tokens of its
    /// members and robots; `None` when there was no such organisation. Its
    /// repositories go too when `repositories` says so, in the same
    /// transaction; otherwise an organisation whose namespace holds
    /// repositories is not deleted (`OrgOwnsRepositories`).
    async fn delete_org(
        &self,
        name: &str,
        repositories: OwnedRepositories,
        by: &crate::events::Actor,
    ) -> Result<Option<DeletedOrg>, IdentityError>;

    /// Creates an organisation whose `owner` becomes a member with [`Role::Owner`].
    async fn create_org(&self, name: &str, owner: UserId) -> Result<Organization, IdentityError>;

    /// An organisation by name.
    async fn org_by_name(&self, name: &str) -> Result<Option<Organization>, IdentityError>;

    /// An organisation by id (the owner of a robot account).
    async fn org_by_id(&self, id: OrgId) -> Result<Option<Organization>, IdentityError>;

    /// Makes `user` a member of `org` with `role`, or changes its role.
    /// Robots cannot be members (`Robot`): their rights come from `robot_of`.
    /// Lowering the last owner is refused (`LastOwner`).
    async fn set_member(&self, org: OrgId, user: UserId, role: Role) -> Result<(), IdentityError>;

    /// Removes `user` from `org`, revoking the registry tokens issued before;
    /// `false` when it was not a member. Removing the last owner is refused
    /// (`LastOwner`). ([`Self::set_member`] revokes them
    /// too when it lowers a role.)
    async fn remove_member(&self, org: OrgId, user: UserId) -> Result<bool, IdentityError>;

    /// The organisations `user` belongs to, with its role in each, by name.
    async fn memberships(&self, user: UserId) -> Result<Vec<(Organization, Role)>, IdentityError>;

    /// Who owns the namespace `name`; `None` when nobody does.
    async fn namespace_owner(&self, name: &str) -> Result<Option<NamespaceOwner>, IdentityError>;

    /// Creates a robot account of `org`: no password, no admin, no membership.
    async fn create_robot(&self, org: OrgId, name: &str) -> Result<User, IdentityError>;

    /// Stores a new PAT (validated with [`NewPat::validate`]). A revoked token
    /// of the same name is forgotten, so its name can be reused.
    async fn create_pat(&self, pat: &NewPat) -> Result<Pat, IdentityError>;

    /// An unrevoked personal access token by id (expired ones included: the
    /// caller checks expiry).
    async fn pat_by_id(&self, id: i64) -> Result<Option<Pat>, IdentityError>;

    /// The unrevoked PAT whose secret hashes to `hash`, with its user.
    /// Expiry is the caller's check.
    async fn pat_by_hash(&self, hash: &[u8; 32]) -> Result<Option<(Pat, User)>, IdentityError>;

    /// The user's unrevoked PATs (expired ones included), by name.
    async fn list_pats(&self, user: UserId) -> Result<Vec<Pat>, IdentityError>;

    /// Revokes the user's PAT `name` and the registry tokens issued for it;
    /// `false` when there was no such unrevoked token.
    async fn revoke_pat(&self, user: UserId, name: &str) -> Result<bool, IdentityError>;

    /// Records that a PAT was used at `now` (unix seconds). Best effort: a
    /// caller may ignore the error.
    async fn touch_pat(&self, id: i64, now: i64) -> Result<(), IdentityError>;

    /// Stores a refresh token (its hash) for `user`.
    async fn create_refresh_token(
        &self,
        user: UserId,
        hash: &[u8; 32],
        expires_at: i64,
    ) -> Result<RefreshToken, IdentityError>;

    /// The unrevoked refresh token whose secret hashes to `hash`, with its
    /// user. Expiry is the caller's check.
    async fn refresh_token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<(RefreshToken, User)>, IdentityError>;

    /// Revokes a refresh token; `false` when there was no such unrevoked token.
    async fn revoke_refresh_token(&self, hash: &[u8; 32]) -> Result<bool, IdentityError>;

    /// Stores a web interface session (the hash of its cookie's secret) of
    /// `user`, signed in with the personal access token `pat` if any, until
    /// `expires_at`. Sessions that expired before `now` are removed on the way.
    async fn create_session(
        &self,
        user: UserId,
        pat: Option<i64>,
        hash: &[u8; 32],
        now: i64,
        expires_at: i64,
    ) -> Result<(), IdentityError>;

    /// The live web session whose secret hashes to `hash`: its user, and the
    /// personal access token it was signed in with. `None` when there is no
    /// such session, it expired by `now`, or its token was revoked or
    /// expired. A password change deletes the user's sessions.
    async fn session_by_hash(
        &self,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(User, Option<i64>)>, IdentityError>;

    /// Ends a web session (signing out); `false` when there was none.
    async fn delete_session(&self, hash: &[u8; 32]) -> Result<bool, IdentityError>;

    /// Stores a trust rule of an existing namespace (`NotFound` otherwise);
    /// `RuleNameTaken` when the namespace has one of that name. A rule
    /// without a name gets the first free `rule-N`.
    async fn create_trust_rule(
        &self,
        rule: &NewRule,
        created_by: &str,
    ) -> Result<TrustRule, IdentityError>;

    /// The trust rules of `namespace`, by name.
    async fn trust_rules(&self, namespace: &str) -> Result<Vec<TrustRule>, IdentityError>;

    /// The trust rules naming `issuer`, of `namespace` only when given: the
    /// candidates of an exchange.
    async fn trust_rules_for_issuer(
        &self,
        issuer: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<TrustRule>, IdentityError>;

    /// The trust rules of these ids that still exist.
    async fn trust_rules_by_ids(&self, ids: &[i64]) -> Result<Vec<TrustRule>, IdentityError>;

    /// Removes a trust rule, ending the registry tokens issued through it
    /// (a revocation record in the same transaction); `false` when there was
    /// no such rule.
    async fn delete_trust_rule(&self, namespace: &str, name: &str) -> Result<bool, IdentityError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_round_trip() {
        assert!(Role::Member < Role::Maintainer && Role::Maintainer < Role::Owner);
        for role in [Role::Member, Role::Maintainer, Role::Owner] {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
        }
        assert!("Owner".parse::<Role>().is_err());
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn names_are_one_component() {
        for ok in ["alice", "acme-corp", "a.b", "a__b", "x9"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Alice", "acme/api", "a+b", "-a", "a-", "a b", "a___b"] {
            assert!(
                matches!(validate_name(bad), Err(IdentityError::InvalidName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let user = User {
            id: UserId(1),
            name: "alice".to_owned(),
            password_hash: Some("$argon2id$v=19$secret".to_owned()),
            is_admin: false,
            robot_of: None,
        };
        let printed = format!("{user:?}");
        assert!(!printed.contains("argon2id"), "{printed}");
        assert!(printed.contains("<redacted>"));
        let pat = NewPat {
            user: UserId(1),
            name: "ci".to_owned(),
            secret_hash: [0xab; 32],
            actions: "pull".parse().unwrap_or_default(),
            repositories: vec![],
            expires_at: 0,
        };
        let printed = format!("{pat:?}");
        assert!(!printed.contains("171"), "{printed}");
    }

    fn new_pat(actions: &str, repositories: &[&str], name: &str) -> NewPat {
        NewPat {
            user: UserId(1),
            name: name.to_owned(),
            secret_hash: [0; 32],
            actions: actions.parse().unwrap_or_default(),
            repositories: repositories.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: 0,
        }
    }

    #[test]
    fn new_pat_validation() {
        assert!(new_pat("pull,push", &["acme/*"], "ci").validate().is_ok());
        assert!(new_pat("delete", &[], "a.b_c-1").validate().is_ok());
        for bad in [
            new_pat("*", &[], "ci"),
            new_pat("pull,metadata-read", &[], "ci"),
            new_pat("pull", &["Acme/*"], "ci"),
            new_pat("pull", &[], ""),
            new_pat("pull", &[], "has space"),
        ] {
            assert!(
                matches!(bad.validate(), Err(IdentityError::InvalidPat(_))),
                "{bad:?}"
            );
        }
        let mut empty = new_pat("pull", &[], "ci");
        empty.actions = Actions::default();
        assert!(empty.validate().is_err());
    }

    #[test]
    fn pat_covers_by_patterns() {
        let mut pat = Pat {
            id: 1,
            user: UserId(1),
            name: "ci".to_owned(),
            actions: Actions::default(),
            repositories: vec![],
            expires_at: 0,
            created_at: 0,
            last_used_at: None,
        };
        assert!(pat.covers("anything/at/all"));
        pat.repositories = vec!["acme/*".to_owned(), "alice/app".to_owned()];
        assert!(pat.covers("acme/api"));
        assert!(pat.covers("alice/app"));
        assert!(!pat.covers("acme/a/b"));
        assert!(!pat.covers("alice/other"));
    }
}
