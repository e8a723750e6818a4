//! [`IdentityStore`] on the metadata database (SQLite or PostgreSQL, through
//! `meta/db.rs`): users, organisations, memberships, robots, personal access
//! tokens and refresh tokens.
//!
//! Part of `meta/`, where all SQL lives; nothing here knows HTTP. Each query
//! is written once for both engines. Schema:
//! `migrations/sqlite/20261127000002_identity.sql` and its PostgreSQL twin.
//!
//! The shared user/organisation namespace is checked inside the transaction
//! that creates the name, and an organisation's last owner inside the one
//! that lowers or removes a member. Those transactions hold
//! [`Lock::Identity`] (SQLite: the write lock, taken at `BEGIN IMMEDIATE`;
//! PostgreSQL: an advisory lock), so two concurrent creations of the same
//! name, or two owners leaving at once, cannot both pass the check.

use crate::clock::now_unix;
use async_trait::async_trait;
use berth_core::scope::Actions;

use super::SqlMeta;
use super::db::{Lock, Row, Tx, query, query_as, query_scalar};
use super::revocation_sql::record;
use super::trust_sql::{RulesBy, delete_namespace_rules};
use crate::auth::revocation::RevocationTarget;
use crate::identity::secret::ct_eq;
use crate::identity::{
    DeletedOrg, DeletedUser, IdentityError, IdentityStore, NamespaceOwner, NewPat, OrgId,
    Organization, OwnedRepositories, Pat, RefreshToken, Role, User, UserEntry, UserId,
    validate_name,
};
use crate::trust::rule::{NewRule, TrustRule};

/// The user columns of a query that names the users table `u`, prefixed `u_`.
macro_rules! user_cols {
    () => {
        "u.id AS u_id, u.name AS u_name, u.password_hash AS u_password_hash, \
         u.is_admin AS u_is_admin, u.robot_of AS u_robot_of"
    };
}

/// The columns of a query that names the tokens table `p`.
macro_rules! pat_cols {
    () => {
        "p.id, p.user_id, p.name, p.secret_hash, p.actions, p.repositories, \
         p.expires_at, p.created_at, p.last_used_at"
    };
}

/// Maps a failed insert: a unique violation becomes `taken()`, anything
/// else a database error.
fn unless_taken(
    taken: impl FnOnce() -> IdentityError,
) -> impl FnOnce(sqlx::Error) -> IdentityError {
    move |e| {
        if e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
        {
            taken()
        } else {
            e.into()
        }
    }
}

fn user_from_row(row: &Row) -> Result<User, IdentityError> {
    Ok(User {
        id: UserId(row.try_get("u_id")?),
        name: row.try_get("u_name")?,
        password_hash: row.try_get("u_password_hash")?,
        is_admin: row.try_get("u_is_admin")?,
        robot_of: row.try_get::<Option<i64>>("u_robot_of")?.map(OrgId),
    })
}

/// A token row and its stored hash (compared again by the caller).
fn pat_from_row(row: &Row) -> Result<(Pat, Vec<u8>), IdentityError> {
    let actions: String = row.try_get("actions")?;
    let repositories: String = row.try_get("repositories")?;
    let pat = Pat {
        id: row.try_get("id")?,
        user: UserId(row.try_get("user_id")?),
        name: row.try_get("name")?,
        actions: actions
            .parse::<Actions>()
            .map_err(|e| IdentityError::Corrupt(format!("token actions `{actions}`: {e}")))?,
        repositories: serde_json::from_str(&repositories).map_err(|e| {
            IdentityError::Corrupt(format!("token repositories `{repositories}`: {e}"))
        })?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    };
    Ok((pat, row.try_get("secret_hash")?))
}

fn role_from_str(role: &str) -> Result<Role, IdentityError> {
    role.parse()
        .map_err(|e: crate::identity::UnknownRole| IdentityError::Corrupt(e.to_string()))
}

/// Fails with `NameTaken` when a user or an organisation has `name`, and
/// with `InvalidName` for the name workloads log in with.
async fn ensure_name_free(tx: &mut Tx, name: &str) -> Result<(), IdentityError> {
    if name == crate::trust::OIDC_USERNAME {
        return Err(IdentityError::InvalidName(format!(
            "`{name}` is reserved: a CI job logs in as `{name}` with its ID token as the \
             password (workload identity); choose another name"
        )));
    }
    let taken: Option<i64> = query_scalar(
        "SELECT id FROM users WHERE name = $1 UNION ALL SELECT id FROM organizations WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    match taken {
        Some(_) => Err(IdentityError::NameTaken(name.to_owned())),
        None => Ok(()),
    }
}

/// The `robot_of` of an existing user; `NotFound` when there is no such user.
async fn user_robot_of(tx: &mut Tx, user: UserId) -> Result<Option<i64>, IdentityError> {
    let row: Option<Option<i64>> = query_scalar("SELECT robot_of FROM users WHERE id = $1")
        .bind(user.0)
        .fetch_optional(&mut *tx)
        .await?;
    row.ok_or_else(|| IdentityError::NotFound(format!("user #{}", user.0)))
}

/// Records that every token of `user` issued so far is revoked (its rights
/// shrank), in the caller's transaction.
async fn revoke_subject(tx: &mut Tx, user: UserId, keep_secs: i64) -> Result<(), IdentityError> {
    let name: Option<String> = query_scalar("SELECT name FROM users WHERE id = $1")
        .bind(user.0)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(name) = name {
        record(tx, &RevocationTarget::Subject(name), keep_secs).await?;
    }
    Ok(())
}

/// `NotFound` unless the organisation exists.
async fn ensure_org(tx: &mut Tx, org: OrgId) -> Result<(), IdentityError> {
    let found: Option<i64> = query_scalar("SELECT id FROM organizations WHERE id = $1")
        .bind(org.0)
        .fetch_optional(&mut *tx)
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(IdentityError::NotFound(format!("organisation #{}", org.0))),
    }
}

/// The number of repositories of namespace `name`.
async fn count_namespace(tx: &mut Tx, name: &str) -> Result<u64, IdentityError> {
    let n: i64 = query_scalar("SELECT COUNT(*) FROM repositories WHERE namespace = $1")
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Deletes the repositories of namespace `name` (`name` and `name/...`) in
/// the caller's transaction: manifests, tags, references, blob links, and
/// the upload sessions of the namespace; records the revocation of each
/// repository (everyone's tokens on it end, and a later repository of the
/// same name starts afresh). Returns their names and the staging locations
/// of the sessions (the caller discards their bytes); `None`, having
/// changed nothing, when the namespace holds repositories and `repositories`
/// says to keep them.
async fn take_namespace(
    tx: &mut Tx,
    name: &str,
    repositories: OwnedRepositories,
    keep_secs: i64,
) -> Result<Option<(Vec<String>, Vec<String>)>, IdentityError> {
    let owned: Vec<String> =
        query_scalar("SELECT name FROM repositories WHERE namespace = $1 ORDER BY name")
            .bind(name)
            .fetch_all(&mut *tx)
            .await?;
    if !owned.is_empty() && repositories == OwnedRepositories::Keep {
        return Ok(None);
    }
    // Upload sessions name their repository; those of the namespace go
    // with it, and the caller discards their staged bytes.
    let in_namespace = "repository = $1 OR substr(repository, 1, length($1) + 1) = $1 || '/'";
    let staging: Vec<String> = query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT staging FROM uploads WHERE {in_namespace}"
    )))
    .bind(name)
    .fetch_all(&mut *tx)
    .await?;
    // Explicit, not left to ON DELETE CASCADE: correct even where foreign
    // keys are not enforced. Blob rows and bytes stay: other repositories
    // may link them, and a garbage collector removes what none links.
    let of_namespace = "repository_id IN (SELECT id FROM repositories WHERE namespace = $1)";
    for table in [
        "tags",
        "manifest_references",
        "manifests",
        "repository_blobs",
    ] {
        query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE {of_namespace}"
        )))
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM uploads WHERE {in_namespace}"
    )))
    .bind(name)
    .execute(&mut *tx)
    .await?;
    query("DELETE FROM repositories WHERE namespace = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    for repository in &owned {
        tx.notify_changed(repository).await?;
        record(
            tx,
            &RevocationTarget::Repository(repository.clone()),
            keep_secs,
        )
        .await?;
    }
    Ok(Some((owned, staging)))
}

/// Refuses (`LastOwner`) when `user` is the only owner of `org`: the change
/// about to lower or remove it would leave the organisation unmanaged.
async fn ensure_not_last_owner(tx: &mut Tx, org: OrgId, user: UserId) -> Result<(), IdentityError> {
    let owners: Vec<i64> = query_scalar(
        "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' LIMIT 2",
    )
    .bind(org.0)
    .fetch_all(&mut *tx)
    .await?;
    if owners != [user.0] {
        return Ok(());
    }
    let names: (Option<String>, Option<String>) = query_as(
        "SELECT (SELECT name FROM organizations WHERE id = $1),
                (SELECT name FROM users WHERE id = $2)",
    )
    .bind(org.0)
    .bind(user.0)
    .fetch_one(&mut *tx)
    .await?;
    Err(IdentityError::LastOwner {
        org: names.0.unwrap_or_default(),
        user: names.1.unwrap_or_default(),
    })
}

/// Inserts a user (or robot) whose name was checked free in this transaction.
async fn insert_user(
    tx: &mut Tx,
    name: &str,
    password_hash: Option<&str>,
    is_admin: bool,
    robot_of: Option<OrgId>,
) -> Result<User, IdentityError> {
    let id: i64 = query_scalar(
        "INSERT INTO users (name, password_hash, is_admin, robot_of, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(password_hash)
    .bind(is_admin)
    .bind(robot_of.map(|o| o.0))
    .bind(now_unix())
    .fetch_one(&mut *tx)
    .await
    .map_err(unless_taken(|| IdentityError::NameTaken(name.to_owned())))?;
    Ok(User {
        id: UserId(id),
        name: name.to_owned(),
        password_hash: password_hash.map(str::to_owned),
        is_admin,
        robot_of,
    })
}

#[async_trait]
impl IdentityStore for SqlMeta {
    async fn count_users(&self) -> Result<u64, IdentityError> {
        let n: i64 = query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.db())
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_user(
        &self,
        name: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> Result<User, IdentityError> {
        validate_name(name)?;
        let mut tx = self.db().begin_write(&[Lock::Identity]).await?;
        ensure_name_free(&mut tx, name).await?;
        let user = insert_user(&mut tx, name, password_hash, is_admin, None).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>, IdentityError> {
        let row = query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u WHERE u.name = $1"
        ))
        .bind(name)
        .fetch_optional(self.db())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, IdentityError> {
        let row = query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users u WHERE u.id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.db())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn delete_user(
        &self,
        name: &str,
        repositories: OwnedRepositories,
        by: &crate::events::Actor,
    ) -> Result<Option<DeletedUser>, IdentityError> {
        let mut tx = self
            .db()
            .begin_write(&[Lock::Identity, Lock::Namespace(name)])
            .await?;
        let id: Option<i64> = query_scalar("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut tx)
            .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let Some((owned, staging)) =
            take_namespace(&mut tx, name, repositories, self.revocation_keep_secs).await?
        else {
            return Err(IdentityError::OwnsRepositories {
                user: name.to_owned(),
                count: count_namespace(&mut tx, name).await?,
            });
        };
        let events = self.emit_repositories_deleted(&mut tx, &owned, by).await?;
        for statement in [
            "DELETE FROM memberships WHERE user_id = $1",
            "DELETE FROM personal_access_tokens WHERE user_id = $1",
            "DELETE FROM refresh_tokens WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            query(statement).bind(id).execute(&mut tx).await?;
        }
        // Its tokens end here (everyone's on its repositories ended with
        // them): a later user of the same name starts afresh.
        let keep = self.revocation_keep_secs;
        delete_namespace_rules(&mut tx, name, keep).await?;
        record(&mut tx, &RevocationTarget::Subject(name.to_owned()), keep).await?;
        tx.commit().await?;
        self.revocations_written();
        self.events.committed(events);
        Ok(Some(DeletedUser {
            repositories: owned,
            staging,
        }))
    }

    async fn set_password(&self, name: &str, hash: &str) -> Result<(), IdentityError> {
        let mut tx = self.db().begin_write(&[]).await?;
        let robot_of: Option<Option<i64>> =
            query_scalar("SELECT robot_of FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut tx)
                .await?;
        match robot_of {
            None => return Err(IdentityError::NotFound(format!("user `{name}`"))),
            Some(Some(_)) => {
                return Err(IdentityError::Robot(format!(
                    "`{name}` is a robot account and has no password; \
                     give it a personal access token instead"
                )));
            }
            Some(None) => {}
        }
        query("UPDATE users SET password_hash = $2 WHERE name = $1")
            .bind(name)
            .bind(hash)
            .execute(&mut tx)
            .await?;
        // Logins made with the old password end with it: its refresh tokens,
        // web sessions, and the registry tokens issued from them or from the
        // password.
        query("DELETE FROM refresh_tokens WHERE user_id = (SELECT id FROM users WHERE name = $1)")
            .bind(name)
            .execute(&mut tx)
            .await?;
        query("DELETE FROM ui_sessions WHERE user_id = (SELECT id FROM users WHERE name = $1)")
            .bind(name)
            .execute(&mut tx)
            .await?;
        let target = RevocationTarget::Logins(name.to_owned());
        record(&mut tx, &target, self.revocation_keep_secs).await?;
        tx.commit().await?;
        self.revocations_written();
        Ok(())
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserEntry>, IdentityError> {
        let rows = query(
            "SELECT u.name, u.is_admin, o.name AS robot_of FROM users u
               LEFT JOIN organizations o ON o.id = u.robot_of
              WHERE u.name > $1 ORDER BY u.name LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UserEntry {
                    name: row.try_get("name")?,
                    is_admin: row.try_get("is_admin")?,
                    robot_of: row.try_get("robot_of")?,
                })
            })
            .collect()
    }

    async fn list_orgs(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Organization>, IdentityError> {
        let rows =
            query("SELECT id, name FROM organizations WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(self.db())
                .await?;
        rows.iter()
            .map(|row| {
                Ok(Organization {
                    id: OrgId(row.try_get("id")?),
                    name: row.try_get("name")?,
                })
            })
            .collect()
    }

    async fn list_members(
        &self,
        org: OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Role)>, IdentityError> {
        let rows = query(
            "SELECT u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id
              WHERE m.org_id = $1 AND u.name > $2 ORDER BY u.name LIMIT $3",
        )
        .bind(org.0)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok((row.try_get("name")?, role_from_str(&role)?))
            })
            .collect()
    }

    async fn list_robots(
        &self,
        org: OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, IdentityError> {
        Ok(query_scalar(
            "SELECT name FROM users WHERE robot_of = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(org.0)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.db())
        .await?)
    }

    async fn delete_org(
        &self,
        name: &str,
        repositories: OwnedRepositories,
        by: &crate::events::Actor,
    ) -> Result<Option<DeletedOrg>, IdentityError> {
        let mut tx = self
            .db()
            .begin_write(&[Lock::Identity, Lock::Namespace(name)])
            .await?;
        let id: Option<i64> = query_scalar("SELECT id FROM organizations WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut tx)
            .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let keep = self.revocation_keep_secs;
        let Some((owned, staging)) = take_namespace(&mut tx, name, repositories, keep).await?
        else {
            return Err(IdentityError::OrgOwnsRepositories {
                org: name.to_owned(),
                count: count_namespace(&mut tx, name).await?,
            });
        };
        let events = self.emit_repositories_deleted(&mut tx, &owned, by).await?;
        let members: Vec<String> = query_scalar(
            "SELECT u.name FROM memberships m JOIN users u ON u.id = m.user_id
              WHERE m.org_id = $1 ORDER BY u.name",
        )
        .bind(id)
        .fetch_all(&mut tx)
        .await?;
        let robots: Vec<String> =
            query_scalar("SELECT name FROM users WHERE robot_of = $1 ORDER BY name")
                .bind(id)
                .fetch_all(&mut tx)
                .await?;
        let of_robots = "user_id IN (SELECT id FROM users WHERE robot_of = $1)";
        for statement in [
            format!("DELETE FROM personal_access_tokens WHERE {of_robots}"),
            format!("DELETE FROM refresh_tokens WHERE {of_robots}"),
            format!("DELETE FROM memberships WHERE {of_robots}"),
            "DELETE FROM users WHERE robot_of = $1".to_owned(),
            "DELETE FROM memberships WHERE org_id = $1".to_owned(),
            "DELETE FROM organizations WHERE id = $1".to_owned(),
        ] {
            query(sqlx::AssertSqlSafe(statement))
                .bind(id)
                .execute(&mut tx)
                .await?;
        }
        // Tokens its members and robots hold may grant rights in its
        // namespace (a push to a repository not made yet): they end here, so
        // that a later user or organisation of the same name inherits no
        // stranger's access.
        for subject in members.iter().chain(&robots) {
            record(&mut tx, &RevocationTarget::Subject(subject.clone()), keep).await?;
        }
        delete_namespace_rules(&mut tx, name, keep).await?;
        tx.commit().await?;
        self.revocations_written();
        self.events.committed(events);
        Ok(Some(DeletedOrg {
            repositories: owned,
            staging,
            members,
            robots,
        }))
    }

    async fn create_org(&self, name: &str, owner: UserId) -> Result<Organization, IdentityError> {
        validate_name(name)?;
        let mut tx = self.db().begin_write(&[Lock::Identity]).await?;
        if user_robot_of(&mut tx, owner).await?.is_some() {
            return Err(IdentityError::Robot(
                "a robot account cannot own an organisation; name a person as owner".to_owned(),
            ));
        }
        ensure_name_free(&mut tx, name).await?;
        let id: i64 = query_scalar(
            "INSERT INTO organizations (name, created_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(name)
        .bind(now_unix())
        .fetch_one(&mut tx)
        .await
        .map_err(unless_taken(|| IdentityError::NameTaken(name.to_owned())))?;
        query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(owner.0)
            .bind(Role::Owner.as_str())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(Organization {
            id: OrgId(id),
            name: name.to_owned(),
        })
    }

    async fn org_by_name(&self, name: &str) -> Result<Option<Organization>, IdentityError> {
        let row = query("SELECT id, name FROM organizations WHERE name = $1")
            .bind(name)
            .fetch_optional(self.db())
            .await?;
        row.map(|row| {
            Ok(Organization {
                id: OrgId(row.try_get("id")?),
                name: row.try_get("name")?,
            })
        })
        .transpose()
    }

    async fn org_by_id(&self, id: OrgId) -> Result<Option<Organization>, IdentityError> {
        let row = query("SELECT id, name FROM organizations WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.db())
            .await?;
        row.map(|row| {
            Ok(Organization {
                id: OrgId(row.try_get("id")?),
                name: row.try_get("name")?,
            })
        })
        .transpose()
    }

    async fn set_member(&self, org: OrgId, user: UserId, role: Role) -> Result<(), IdentityError> {
        // IMMEDIATE: the last-owner check and the change see one state.
        let mut tx = self.db().begin_write(&[Lock::Identity]).await?;
        ensure_org(&mut tx, org).await?;
        if user_robot_of(&mut tx, user).await?.is_some() {
            return Err(IdentityError::Robot(
                "robot accounts are not members of organisations: a robot's rights come from \
                 its organisation and are bounded by its token"
                    .to_owned(),
            ));
        }
        let before: Option<String> =
            query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
                .bind(org.0)
                .bind(user.0)
                .fetch_optional(&mut tx)
                .await?;
        // A lower role takes rights away from the tokens issued before.
        let before = before.as_deref().map(role_from_str).transpose()?;
        let lowered = before.is_some_and(|before| before > role);
        if before == Some(Role::Owner) && role != Role::Owner {
            ensure_not_last_owner(&mut tx, org, user).await?;
        }
        query(
            "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org.0)
        .bind(user.0)
        .bind(role.as_str())
        .execute(&mut tx)
        .await?;
        if lowered {
            revoke_subject(&mut tx, user, self.revocation_keep_secs).await?;
        }
        tx.commit().await?;
        if lowered {
            self.revocations_written();
        }
        Ok(())
    }

    async fn remove_member(&self, org: OrgId, user: UserId) -> Result<bool, IdentityError> {
        // IMMEDIATE: the last-owner check and the change see one state.
        let mut tx = self.db().begin_write(&[Lock::Identity]).await?;
        ensure_not_last_owner(&mut tx, org, user).await?;
        let done = query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org.0)
            .bind(user.0)
            .execute(&mut tx)
            .await?;
        let removed = done > 0;
        if removed {
            revoke_subject(&mut tx, user, self.revocation_keep_secs).await?;
        }
        tx.commit().await?;
        if removed {
            self.revocations_written();
        }
        Ok(removed)
    }

    async fn memberships(&self, user: UserId) -> Result<Vec<(Organization, Role)>, IdentityError> {
        let rows = query(
            "SELECT o.id, o.name, m.role FROM memberships m
               JOIN organizations o ON o.id = m.org_id
              WHERE m.user_id = $1 ORDER BY o.name",
        )
        .bind(user.0)
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok((
                    Organization {
                        id: OrgId(row.try_get("id")?),
                        name: row.try_get("name")?,
                    },
                    role_from_str(&role)?,
                ))
            })
            .collect()
    }

    async fn namespace_owner(&self, name: &str) -> Result<Option<NamespaceOwner>, IdentityError> {
        let row = query(
            "SELECT 'user' AS kind, id FROM users WHERE name = $1
             UNION ALL
             SELECT 'org' AS kind, id FROM organizations WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.db())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let kind: String = row.try_get("kind")?;
        let id: i64 = row.try_get("id")?;
        Ok(Some(if kind == "org" {
            NamespaceOwner::Org(OrgId(id))
        } else {
            NamespaceOwner::User(UserId(id))
        }))
    }

    async fn create_robot(&self, org: OrgId, name: &str) -> Result<User, IdentityError> {
        validate_name(name)?;
        let mut tx = self.db().begin_write(&[Lock::Identity]).await?;
        ensure_org(&mut tx, org).await?;
        ensure_name_free(&mut tx, name).await?;
        let robot = insert_user(&mut tx, name, None, false, Some(org)).await?;
        tx.commit().await?;
        Ok(robot)
    }

    async fn create_pat(&self, new: &NewPat) -> Result<Pat, IdentityError> {
        new.validate()?;
        let created_at = now_unix();
        if new.expires_at <= created_at {
            return Err(IdentityError::InvalidPat(
                "its expiry is not in the future; give an expiry after now".to_owned(),
            ));
        }
        let repositories = serde_json::to_string(&new.repositories)
            .map_err(|e| IdentityError::InvalidPat(e.to_string()))?;
        let mut tx = self.db().begin_write(&[]).await?;
        user_robot_of(&mut tx, new.user).await?;
        // A revoked token gives its name up to the new one.
        query(
            "DELETE FROM personal_access_tokens
              WHERE user_id = $1 AND name = $2 AND revoked_at IS NOT NULL",
        )
        .bind(new.user.0)
        .bind(&new.name)
        .execute(&mut tx)
        .await?;
        let id: i64 = query_scalar(
            "INSERT INTO personal_access_tokens
                 (user_id, name, secret_hash, actions, repositories, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.user.0)
        .bind(&new.name)
        .bind(&new.secret_hash[..])
        .bind(new.actions.to_string())
        .bind(&repositories)
        .bind(new.expires_at)
        .bind(created_at)
        .fetch_one(&mut tx)
        .await
        // (user_id, name) or secret_hash; a 256-bit secret never repeats.
        .map_err(unless_taken(|| {
            IdentityError::PatNameTaken(new.name.clone())
        }))?;
        tx.commit().await?;
        Ok(Pat {
            id,
            user: new.user,
            name: new.name.clone(),
            actions: new.actions.clone(),
            repositories: new.repositories.clone(),
            expires_at: new.expires_at,
            created_at,
            last_used_at: None,
        })
    }

    async fn pat_by_hash(&self, hash: &[u8; 32]) -> Result<Option<(Pat, User)>, IdentityError> {
        let row = query(concat!(
            "SELECT ",
            pat_cols!(),
            ", ",
            user_cols!(),
            " FROM personal_access_tokens p JOIN users u ON u.id = p.user_id
              WHERE p.secret_hash = $1 AND p.revoked_at IS NULL"
        ))
        .bind(&hash[..])
        .fetch_optional(self.db())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (pat, stored) = pat_from_row(&row)?;
        if !ct_eq(&stored, hash) {
            return Ok(None);
        }
        Ok(Some((pat, user_from_row(&row)?)))
    }

    async fn pat_by_id(&self, id: i64) -> Result<Option<Pat>, IdentityError> {
        let row = query(concat!(
            "SELECT ",
            pat_cols!(),
            " FROM personal_access_tokens p WHERE p.id = $1 AND p.revoked_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(self.db())
        .await?;
        row.map(|row| pat_from_row(&row).map(|(pat, _)| pat))
            .transpose()
    }

    async fn list_pats(&self, user: UserId) -> Result<Vec<Pat>, IdentityError> {
        let rows = query(concat!(
            "SELECT ",
            pat_cols!(),
            " FROM personal_access_tokens p
              WHERE p.user_id = $1 AND p.revoked_at IS NULL ORDER BY p.name"
        ))
        .bind(user.0)
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|row| pat_from_row(row).map(|(pat, _)| pat))
            .collect()
    }

    async fn revoke_pat(&self, user: UserId, name: &str) -> Result<bool, IdentityError> {
        let mut tx = self.db().begin_write(&[]).await?;
        let revoked: Option<i64> = query_scalar(
            "UPDATE personal_access_tokens SET revoked_at = $3
              WHERE user_id = $1 AND name = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(user.0)
        .bind(name)
        .bind(now_unix())
        .fetch_optional(&mut tx)
        .await?;
        let Some(id) = revoked else {
            return Ok(false);
        };
        record(
            &mut tx,
            &RevocationTarget::Pat(id),
            self.revocation_keep_secs,
        )
        .await?;
        tx.commit().await?;
        self.revocations_written();
        Ok(true)
    }

    async fn create_trust_rule(
        &self,
        rule: &NewRule,
        created_by: &str,
    ) -> Result<TrustRule, IdentityError> {
        self.insert_trust_rule(rule, created_by).await
    }

    async fn trust_rules(&self, namespace: &str) -> Result<Vec<TrustRule>, IdentityError> {
        self.select_trust_rules(RulesBy::Namespace, namespace).await
    }

    async fn trust_rules_for_issuer(
        &self,
        issuer: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<TrustRule>, IdentityError> {
        match namespace {
            Some(namespace) => self.select_issuer_rules_of(issuer, namespace).await,
            None => self.select_trust_rules(RulesBy::Issuer, issuer).await,
        }
    }

    async fn trust_rules_by_ids(&self, ids: &[i64]) -> Result<Vec<TrustRule>, IdentityError> {
        self.select_trust_rules_by_ids(ids).await
    }

    async fn delete_trust_rule(&self, namespace: &str, name: &str) -> Result<bool, IdentityError> {
        self.remove_trust_rule(namespace, name).await
    }

    async fn touch_pat(&self, id: i64, now: i64) -> Result<(), IdentityError> {
        query(
            "UPDATE personal_access_tokens SET last_used_at = $2
              WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .bind(id)
        .bind(now)
        .execute(self.db())
        .await?;
        Ok(())
    }

    async fn create_refresh_token(
        &self,
        user: UserId,
        hash: &[u8; 32],
        expires_at: i64,
    ) -> Result<RefreshToken, IdentityError> {
        let created_at = now_unix();
        let mut tx = self.db().begin_write(&[]).await?;
        user_robot_of(&mut tx, user).await?;
        let id: i64 = query_scalar(
            "INSERT INTO refresh_tokens (user_id, secret_hash, expires_at, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user.0)
        .bind(&hash[..])
        .bind(expires_at)
        .bind(created_at)
        .fetch_one(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshToken {
            id,
            user,
            expires_at,
            created_at,
        })
    }

    async fn refresh_token_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<(RefreshToken, User)>, IdentityError> {
        let row = query(concat!(
            "SELECT r.id, r.user_id, r.secret_hash, r.expires_at, r.created_at, ",
            user_cols!(),
            " FROM refresh_tokens r JOIN users u ON u.id = r.user_id
              WHERE r.secret_hash = $1 AND r.revoked_at IS NULL"
        ))
        .bind(&hash[..])
        .fetch_optional(self.db())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: Vec<u8> = row.try_get("secret_hash")?;
        if !ct_eq(&stored, hash) {
            return Ok(None);
        }
        let token = RefreshToken {
            id: row.try_get("id")?,
            user: UserId(row.try_get("user_id")?),
            expires_at: row.try_get("expires_at")?,
            created_at: row.try_get("created_at")?,
        };
        Ok(Some((token, user_from_row(&row)?)))
    }

    async fn revoke_refresh_token(&self, hash: &[u8; 32]) -> Result<bool, IdentityError> {
        let done = query(
            "UPDATE refresh_tokens SET revoked_at = $2
              WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(&hash[..])
        .bind(now_unix())
        .execute(self.db())
        .await?;
        Ok(done > 0)
    }

    async fn create_session(
        &self,
        user: UserId,
        pat: Option<i64>,
        hash: &[u8; 32],
        now: i64,
        expires_at: i64,
    ) -> Result<(), IdentityError> {
        let mut tx = self.db().begin_write(&[]).await?;
        user_robot_of(&mut tx, user).await?;
        query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut tx)
            .await?;
        query(
            "INSERT INTO ui_sessions (secret_hash, user_id, pat_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&hash[..])
        .bind(user.0)
        .bind(pat)
        .bind(now)
        .bind(expires_at)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_by_hash(
        &self,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(User, Option<i64>)>, IdentityError> {
        let row = query(concat!(
            "SELECT s.secret_hash, s.pat_id, ",
            user_cols!(),
            " FROM ui_sessions s JOIN users u ON u.id = s.user_id
               LEFT JOIN personal_access_tokens p ON p.id = s.pat_id
              WHERE s.secret_hash = $1 AND s.expires_at > $2
                AND (s.pat_id IS NULL
                     OR (p.revoked_at IS NULL AND p.expires_at > $2 AND p.user_id = s.user_id))"
        ))
        .bind(&hash[..])
        .bind(now)
        .fetch_optional(self.db())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: Vec<u8> = row.try_get("secret_hash")?;
        if !ct_eq(&stored, hash) {
            return Ok(None);
        }
        Ok(Some((user_from_row(&row)?, row.try_get("pat_id")?)))
    }

    async fn delete_session(&self, hash: &[u8; 32]) -> Result<bool, IdentityError> {
        let done = query("DELETE FROM ui_sessions WHERE secret_hash = $1")
            .bind(&hash[..])
            .execute(self.db())
            .await?;
        Ok(done > 0)
    }
}

#[cfg(test)]
mod tests {
    use berth_core::scope::Action;

    use super::*;
    use crate::identity::secret::{generate_pat, generate_refresh_token, hash_secret};

    async fn store() -> SqlMeta {
        SqlMeta::in_memory().await.unwrap()
    }

    fn new_pat(user: UserId, name: &str, hash: [u8; 32]) -> NewPat {
        NewPat {
            user,
            name: name.to_owned(),
            secret_hash: hash,
            actions: [Action::Pull, Action::Push].into_iter().collect(),
            repositories: vec!["acme/*".to_owned(), "alice/**".to_owned()],
            expires_at: now_unix() + 3600,
        }
    }

    #[tokio::test]
    async fn users_are_created_found_and_counted() {
        let s = store().await;
        assert_eq!(s.count_users().await.unwrap(), 0);
        let alice = s
            .create_user("alice", Some("$argon2id$x"), true)
            .await
            .unwrap();
        assert_eq!(alice.name, "alice");
        assert!(alice.is_admin && !alice.is_robot());
        assert_eq!(alice.password_hash.as_deref(), Some("$argon2id$x"));
        let bob = s.create_user("bob", None, false).await.unwrap();
        assert_ne!(alice.id, bob.id);
        assert_eq!(s.count_users().await.unwrap(), 2);
        assert_eq!(s.user_by_name("alice").await.unwrap(), Some(alice.clone()));
        assert_eq!(s.user_by_id(bob.id).await.unwrap(), Some(bob));
        assert_eq!(s.user_by_name("carol").await.unwrap(), None);
        assert_eq!(s.user_by_id(UserId(999)).await.unwrap(), None);
        assert!(matches!(
            s.create_user("alice", None, false).await,
            Err(IdentityError::NameTaken(n)) if n == "alice"
        ));
        for bad in ["Alice", "a/b", "", "a+b", "-x"] {
            assert!(
                matches!(
                    s.create_user(bad, None, false).await,
                    Err(IdentityError::InvalidName(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(s.count_users().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn passwords_are_replaced() {
        let s = store().await;
        s.create_user("alice", None, false).await.unwrap();
        s.set_password("alice", "$2y$new").await.unwrap();
        let alice = s.user_by_name("alice").await.unwrap().unwrap();
        assert_eq!(alice.password_hash.as_deref(), Some("$2y$new"));
        assert!(matches!(
            s.set_password("nobody", "h").await,
            Err(IdentityError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn users_and_orgs_share_one_namespace() {
        let s = store().await;
        let alice = s.create_user("alice", None, false).await.unwrap();
        // An organisation cannot take a user's name...
        assert!(matches!(
            s.create_org("alice", alice.id).await,
            Err(IdentityError::NameTaken(_))
        ));
        // ...nor a user an organisation's.
        let acme = s.create_org("acme", alice.id).await.unwrap();
        assert!(matches!(
            s.create_user("acme", None, false).await,
            Err(IdentityError::NameTaken(_))
        ));
        assert!(matches!(
            s.create_org("acme", alice.id).await,
            Err(IdentityError::NameTaken(_))
        ));
        assert!(matches!(
            s.create_robot(acme.id, "alice").await,
            Err(IdentityError::NameTaken(_))
        ));
        assert!(matches!(
            s.create_org("Acme", alice.id).await,
            Err(IdentityError::InvalidName(_))
        ));
        assert_eq!(
            s.namespace_owner("alice").await.unwrap(),
            Some(NamespaceOwner::User(alice.id))
        );
        assert_eq!(
            s.namespace_owner("acme").await.unwrap(),
            Some(NamespaceOwner::Org(acme.id))
        );
        assert_eq!(s.namespace_owner("nobody").await.unwrap(), None);
    }

    #[tokio::test]
    async fn orgs_and_memberships_with_roles() {
        let s = store().await;
        let alice = s.create_user("alice", None, false).await.unwrap();
        let bob = s.create_user("bob", None, false).await.unwrap();
        let acme = s.create_org("acme", alice.id).await.unwrap();
        assert_eq!(s.org_by_name("acme").await.unwrap(), Some(acme.clone()));
        assert_eq!(s.org_by_name("nope").await.unwrap(), None);
        assert_eq!(
            s.memberships(alice.id).await.unwrap(),
            vec![(acme.clone(), Role::Owner)]
        );
        assert!(s.memberships(bob.id).await.unwrap().is_empty());

        let beta = s.create_org("beta", bob.id).await.unwrap();
        s.set_member(acme.id, bob.id, Role::Member).await.unwrap();
        assert_eq!(
            s.memberships(bob.id).await.unwrap(),
            vec![(acme.clone(), Role::Member), (beta.clone(), Role::Owner)]
        );
        // Setting again changes the role.
        s.set_member(acme.id, bob.id, Role::Maintainer)
            .await
            .unwrap();
        assert_eq!(
            s.memberships(bob.id).await.unwrap()[0],
            (acme.clone(), Role::Maintainer)
        );
        assert!(s.remove_member(acme.id, bob.id).await.unwrap());
        assert!(!s.remove_member(acme.id, bob.id).await.unwrap());
        assert_eq!(
            s.memberships(bob.id).await.unwrap(),
            vec![(beta, Role::Owner)]
        );
        assert!(matches!(
            s.set_member(OrgId(999), bob.id, Role::Member).await,
            Err(IdentityError::NotFound(_))
        ));
        assert!(matches!(
            s.set_member(acme.id, UserId(999), Role::Member).await,
            Err(IdentityError::NotFound(_))
        ));
        assert!(matches!(
            s.create_org("gamma", UserId(999)).await,
            Err(IdentityError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn robots_belong_to_their_org() {
        let s = store().await;
        let alice = s.create_user("alice", None, false).await.unwrap();
        let acme = s.create_org("acme", alice.id).await.unwrap();
        let robot = s.create_robot(acme.id, "acme-ci").await.unwrap();
        assert_eq!(robot.robot_of, Some(acme.id));
        assert!(robot.is_robot() && !robot.is_admin && robot.password_hash.is_none());
        assert_eq!(
            s.user_by_name("acme-ci").await.unwrap(),
            Some(robot.clone())
        );
        // Its name is taken in the shared namespace.
        assert!(matches!(
            s.create_user("acme-ci", None, false).await,
            Err(IdentityError::NameTaken(_))
        ));
        assert!(matches!(
            s.create_org("acme-ci", alice.id).await,
            Err(IdentityError::NameTaken(_))
        ));
        assert_eq!(
            s.namespace_owner("acme-ci").await.unwrap(),
            Some(NamespaceOwner::User(robot.id))
        );
        // No password, no membership, no organisation of its own.
        assert!(matches!(
            s.set_password("acme-ci", "h").await,
            Err(IdentityError::Robot(_))
        ));
        assert!(matches!(
            s.set_member(acme.id, robot.id, Role::Member).await,
            Err(IdentityError::Robot(_))
        ));
        assert!(matches!(
            s.create_org("robots-org", robot.id).await,
            Err(IdentityError::Robot(_))
        ));
        assert!(s.memberships(robot.id).await.unwrap().is_empty());
        assert!(matches!(
            s.create_robot(OrgId(999), "ghost").await,
            Err(IdentityError::NotFound(_))
        ));
        assert!(matches!(
            s.create_robot(acme.id, "Bad+Name").await,
            Err(IdentityError::InvalidName(_))
        ));
        // Its credential is a PAT.
        let (secret, hash) = generate_pat().unwrap();
        s.create_pat(&new_pat(robot.id, "deploy", hash))
            .await
            .unwrap();
        let (_, user) = s
            .pat_by_hash(&hash_secret(secret.expose()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user, robot);
        assert_eq!(s.count_users().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn pats_are_created_found_listed_and_revoked() {
        let s = store().await;
        let alice = s.create_user("alice", Some("h"), false).await.unwrap();
        let (secret, hash) = generate_pat().unwrap();
        let created = s.create_pat(&new_pat(alice.id, "ci", hash)).await.unwrap();
        assert_eq!(created.name, "ci");
        assert_eq!(created.actions.to_string(), "pull,push");
        assert_eq!(created.repositories, vec!["acme/*", "alice/**"]);
        assert_eq!(created.last_used_at, None);

        let (found, user) = s
            .pat_by_hash(&hash_secret(secret.expose()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, created);
        assert_eq!(user, alice);
        assert_eq!(s.pat_by_hash(&[7; 32]).await.unwrap(), None);

        // Last use is recorded, never moved backwards.
        s.touch_pat(created.id, 1000).await.unwrap();
        s.touch_pat(created.id, 500).await.unwrap();
        let (found, _) = s.pat_by_hash(&hash).await.unwrap().unwrap();
        assert_eq!(found.last_used_at, Some(1000));
        s.touch_pat(999, 1000).await.unwrap();

        let (_, hash2) = generate_pat().unwrap();
        s.create_pat(&new_pat(alice.id, "a-laptop", hash2))
            .await
            .unwrap();
        let names: Vec<String> = s
            .list_pats(alice.id)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["a-laptop", "ci"]);

        // A revoked token is not found, not listed, and gives its name up.
        assert!(s.revoke_pat(alice.id, "ci").await.unwrap());
        assert!(!s.revoke_pat(alice.id, "ci").await.unwrap());
        assert!(!s.revoke_pat(alice.id, "never").await.unwrap());
        assert_eq!(s.pat_by_hash(&hash).await.unwrap(), None);
        assert_eq!(s.list_pats(alice.id).await.unwrap().len(), 1);
        let (_, hash3) = generate_pat().unwrap();
        let again = s.create_pat(&new_pat(alice.id, "ci", hash3)).await.unwrap();
        assert!(s.pat_by_hash(&hash3).await.unwrap().is_some());
        assert_ne!(again.id, created.id);
        assert_eq!(s.pat_by_hash(&hash).await.unwrap(), None);
    }

    #[tokio::test]
    async fn pat_names_are_unique_per_user() {
        let s = store().await;
        let alice = s.create_user("alice", None, false).await.unwrap();
        let bob = s.create_user("bob", None, false).await.unwrap();
        s.create_pat(&new_pat(alice.id, "ci", [1; 32]))
            .await
            .unwrap();
        assert!(matches!(
            s.create_pat(&new_pat(alice.id, "ci", [2; 32])).await,
            Err(IdentityError::PatNameTaken(n)) if n == "ci"
        ));
        // Another user may use the same name.
        s.create_pat(&new_pat(bob.id, "ci", [3; 32])).await.unwrap();
        assert_eq!(s.list_pats(alice.id).await.unwrap().len(), 1);
        assert_eq!(s.list_pats(bob.id).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn invalid_pats_are_refused() {
        let s = store().await;
        let alice = s.create_user("alice", None, false).await.unwrap();
        let mut pat = new_pat(alice.id, "ci", [1; 32]);
        pat.actions = Actions::all();
        assert!(matches!(
            s.create_pat(&pat).await,
            Err(IdentityError::InvalidPat(_))
        ));
        let mut pat = new_pat(alice.id, "ci", [1; 32]);
        pat.repositories = vec!["acme//x".to_owned()];
        assert!(matches!(
            s.create_pat(&pat).await,
            Err(IdentityError::InvalidPat(_))
        ));
        let mut pat = new_pat(alice.id, "ci", [1; 32]);
        pat.expires_at = now_unix() - 1;
        assert!(matches!(
            s.create_pat(&pat).await,
            Err(IdentityError::InvalidPat(_))
        ));
        assert!(matches!(
            s.create_pat(&new_pat(UserId(999), "ci", [1; 32])).await,
            Err(IdentityError::NotFound(_))
        ));
        assert!(s.list_pats(alice.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn refresh_tokens_are_found_until_revoked() {
        let s = store().await;
        let alice = s.create_user("alice", None, false).await.unwrap();
        let (secret, hash) = generate_refresh_token().unwrap();
        let expires_at = now_unix() + 86_400;
        let token = s
            .create_refresh_token(alice.id, &hash, expires_at)
            .await
            .unwrap();
        assert_eq!(token.user, alice.id);
        assert_eq!(token.expires_at, expires_at);
        let (found, user) = s
            .refresh_token_by_hash(&hash_secret(secret.expose()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, token);
        assert_eq!(user, alice);
        assert_eq!(s.refresh_token_by_hash(&[9; 32]).await.unwrap(), None);
        assert!(s.revoke_refresh_token(&hash).await.unwrap());
        assert!(!s.revoke_refresh_token(&hash).await.unwrap());
        assert_eq!(s.refresh_token_by_hash(&hash).await.unwrap(), None);
        assert!(matches!(
            s.create_refresh_token(UserId(999), &[1; 32], expires_at)
                .await,
            Err(IdentityError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn deleting_a_user_removes_memberships_and_tokens() {
        let s = store().await;
        let alice = s.create_user("alice", None, false).await.unwrap();
        let bob = s.create_user("bob", None, false).await.unwrap();
        let acme = s.create_org("acme", alice.id).await.unwrap();
        s.set_member(acme.id, bob.id, Role::Member).await.unwrap();
        s.create_pat(&new_pat(bob.id, "ci", [1; 32])).await.unwrap();
        s.create_pat(&new_pat(alice.id, "ci", [2; 32]))
            .await
            .unwrap();
        s.create_refresh_token(bob.id, &[3; 32], now_unix() + 60)
            .await
            .unwrap();

        assert_eq!(
            s.delete_user(
                "bob",
                OwnedRepositories::Keep,
                &crate::events::Actor::system()
            )
            .await
            .unwrap(),
            Some(DeletedUser::default())
        );
        assert_eq!(
            s.delete_user(
                "bob",
                OwnedRepositories::Keep,
                &crate::events::Actor::system()
            )
            .await
            .unwrap(),
            None
        );
        assert_eq!(s.user_by_id(bob.id).await.unwrap(), None);
        assert_eq!(s.pat_by_hash(&[1; 32]).await.unwrap(), None);
        assert!(s.list_pats(bob.id).await.unwrap().is_empty());
        assert_eq!(s.refresh_token_by_hash(&[3; 32]).await.unwrap(), None);
        assert!(s.memberships(bob.id).await.unwrap().is_empty());
        let rows: i64 = query_scalar(
            "SELECT (SELECT COUNT(*) FROM memberships WHERE user_id = $1)
                  + (SELECT COUNT(*) FROM personal_access_tokens WHERE user_id = $1)
                  + (SELECT COUNT(*) FROM refresh_tokens WHERE user_id = $1)",
        )
        .bind(bob.id.0)
        .fetch_one(s.db())
        .await
        .unwrap();
        assert_eq!(rows, 0);
        // Others are untouched; the name is free again.
        assert!(s.pat_by_hash(&[2; 32]).await.unwrap().is_some());
        assert_eq!(s.memberships(alice.id).await.unwrap().len(), 1);
        assert_eq!(s.namespace_owner("bob").await.unwrap(), None);
        s.create_org("bob", alice.id).await.unwrap();
    }
}
