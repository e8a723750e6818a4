//! Trust rules (workload identity, `trust/`) on the metadata database: the
//! SQL behind the [`crate::identity::IdentityStore`] methods of rules, one
//! text for both engines. Schema: `migrations/*/20261203000003_trust.sql`.
//!
//! A rule belongs to a namespace (a user's or an organisation's name): it is
//! created under [`Lock::Identity`] after checking that the namespace exists,
//! so that it cannot outlive a namespace deleted at the same moment;
//! [`delete_namespace_rules`] runs inside the deletions of users and
//! organisations. Removing a rule writes a `Trust(id)` revocation record in
//! the same transaction, so registry tokens issued through it stop working.

use berth_core::scope::Actions;

use super::SqlMeta;
use super::db::{Lock, Row, Tx, query, query_scalar};
use super::revocation_sql::record;
use crate::auth::revocation::RevocationTarget;
use crate::clock::now_unix;
use crate::identity::IdentityError;
use crate::trust::rule::{NewRule, TrustRule};

/// The most trust rules one namespace may have: an exchange reads the rules
/// of the namespaces it asks for, and a token names each that accepted it.
pub const MAX_RULES_PER_NAMESPACE: i64 = 100;

/// The columns of a rule, in [`rule_from_row`]'s order.
const RULE_COLUMNS: &str = "id, namespace, name, issuer, audience, claims, actions, \
                            repositories, created_by, created_at";

fn rule_from_row(row: &Row) -> Result<TrustRule, IdentityError> {
    let corrupt = |what: &str, e: String| IdentityError::Corrupt(format!("trust rule {what}: {e}"));
    let claims: String = row.try_get("claims")?;
    let actions: String = row.try_get("actions")?;
    let repositories: String = row.try_get("repositories")?;
    Ok(TrustRule {
        id: row.try_get("id")?,
        namespace: row.try_get("namespace")?,
        name: row.try_get("name")?,
        issuer: row.try_get("issuer")?,
        audience: row.try_get("audience")?,
        claims: TrustRule::claims_from_json(&claims).map_err(|e| corrupt("claims", e))?,
        actions: actions
            .parse::<Actions>()
            .map_err(|e| corrupt("actions", e.to_string()))?,
        repositories: serde_json::from_str(&repositories)
            .map_err(|e| corrupt("repositories", e.to_string()))?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Which rules [`SqlMeta::select_trust_rules`] reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum RulesBy {
    /// A namespace's.
    Namespace,
    /// Those naming an issuer.
    Issuer,
}

impl SqlMeta {
    pub(super) async fn insert_trust_rule(
        &self,
        rule: &NewRule,
        created_by: &str,
    ) -> Result<TrustRule, IdentityError> {
        let mut tx = self.db().begin_write(&[Lock::Identity]).await?;
        let exists: Option<i64> = query_scalar(
            "SELECT id FROM users WHERE name = $1 AND robot_of IS NULL
             UNION ALL SELECT id FROM organizations WHERE name = $1",
        )
        .bind(&rule.namespace)
        .fetch_optional(&mut tx)
        .await?;
        if exists.is_none() {
            return Err(IdentityError::NotFound(format!(
                "namespace `{}` (no user or organisation has that name)",
                rule.namespace
            )));
        }
        let count: i64 = query_scalar("SELECT COUNT(*) FROM trust_rules WHERE namespace = $1")
            .bind(&rule.namespace)
            .fetch_one(&mut tx)
            .await?;
        if count >= MAX_RULES_PER_NAMESPACE {
            return Err(IdentityError::RuleLimit {
                namespace: rule.namespace.clone(),
                limit: MAX_RULES_PER_NAMESPACE,
            });
        }
        let name = match &rule.name {
            Some(name) => name.clone(),
            None => free_name(&mut tx, &rule.namespace).await?,
        };
        let taken: Option<i64> =
            query_scalar("SELECT id FROM trust_rules WHERE namespace = $1 AND name = $2")
                .bind(&rule.namespace)
                .bind(&name)
                .fetch_optional(&mut tx)
                .await?;
        if taken.is_some() {
            return Err(IdentityError::RuleNameTaken {
                namespace: rule.namespace.clone(),
                name,
            });
        }
        let actions = rule.actions.to_string();
        let repositories = serde_json::to_string(&rule.repositories)
            .map_err(|e| IdentityError::Corrupt(e.to_string()))?;
        let row = query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO trust_rules
                 (namespace, name, issuer, audience, claims, actions, repositories,
                  created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING {RULE_COLUMNS}"
        )))
        .bind(&rule.namespace)
        .bind(&name)
        .bind(&rule.issuer)
        .bind(&rule.audience)
        .bind(TrustRule::claims_json(&rule.claims))
        .bind(&actions)
        .bind(&repositories)
        .bind(created_by)
        .bind(now_unix())
        .fetch_one(&mut tx)
        .await?;
        let stored = rule_from_row(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn select_trust_rules(
        &self,
        by: RulesBy,
        value: &str,
    ) -> Result<Vec<TrustRule>, IdentityError> {
        let column = match by {
            RulesBy::Namespace => "namespace",
            RulesBy::Issuer => "issuer",
        };
        let rows = query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM trust_rules WHERE {column} = $1 ORDER BY namespace, name"
        )))
        .bind(value)
        .fetch_all(self.db())
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    pub(super) async fn select_issuer_rules_of(
        &self,
        issuer: &str,
        namespace: &str,
    ) -> Result<Vec<TrustRule>, IdentityError> {
        let rows = query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM trust_rules WHERE namespace = $1 AND issuer = $2 \
             ORDER BY name"
        )))
        .bind(namespace)
        .bind(issuer)
        .fetch_all(self.db())
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    pub(super) async fn select_trust_rules_by_ids(
        &self,
        ids: &[i64],
    ) -> Result<Vec<TrustRule>, IdentityError> {
        let mut rules = Vec::with_capacity(ids.len());
        for id in ids {
            let row = query(sqlx::AssertSqlSafe(format!(
                "SELECT {RULE_COLUMNS} FROM trust_rules WHERE id = $1"
            )))
            .bind(*id)
            .fetch_optional(self.db())
            .await?;
            if let Some(row) = row {
                rules.push(rule_from_row(&row)?);
            }
        }
        Ok(rules)
    }

    pub(super) async fn remove_trust_rule(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<bool, IdentityError> {
        let mut tx = self.db().begin_write(&[Lock::Identity]).await?;
        let id: Option<i64> =
            query_scalar("DELETE FROM trust_rules WHERE namespace = $1 AND name = $2 RETURNING id")
                .bind(namespace)
                .bind(name)
                .fetch_optional(&mut tx)
                .await?;
        let Some(id) = id else {
            return Ok(false);
        };
        record(
            &mut tx,
            &RevocationTarget::Trust(id),
            self.revocation_keep_secs,
        )
        .await?;
        tx.commit().await?;
        self.revocations_written();
        Ok(true)
    }
}

/// The first `rule-N` the namespace does not use.
async fn free_name(tx: &mut Tx, namespace: &str) -> Result<String, IdentityError> {
    let names: Vec<String> =
        query_scalar("SELECT name FROM trust_rules WHERE namespace = $1 AND name LIKE 'rule-%'")
            .bind(namespace)
            .fetch_all(&mut *tx)
            .await?;
    let used: std::collections::HashSet<String> = names.into_iter().collect();
    Ok((1..)
        .map(|n| format!("rule-{n}"))
        .find(|name| !used.contains(name))
        .unwrap_or_else(|| "rule-0".to_owned()))
}

/// Removes the rules of a namespace being deleted (a user's or an
/// organisation's), in the caller's transaction, each with its revocation
/// record: a later user or organisation of the same name inherits no rule,
/// and the tokens issued through them end.
pub(super) async fn delete_namespace_rules(
    tx: &mut Tx,
    namespace: &str,
    keep_secs: i64,
) -> Result<(), IdentityError> {
    let ids: Vec<i64> = query_scalar("DELETE FROM trust_rules WHERE namespace = $1 RETURNING id")
        .bind(namespace)
        .fetch_all(&mut *tx)
        .await?;
    for id in ids {
        record(tx, &RevocationTarget::Trust(id), keep_secs).await?;
    }
    Ok(())
}
