//! Copying the rows of one berth metadata database into another, with
//! their ids: what `berth migrate` does with the metadata (`migrate.rs`).
//!
//! Every table of the schema but upload sessions (their bytes are staging
//! files of the source, not copied) is described once in [`TABLES`]: its
//! columns, which of them are the key, which name the thing the row is (a
//! user's name and creation time: *fixed*) and which are its changing state
//! (a user's password hash, a tag's manifest: *state*). The statements are
//! built from that description, one text for both engines.
//!
//! [`copy_table`] copies each source row:
//!
//! - `INSERT ... ON CONFLICT DO NOTHING`: a new row is copied as it is,
//!   ids included (a revocation record names a token by id, and a token's
//!   `berth_gen` is a revocation id);
//! - otherwise the target's row with the same key is read: a row whose
//!   fixed columns differ (or none with that key: another unique column
//!   conflicted) is another registry's data, and the copy stops with
//!   [`TransferError::Differs`]; a row equal to the source's was copied by
//!   an earlier run and is left alone; a row whose state differs (a tag
//!   moved, a password changed since that run) gets the source's state.
//!
//! [`prune_table`] removes the target's rows that are no longer the source's
//! (none with their key in the source, or one whose fixed columns differ: a
//! user deleted, a name taken again), so that a run after the source served
//! longer leaves the target equal to the source, deletions included. It is
//! only for a target known to hold nothing but an earlier copy of this
//! source (`migrate.rs` checks that by the signing keys).
//!
//! So a run is repeatable: after an interruption, or after the source
//! served a while longer, running again ends with the target holding every
//! source row as it is now. With [`Mode::Compare`] both only count what they
//! would do (`berth migrate --dry-run`).
//!
//! Rows are read from the source in `rowid` order: the source is always a
//! SQLite snapshot (`meta/snapshot.rs`), which nothing writes to.

use std::borrow::Cow;
use std::fmt;

use super::MetaError;
use super::db::{Arg, Db, Row, Tx, query, query_scalar};

/// Rows read or written in one statement page, and in one target transaction.
const PAGE: i64 = 500;

/// The type of a column, as both engines decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `BIGINT`, `NOT NULL`.
    Int,
    /// `BIGINT`, nullable.
    OptInt,
    /// `BOOLEAN`.
    Bool,
    /// `TEXT`, `NOT NULL`.
    Text,
    /// `TEXT`, nullable.
    OptText,
    /// `BYTEA` / `BLOB`, `NOT NULL`.
    Bytes,
}

/// What a column says of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Part of the primary key.
    Key,
    /// What the row is: equal in the target, or the target's row is another thing.
    Fixed,
    /// What may change while the row exists: the source's value wins.
    State,
}

/// A column of a [`Table`].
#[derive(Debug)]
struct Column {
    name: &'static str,
    kind: Kind,
    role: Role,
}

const fn col(name: &'static str, kind: Kind, role: Role) -> Column {
    Column { name, kind, role }
}

/// A table of the schema, as the copy sees it.
#[derive(Debug)]
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    columns: &'static [Column],
    /// Whether its key `id` is an identity column whose sequence must move
    /// past the copied ids.
    identity: bool,
}

use Kind::{Bool, Bytes, Int, OptInt, OptText, Text};
use Role::{Fixed, Key, State};

/// The tables in the order they are copied: each after the tables its
/// foreign keys name (and pruned in the reverse order).
pub const TABLES: [Table; 19] = [
    Table {
        name: "organizations",
        columns: &[
            col("id", Int, Key),
            col("name", Text, Fixed),
            col("created_at", Int, Fixed),
        ],
        identity: true,
    },
    Table {
        name: "users",
        columns: &[
            col("id", Int, Key),
            col("name", Text, Fixed),
            col("password_hash", OptText, State),
            col("is_admin", Bool, State),
            col("robot_of", OptInt, Fixed),
            col("created_at", Int, Fixed),
        ],
        identity: true,
    },
    Table {
        name: "memberships",
        columns: &[
            col("org_id", Int, Key),
            col("user_id", Int, Key),
            col("role", Text, State),
        ],
        identity: false,
    },
    Table {
        name: "personal_access_tokens",
        columns: &[
            col("id", Int, Key),
            col("user_id", Int, Fixed),
            col("name", Text, Fixed),
            col("secret_hash", Bytes, Fixed),
            col("actions", Text, Fixed),
            col("repositories", Text, Fixed),
            col("expires_at", Int, Fixed),
            col("created_at", Int, Fixed),
            col("last_used_at", OptInt, State),
            col("revoked_at", OptInt, State),
        ],
        identity: true,
    },
    Table {
        name: "refresh_tokens",
        columns: &[
            col("id", Int, Key),
            col("user_id", Int, Fixed),
            col("secret_hash", Bytes, Fixed),
            col("expires_at", Int, Fixed),
            col("created_at", Int, Fixed),
            col("revoked_at", OptInt, State),
        ],
        identity: true,
    },
    Table {
        name: "revocations",
        columns: &[
            col("id", Int, Key),
            col("kind", Text, Fixed),
            col("target", Text, Fixed),
            col("created_at", Int, Fixed),
            col("keep_until", Int, Fixed),
        ],
        identity: true,
    },
    Table {
        name: "trust_rules",
        columns: &[
            col("id", Int, Key),
            col("namespace", Text, Fixed),
            col("name", Text, Fixed),
            col("issuer", Text, State),
            col("audience", Text, State),
            col("claims", Text, State),
            col("actions", Text, State),
            col("repositories", Text, State),
            col("created_by", Text, Fixed),
            col("created_at", Int, Fixed),
        ],
        identity: true,
    },
    Table {
        name: "repositories",
        columns: &[
            col("id", Int, Key),
            col("name", Text, Fixed),
            col("created_at", Int, Fixed),
            col("public", Bool, State),
            col("namespace", Text, Fixed),
        ],
        identity: true,
    },
    Table {
        name: "blobs",
        columns: &[
            col("digest", Text, Key),
            col("size", Int, Fixed),
            col("created_at", Int, State),
        ],
        identity: false,
    },
    Table {
        name: "repository_blobs",
        columns: &[
            col("repository_id", Int, Key),
            col("digest", Text, Key),
            col("created_at", Int, State),
        ],
        identity: false,
    },
    Table {
        name: "manifests",
        columns: &[
            col("repository_id", Int, Key),
            col("digest", Text, Key),
            col("media_type", Text, Fixed),
            col("content", Bytes, Fixed),
            col("subject", OptText, Fixed),
            col("artifact_type", OptText, Fixed),
            col("annotations", OptText, Fixed),
            col("created_at", Int, State),
            col("pulled_at", OptInt, State),
        ],
        identity: false,
    },
    Table {
        name: "manifest_references",
        columns: &[
            col("repository_id", Int, Key),
            col("manifest_digest", Text, Key),
            col("child_digest", Text, Key),
            col("is_manifest", Bool, Fixed),
        ],
        identity: false,
    },
    Table {
        name: "tags",
        columns: &[
            col("repository_id", Int, Key),
            col("name", Text, Key),
            col("manifest_digest", Text, State),
            col("updated_at", Int, State),
        ],
        identity: false,
    },
    Table {
        name: "namespace_quotas",
        columns: &[col("namespace", Text, Key), col("bytes", Int, State)],
        identity: false,
    },
    // The collector's queue goes along: what the source had left
    // unreferenced is reviewed on the target too.
    Table {
        name: "gc_reviews",
        columns: &[
            col("kind", Text, Key),
            col("repository_id", Int, Key),
            col("digest", Text, Key),
            col("queued_at", Int, State),
            col("claimed_until", Int, State),
            col("claimed_by", Int, State),
            col("size", Int, State),
        ],
        identity: false,
    },
    // The events' outbox goes along: deliveries pending on the source are
    // delivered by the target's nodes, and the records stay listable.
    Table {
        name: "events",
        columns: &[
            col("id", Int, Key),
            col("event_id", Text, Fixed),
            col("repository", Text, Fixed),
            col("type", Text, Fixed),
            col("subject", Text, Fixed),
            col("document", Text, Fixed),
            col("created_at", Int, Fixed),
        ],
        identity: true,
    },
    Table {
        name: "event_deliveries",
        columns: &[
            col("event", Int, Key),
            col("endpoint", Text, Key),
            col("repository", Text, Fixed),
            col("chain", Text, Fixed),
            col("state", Text, State),
            col("attempts", Int, State),
            col("last_status", OptInt, State),
            col("last_error", OptText, State),
            col("updated_at", Int, State),
        ],
        identity: false,
    },
    Table {
        name: "event_chains",
        columns: &[
            col("endpoint", Text, Key),
            col("chain", Text, Key),
            col("head", Int, State),
            col("due_at_ms", Int, State),
        ],
        identity: false,
    },
    Table {
        name: "proxies",
        columns: &[
            col("name", Text, Key),
            col("url", Text, State),
            col("access", Text, State),
            col("username", OptText, State),
            col("password_file", OptText, State),
            col("tag_ttl_secs", Int, State),
            col("created_at", Int, Fixed),
        ],
        identity: false,
    },
];

/// How many tables of [`TABLES`] hold identities (copied before any blob).
pub const IDENTITY_TABLES: usize = 7;

/// Whether to change the target or only count what would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write to the target.
    Copy,
    /// Read the target only; the counts say what [`Mode::Copy`] would do.
    Compare,
}

/// A column's value, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Int(Option<i64>),
    Bool(bool),
    Text(Option<String>),
    Bytes(Vec<u8>),
}

impl Value {
    fn read(row: &Row, column: &Column) -> Result<Self, sqlx::Error> {
        Ok(match column.kind {
            Int | OptInt => Self::Int(row.try_get(column.name)?),
            Bool => Self::Bool(row.try_get(column.name)?),
            Text | OptText => Self::Text(row.try_get(column.name)?),
            Bytes => Self::Bytes(row.try_get(column.name)?),
        })
    }

    fn arg(&self) -> Arg<'_> {
        match self {
            Self::Int(v) => Arg::Int(*v),
            Self::Bool(v) => Arg::Bool(*v),
            Self::Text(v) => Arg::Text(v.as_deref().map(Cow::Borrowed)),
            Self::Bytes(v) => Arg::Bytes(v),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(Some(v)) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Text(Some(v)) => write!(f, "{v:?}"),
            Self::Int(None) | Self::Text(None) => f.write_str("NULL"),
            Self::Bytes(v) => write!(f, "{} bytes", v.len()),
        }
    }
}

/// What happened (or, compared, would happen) to the rows of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCount {
    /// Rows in the source.
    pub total: u64,
    /// Rows inserted into the target.
    pub copied: u64,
    /// Rows the target held already, equal.
    pub present: u64,
    /// Rows the target held with another state, which the source's replaced.
    pub updated: u64,
    /// Rows of the target that are no longer the source's, removed.
    pub removed: u64,
}

/// Why a copy of rows failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The target holds a row with the key of a source row but not the same thing.
    #[error(
        "the target database already holds other data: {table} {key} is not the source's \
         ({detail}); migrate into an empty database (one no `berth serve` has started on), \
         or into the target of an earlier migration of this source"
    )]
    Differs {
        /// The table.
        table: &'static str,
        /// The row's key, as `column=value, ...`.
        key: String,
        /// What differs.
        detail: String,
    },
    /// A database failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
}

impl From<sqlx::Error> for TransferError {
    fn from(e: sqlx::Error) -> Self {
        Self::Meta(MetaError::from(e))
    }
}

/// The statements of one table, built once from its description.
struct Statements {
    /// A page of source rows after a `rowid`.
    read_page: String,
    /// Insert one row, nothing on a conflict.
    insert: String,
    /// The row with a key (every column).
    read_by_key: String,
    /// Set the state columns of the row with a key.
    update: Option<String>,
    /// The first page of rows in key order (every column).
    first_by_key: String,
    /// The next page of rows in key order, after a key.
    next_by_key: String,
    /// Remove the row with a key.
    delete: String,
}

impl Statements {
    fn of(table: &Table, target: &Db) -> Self {
        let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let list = names.join(", ");
        let keys: Vec<&str> = table.columns_with(Key).map(|c| c.name).collect();
        let states: Vec<&str> = table.columns_with(State).map(|c| c.name).collect();
        let placeholders = |from: usize, n: usize| {
            (from..from + n)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let matching = |from: usize| {
            keys.iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ${}", from + i))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let name = table.name;
        let key_list = keys.join(", ");
        let update = (!states.is_empty()).then(|| {
            let set = states
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c} = ${}", i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "UPDATE {name} SET {set} WHERE {}",
                matching(states.len() + 1)
            )
        });
        Self {
            read_page: format!(
                "SELECT rowid AS copy_rowid, {list} FROM {name} WHERE rowid > $1 ORDER BY rowid LIMIT $2"
            ),
            insert: format!(
                "INSERT INTO {name} ({list}) {} VALUES ({}) ON CONFLICT DO NOTHING",
                target.engine().overriding_identity(),
                placeholders(1, names.len())
            ),
            read_by_key: format!("SELECT {list} FROM {name} WHERE {}", matching(1)),
            update,
            first_by_key: format!("SELECT {list} FROM {name} ORDER BY {key_list} LIMIT $1"),
            // A row-value comparison: both engines order tuples column by column.
            next_by_key: format!(
                "SELECT {list} FROM {name} WHERE ({key_list}) > ({}) ORDER BY {key_list} LIMIT ${}",
                placeholders(1, keys.len()),
                keys.len() + 1
            ),
            delete: format!("DELETE FROM {name} WHERE {}", matching(1)),
        }
    }
}

impl Table {
    fn columns_with(&self, role: Role) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(move |c| c.role == role)
    }

    /// The values of `row` (all columns, in order).
    fn values(&self, row: &Row) -> Result<Vec<Value>, sqlx::Error> {
        self.columns.iter().map(|c| Value::read(row, c)).collect()
    }

    /// The key values among `values`.
    fn key_of<'v>(&self, values: &'v [Value]) -> Vec<&'v Value> {
        self.columns
            .iter()
            .zip(values)
            .filter(|(c, _)| c.role == Key)
            .map(|(_, v)| v)
            .collect()
    }

    /// `column=value, ...` of the key, for messages.
    fn describe_key(&self, values: &[Value]) -> String {
        self.columns_with(Key)
            .zip(self.key_of(values))
            .map(|(c, v)| format!("{}={v}", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How the row `theirs` compares with `ours` (same key): the first
    /// fixed column that differs, else whether a state column does.
    fn compare(&self, ours: &[Value], theirs: &[Value]) -> Comparison {
        let mut state_differs = false;
        for ((column, a), b) in self.columns.iter().zip(ours).zip(theirs) {
            if a == b {
                continue;
            }
            match column.role {
                State => state_differs = true,
                Key | Fixed => return Comparison::Other(column.name),
            }
        }
        if state_differs {
            Comparison::StateDiffers
        } else {
            Comparison::Equal
        }
    }
}

/// How a target row compares with the source row of the same key.
enum Comparison {
    Equal,
    StateDiffers,
    /// Another thing: this fixed column differs.
    Other(&'static str),
}

/// Rows of `table` in `db`.
pub async fn count_rows(db: &Db, table: &Table) -> Result<u64, MetaError> {
    // Safe: the name is a fixed table name of the schema.
    let n: i64 = query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        table.name
    )))
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Runs a query built from the fixed statements above, binding `values`.
fn bound<'a>(sql: &str, values: impl IntoIterator<Item = &'a Value>) -> super::db::Query<'a> {
    // Safe: every statement is built from fixed names of the schema and
    // numbered placeholders (`Statements::of`).
    let mut q = query(sqlx::AssertSqlSafe(sql.to_owned()));
    for v in values {
        q = q.bind(v.arg());
    }
    q
}

/// Copies every row of `table` from `source` (a SQLite snapshot) into
/// `target`, or with [`Mode::Compare`] counts what that would do (see the
/// module doc). `pruned`: [`prune_table`] ran (or, compared, would run)
/// first, so a target row that is another thing than the source's is gone
/// by now and the source's is copied.
pub async fn copy_table(
    source: &Db,
    target: &Db,
    table: &'static Table,
    mode: Mode,
    pruned: bool,
) -> Result<TableCount, TransferError> {
    let sql = Statements::of(table, target);
    let mut count = TableCount::default();
    let mut after = 0i64;
    loop {
        let rows = query(sqlx::AssertSqlSafe(sql.read_page.clone()))
            .bind(after)
            .bind(PAGE)
            .fetch_all(source)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("copy_rowid")?;
        let mut tx = target.begin().await?;
        for row in &rows {
            let values = table.values(row)?;
            count.total += 1;
            if mode == Mode::Copy && bound(&sql.insert, &values).execute(&mut tx).await? == 1 {
                count.copied += 1;
                continue;
            }
            let existing = bound(&sql.read_by_key, table.key_of(&values))
                .fetch_optional(&mut tx)
                .await?;
            let Some(existing) = existing else {
                if mode == Mode::Compare {
                    count.copied += 1;
                    continue;
                }
                return Err(TransferError::Differs {
                    table: table.name,
                    key: table.describe_key(&values),
                    detail: "another row holds one of its unique values".to_owned(),
                });
            };
            match table.compare(&values, &table.values(&existing)?) {
                Comparison::Equal => count.present += 1,
                Comparison::StateDiffers => {
                    count.updated += 1;
                    if let (Mode::Copy, Some(update)) = (mode, &sql.update) {
                        let state = table
                            .columns
                            .iter()
                            .zip(&values)
                            .filter(|(c, _)| c.role == State)
                            .map(|(_, v)| v);
                        bound(update, state.chain(table.key_of(&values)))
                            .execute(&mut tx)
                            .await?;
                    }
                }
                Comparison::Other(_) if pruned && mode == Mode::Compare => count.copied += 1,
                Comparison::Other(column) => {
                    return Err(TransferError::Differs {
                        table: table.name,
                        key: table.describe_key(&values),
                        detail: format!("its {column} differs"),
                    });
                }
            }
        }
        tx.commit().await?;
    }
    Ok(count)
}

/// Removes from `target` the rows of `table` that are not the source's:
/// none in `source` with their key, or one whose fixed columns differ; how
/// many (with [`Mode::Compare`], how many it would remove).
pub async fn prune_table(
    source: &Db,
    target: &Db,
    table: &'static Table,
    mode: Mode,
) -> Result<u64, TransferError> {
    let sql = Statements::of(table, target);
    let mut removed = 0;
    let mut after: Option<Vec<Value>> = None;
    loop {
        let page = match &after {
            None => query(sqlx::AssertSqlSafe(sql.first_by_key.clone())),
            Some(key) => bound(&sql.next_by_key, key),
        }
        .bind(PAGE)
        .fetch_all(target)
        .await?;
        let Some(last) = page.last() else {
            return Ok(removed);
        };
        let last = table.values(last)?;
        let mut gone = Vec::new();
        for row in &page {
            let theirs = table.values(row)?;
            let ours = bound(&sql.read_by_key, table.key_of(&theirs))
                .fetch_optional(source)
                .await?;
            let keep = match ours {
                Some(ours) => !matches!(
                    table.compare(&table.values(&ours)?, &theirs),
                    Comparison::Other(_)
                ),
                None => false,
            };
            if !keep {
                gone.push(theirs);
            }
        }
        removed += gone.len() as u64;
        if mode == Mode::Copy && !gone.is_empty() {
            let mut tx = target.begin().await?;
            for theirs in &gone {
                bound(&sql.delete, table.key_of(theirs))
                    .execute(&mut tx)
                    .await?;
            }
            tx.commit().await?;
        }
        after = Some(table.key_of(&last).into_iter().cloned().collect());
    }
}

/// Moves the identity sequences of the target past every copied id, and
/// the revocation numbers past the largest the source ever handed out
/// (pruned records included: a token's `berth_gen` may name one), so that
/// the target never hands out an id twice, and a revocation recorded on
/// the target always applies to the tokens the source issued before it;
/// event numbers likewise (an operator's note may name a pruned one).
pub async fn continue_identities(source: &Db, target: &Db) -> Result<(), TransferError> {
    let mut tx: Tx = target.begin().await?;
    for table in TABLES.iter().filter(|t| t.identity) {
        let at_least = if matches!(table.name, "revocations" | "events") {
            // SQLite's own record of AUTOINCREMENT tables (the source is SQLite).
            let handed_out: Option<i64> =
                query_scalar("SELECT seq FROM sqlite_sequence WHERE name = $1")
                    .bind(table.name)
                    .fetch_optional(source)
                    .await?;
            handed_out.unwrap_or(0)
        } else {
            0
        };
        tx.continue_identity(table.name, at_least).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_a_key_and_the_order_follows_the_foreign_keys() {
        for table in &TABLES {
            assert!(table.columns_with(Key).next().is_some(), "{}", table.name);
        }
        let position = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap();
        assert!(position("organizations") < position("users"));
        assert!(position("users") < position("memberships"));
        assert!(position("users") < position("personal_access_tokens"));
        assert!(position("repositories") < position("repository_blobs"));
        assert!(position("blobs") < position("repository_blobs"));
        assert!(position("manifests") < position("manifest_references"));
        assert!(position("manifests") < position("tags"));
        assert!(TABLES[..IDENTITY_TABLES].iter().all(|t| t.name != "blobs"));
        assert_eq!(TABLES[IDENTITY_TABLES].name, "repositories");
    }

    /// Every column of the schema but upload sessions' and web sessions' is copied: a column
    /// added by a later migration and not named here would be lost.
    #[tokio::test]
    async fn the_tables_name_every_column_of_the_schema() {
        let db = Db::sqlite_in_memory().await.unwrap();
        for table in &TABLES {
            let columns: Vec<String> = query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{}') ORDER BY cid",
                table.name
            )))
            .fetch_all(&db)
            .await
            .unwrap();
            let named: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
            assert_eq!(columns, named, "{}", table.name);
        }
        let all: Vec<String> = query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name",
        )
        .fetch_all(&db)
        .await
        .unwrap();
        let mut named: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        named.push("uploads");
        named.push("ui_sessions");
        named.sort_unstable();
        assert_eq!(all, named);
    }
}
