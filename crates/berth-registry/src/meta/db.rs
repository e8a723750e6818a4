//! The SQL adapter: one way to run a query on SQLite or on PostgreSQL, and
//! every place where the two dialects differ.
//!
//! The stores above it (`sql.rs`, `identity_sql.rs`, `revocation_sql.rs`,
//! `keys_sql.rs`) write each query once, in the SQL both engines understand:
//! `$N` placeholders, `ON CONFLICT`, `RETURNING`, `CAST(.. AS BIGINT)`. They
//! build a [`Query`] with [`query`], bind [`Arg`]s, and run it on a [`Db`]
//! (the pool) or a [`Tx`] (a transaction). The adapter binds the arguments to
//! the engine's own types, and decodes rows through sqlx's typed `Decode` and
//! `FromRow` for both engines: a value that has no meaning in one of them
//! does not compile (this is why it is not `sqlx::Any`, which cannot carry
//! booleans or byte strings faithfully).
//!
//! What differs, and only here:
//! - opening: SQLite in WAL mode with `synchronous=FULL` and foreign keys on,
//!   a connection handed back still inside a transaction closed, not reused;
//!   PostgreSQL with a bounded pool. Each has its own migrations
//!   (`migrations/sqlite/`, `migrations/postgres/`), of the same meaning.
//! - writers: SQLite has one writer at a time, so a write transaction begins
//!   `IMMEDIATE` (the write lock taken before its first read: what it checks
//!   stays true until it commits). PostgreSQL runs writers side by side, so a
//!   write transaction names the [`Lock`]s its checks need, taken as
//!   transaction-scoped advisory locks, always in one order (no deadlock
//!   between two of them), released at commit.
//! - change notices: on PostgreSQL a write to a repository sends a
//!   notification (`NOTIFY`) on [`CHANGES_CHANNEL`] at commit, so that other
//!   nodes drop what they cached of it (`meta/notify.rs`); SQLite has no
//!   other node.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Decode, FromRow, Postgres, Row as _, SqlSafeStr, SqlStr, Sqlite, Transaction, Type};

use super::MetaError;

/// The PostgreSQL channel on which writes name the repository they changed.
pub const CHANGES_CHANNEL: &str = "berth_changes";

/// Connections a node's PostgreSQL pool opens at most, unless configured
/// (`Config::database_max_connections`).
pub const PG_MAX_CONNECTIONS: u32 = 16;

/// The metadata database: a connection pool of one engine.
#[derive(Debug, Clone)]
pub enum Db {
    /// The embedded default: one file under the data directory, and the
    /// queue its writers take turns in.
    Sqlite(SqlitePool, WriterQueue),
    /// A PostgreSQL database, shared by every node.
    Postgres(PgPool),
}

/// Which engine a [`Db`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Engine {
    /// What an `INSERT` that gives the values of an identity column
    /// `GENERATED ALWAYS` (revocations) says between its columns and
    /// `VALUES` (PostgreSQL refuses given values otherwise; SQLite has no
    /// such column and no such clause).
    pub fn overriding_identity(self) -> &'static str {
        match self {
            Self::Postgres => "OVERRIDING SYSTEM VALUE",
            Self::Sqlite => "",
        }
    }

    /// What a `SELECT` of rows to claim ends with, so that two claimers take
    /// different rows instead of waiting on each other (PostgreSQL's `FOR
    /// UPDATE SKIP LOCKED`; SQLite's one writer claims alone).
    pub fn skip_locked(self) -> &'static str {
        match self {
            Self::Postgres => "FOR UPDATE SKIP LOCKED",
            Self::Sqlite => "",
        }
    }
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Self, MetaError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .after_release(|conn, _| Box::pin(release_only_outside_a_transaction(conn)))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self::Sqlite(pool, WriterQueue::default()))
    }

    /// An in-memory SQLite database, for tests.
    pub async fn sqlite_in_memory() -> Result<Self, MetaError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // One connection: every connection to `:memory:` is a database of its own.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self::Sqlite(pool, WriterQueue::default()))
    }

    /// Connects to the PostgreSQL database `url` (`postgres://...`) and
    /// migrates it. Several nodes may start at once: the migrator holds an
    /// advisory lock while it runs.
    pub async fn open_postgres(url: &str) -> Result<Self, MetaError> {
        Self::open_postgres_with(url, PG_MAX_CONNECTIONS).await
    }

    /// [`Db::open_postgres`] with a pool of at most `max_connections`
    /// connections (at least one).
    pub async fn open_postgres_with(url: &str, max_connections: u32) -> Result<Self, MetaError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self::Postgres(pool))
    }

    /// Connects to the PostgreSQL database `url` without migrating it: to
    /// look at a database without changing it (`berth migrate --dry-run`).
    pub async fn connect_postgres(url: &str) -> Result<Self, MetaError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self::Postgres(pool))
    }

    /// Opens the existing SQLite database at `path` read-only, without
    /// migrating it: to look at a database without changing it.
    pub async fn open_sqlite_read_only(path: &Path) -> Result<Self, MetaError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Self::Sqlite(pool, WriterQueue::default()))
    }

    /// Whether the table `name` exists: a database no berth has migrated
    /// yet has none of berth's.
    pub async fn has_table(&self, name: &str) -> Result<bool, sqlx::Error> {
        let sql = match self.engine() {
            Engine::Sqlite => {
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            Engine::Postgres => {
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1"
            }
        };
        let n: i64 = query_scalar(sql).bind(name).fetch_one(self).await?;
        Ok(n > 0)
    }

    /// Closes every connection of the pool (waiting for those in use).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool, _) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// Which engine this is.
    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(..) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }

    /// The SQLite pool, for what only SQLite does (`meta/snapshot.rs`).
    pub fn sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Self::Sqlite(pool, _) => Some(pool),
            Self::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for what only PostgreSQL does (`meta/notify.rs`).
    pub fn postgres(&self) -> Option<&PgPool> {
        match self {
            Self::Sqlite(..) => None,
            Self::Postgres(pool) => Some(pool),
        }
    }

    /// Begins a transaction that only reads, or writes rows no check depends on.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool, _) => Tx::Sqlite(pool.begin().await?, None),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a transaction whose writes depend on what it reads first,
    /// holding `locks` until it ends (see the module doc).
    pub async fn begin_write(&self, locks: &[Lock<'_>]) -> Result<Tx, sqlx::Error> {
        match self {
            Self::Sqlite(pool, queue) => {
                // In turn, first come first served: SQLite's own wait for
                // its write lock polls with growing sleeps, so that a writer
                // that comes back at once (the collector's next batch) could
                // take the lock again and again before a waiting push wakes.
                let turn = queue.0.clone().acquire_owned().await.map_err(|_| {
                    sqlx::Error::Protocol("the database's writer queue is closed".into())
                })?;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(Tx::Sqlite(tx, Some(turn)))
            }
            Self::Postgres(pool) => {
                let mut tx = Tx::Postgres(pool.begin().await?);
                tx.lock_all(locks).await?;
                Ok(tx)
            }
        }
    }

    /// A turn in the writer queue for one statement run outside a
    /// transaction, held until dropped (SQLite; `None` on PostgreSQL, whose
    /// writers do not queue).
    pub async fn write_turn(
        &self,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, sqlx::Error> {
        match self {
            Self::Sqlite(_, queue) => queue
                .0
                .clone()
                .acquire_owned()
                .await
                .map(Some)
                .map_err(|_| sqlx::Error::Protocol("the database's writer queue is closed".into())),
            Self::Postgres(_) => Ok(None),
        }
    }

    /// One round trip to the database: whether it answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        query("SELECT 1").execute(self).await.map(|_| ())
    }
}

/// Whether a connection handed back may serve again (`false` closes it).
///
/// SQLite rolls a transaction back by itself when a write fails for a full
/// disk (or an I/O error); the ROLLBACK sqlx then sends fails ("no transaction
/// is active"), and sqlx keeps counting the transaction as open. Returned to
/// the pool like that, the connection refused every `BEGIN IMMEDIATE` after
/// ("attempted to call begin_with at non-zero transaction depth") until a
/// restart. The ping waits for the queued rollback; a connection still
/// counting a transaction after it is dropped, and the pool opens a new one.
async fn release_only_outside_a_transaction(
    conn: &mut SqliteConnection,
) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!(
            "a database connection came back inside a transaction SQLite had ended (full disk or I/O error); replacing it"
        );
        return Ok(false);
    }
    Ok(true)
}

/// What a write transaction must hold so that its checks stay true until it
/// commits (PostgreSQL; SQLite's one writer holds them all). Taken in the
/// order of this enum, so two transactions never wait on each other in a
/// circle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock<'a> {
    /// The names of users and organisations, memberships and roles (a name
    /// checked free, an organisation's last owner kept).
    Identity,
    /// A namespace whole: its repositories are deleted with their owner.
    /// Writers to one of its repositories hold it shared.
    Namespace(&'a str),
    /// One repository: its content, tags, blob links and visibility (a
    /// manifest's references checked present stay present). Holds its
    /// namespace shared.
    Repository {
        /// The repository name.
        name: &'a str,
        /// Its first path component.
        namespace: &'a str,
    },
    /// One blob's record and bytes (a digest): a record is written only
    /// while its bytes are checked present, and bytes are removed only while
    /// no record names them (gc/).
    Blob(&'a str),
    /// The open upload sessions of one owner (`repository:<name>`,
    /// `subject:<name>`), counted against a cap.
    Uploads(&'a str),
    /// The token signing keys (one active key).
    Keys,
    /// Revocation records: numbered in commit order, so their writers commit
    /// one at a time, each with the next number (`auth/revocation.rs`).
    Revocations,
}

impl Lock<'_> {
    /// The order locks are taken in.
    fn rank(&self) -> u8 {
        match self {
            Self::Identity => 0,
            Self::Namespace(_) => 1,
            Self::Repository { .. } => 2,
            Self::Blob(_) => 3,
            Self::Uploads(_) => 4,
            Self::Keys => 5,
            Self::Revocations => 6,
        }
    }

    /// The advisory locks it takes: (key, shared).
    fn keys(&self) -> Vec<(i64, bool)> {
        match self {
            Self::Identity => vec![(lock_key("identity", ""), false)],
            Self::Namespace(ns) => vec![(lock_key("namespace", ns), false)],
            Self::Repository { name, namespace } => vec![
                (lock_key("namespace", namespace), true),
                (lock_key("repository", name), false),
            ],
            Self::Blob(digest) => vec![(lock_key("blob", digest), false)],
            Self::Uploads(owner) => vec![(lock_key("uploads", owner), false)],
            Self::Keys => vec![(lock_key("keys", ""), false)],
            Self::Revocations => vec![(lock_key("revocations", ""), false)],
        }
    }
}

/// An advisory lock key: the first 8 bytes of SHA-256 over `kind` and
/// `name`. Two names sharing a key only wait on each other needlessly.
fn lock_key(kind: &str, name: &str) -> i64 {
    let hash = Sha256::new()
        .chain_update(b"berth:")
        .chain_update(kind.as_bytes())
        .chain_update(b":")
        .chain_update(name.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(first)
}

/// The order in which a process's SQLite writers take the database's one
/// write lock: a fair (FIFO) queue of one, held by a write transaction
/// ([`Db::begin_write`]) until it ends.
#[derive(Debug, Clone)]
pub struct WriterQueue(std::sync::Arc<tokio::sync::Semaphore>);

impl Default for WriterQueue {
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(1)))
    }
}

/// An open transaction; dropped without [`Tx::commit`], it rolls back.
pub enum Tx {
    /// On SQLite, with its turn in the writer queue when it writes (given
    /// back after the transaction ends: the fields drop in this order).
    Sqlite(
        Transaction<'static, Sqlite>,
        Option<tokio::sync::OwnedSemaphorePermit>,
    ),
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx, _turn) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
    }

    /// Which engine this runs on.
    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(..) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }

    /// Takes `lock` until the transaction ends (nothing on SQLite, whose
    /// writer holds every lock). Take a lock of a lower rank than one held
    /// only at [`Db::begin_write`].
    pub async fn lock(&mut self, lock: Lock<'_>) -> Result<(), sqlx::Error> {
        self.lock_all(&[lock]).await
    }

    async fn lock_all(&mut self, locks: &[Lock<'_>]) -> Result<(), sqlx::Error> {
        if self.engine() == Engine::Sqlite || locks.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<(u8, i64, bool)> = locks
            .iter()
            .flat_map(|lock| {
                let rank = lock.rank();
                lock.keys()
                    .into_iter()
                    .map(move |(key, shared)| (rank, key, shared))
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        // One round trip; PostgreSQL evaluates the select list in order.
        let calls = keys
            .iter()
            .enumerate()
            .map(|(i, (_, _, shared))| {
                let f = if *shared {
                    "pg_advisory_xact_lock_shared"
                } else {
                    "pg_advisory_xact_lock"
                };
                format!("{f}(${})", i + 1)
            })
            .collect::<Vec<_>>()
            .join(", ");
        // Safe: the dynamic part is only fixed function names and numbered placeholders.
        let mut q = query(sqlx::AssertSqlSafe(format!("SELECT {calls}")));
        for (_, key, _) in &keys {
            q = q.bind(*key);
        }
        q.execute(self).await.map(|_| ())
    }

    /// Makes the next id `table` hands out larger than every id it holds
    /// and than `at_least`, after rows were inserted with their ids given
    /// (`meta/transfer.rs`). PostgreSQL's identity sequences do not move
    /// for given ids; SQLite's `INTEGER PRIMARY KEY` continues after the
    /// largest id by itself, and an `AUTOINCREMENT` table (revocations)
    /// after the largest it ever handed out, which `at_least` raises.
    /// `table` is one of the schema's table names, never outside input.
    pub async fn continue_identity(
        &mut self,
        table: &'static str,
        at_least: i64,
    ) -> Result<(), sqlx::Error> {
        match self.engine() {
            Engine::Postgres => {
                // Safe: `table` is a fixed name of the schema.
                query(sqlx::AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     GREATEST(COALESCE((SELECT max(id) FROM {table}), 0), $1) + 1, false)"
                )))
                .bind(at_least)
                .execute(self)
                .await?;
            }
            // Only an AUTOINCREMENT table has a row in `sqlite_sequence`,
            // and only once a row was inserted: a target whose source pruned
            // every revocation record has none yet.
            Engine::Sqlite if at_least > 0 => {
                query(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT $1, 0 \
                     WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = $1)",
                )
                .bind(table)
                .execute(&mut *self)
                .await?;
                query("UPDATE sqlite_sequence SET seq = max(seq, $1) WHERE name = $2")
                    .bind(at_least)
                    .bind(table)
                    .execute(self)
                    .await?;
            }
            Engine::Sqlite => {}
        }
        Ok(())
    }

    /// Tells the other nodes, at commit, that `repository` changed (on
    /// PostgreSQL; nothing on SQLite).
    pub async fn notify_changed(&mut self, repository: &str) -> Result<(), sqlx::Error> {
        if self.engine() == Engine::Sqlite {
            return Ok(());
        }
        query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(repository)
            .execute(self)
            .await
            .map(|_| ())
    }
}

/// A value bound to a placeholder: the types the schema uses.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    /// `BIGINT` (SQLite `INTEGER`).
    Int(Option<i64>),
    /// `BOOLEAN`.
    Bool(bool),
    /// `TEXT`.
    Text(Option<Cow<'a, str>>),
    /// `BYTEA` (SQLite `BLOB`).
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(Some(Cow::Borrowed(v)))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(Some(Cow::Borrowed(v)))
    }
}
impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Self::Text(Some(Cow::Owned(v)))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Self::Text(v.map(Cow::Borrowed))
    }
}
impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Self::Text(v.map(Cow::Owned))
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Bytes(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}

/// A value both engines decode from a column.
pub trait Decodable:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}
impl<T> Decodable for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A value both engines build from a row (tuples of [`Decodable`]s).
pub trait FromRows:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> FromRows for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A row of either engine.
pub enum Row {
    /// From SQLite.
    Sqlite(SqliteRow),
    /// From PostgreSQL.
    Postgres(PgRow),
}

impl Row {
    /// The value of column `name`.
    pub fn try_get<T: Decodable>(&self, name: &str) -> Result<T, sqlx::Error> {
        match self {
            Self::Sqlite(row) => row.try_get(name),
            Self::Postgres(row) => row.try_get(name),
        }
    }

    fn decode<O: FromRows>(&self) -> Result<O, sqlx::Error> {
        match self {
            Self::Sqlite(row) => O::from_row(row),
            Self::Postgres(row) => O::from_row(row),
        }
    }
}

/// Where a query runs: the pool (a connection of it, for this one query) or
/// an open transaction.
pub enum Target<'c> {
    /// A SQLite pool.
    SqlitePool(&'c SqlitePool),
    /// A SQLite connection inside a transaction.
    Sqlite(&'c mut SqliteConnection),
    /// A PostgreSQL pool.
    PostgresPool(&'c PgPool),
    /// A PostgreSQL connection inside a transaction.
    Postgres(&'c mut PgConnection),
}

/// What a query can run on: `&Db` or `&mut Tx`.
pub trait Executor<'c>: Send {
    /// The engine's executor.
    fn target(self) -> Target<'c>;
}

impl<'c> Executor<'c> for &'c Db {
    fn target(self) -> Target<'c> {
        match self {
            Db::Sqlite(pool, _) => Target::SqlitePool(pool),
            Db::Postgres(pool) => Target::PostgresPool(pool),
        }
    }
}

impl<'c> Executor<'c> for &'c mut Tx {
    fn target(self) -> Target<'c> {
        match self {
            Tx::Sqlite(tx, _) => Target::Sqlite(&mut *tx),
            Tx::Postgres(tx) => Target::Postgres(&mut *tx),
        }
    }
}

/// A statement and its arguments, written once for both engines.
#[must_use = "a query does nothing until it runs"]
pub struct Query<'a> {
    sql: SqlStr,
    args: Vec<Arg<'a>>,
}

/// A query whose rows are each read as an `O`: by a `FromRow` (tuples
/// included, [`query_as`]) or as their first column ([`query_scalar`]).
#[must_use = "a query does nothing until it runs"]
pub struct QueryAs<'a, O> {
    inner: Query<'a>,
    decode: fn(&Row) -> Result<O, sqlx::Error>,
}

/// A query whose rows are read as their first column.
pub type QueryScalar<'a, O> = QueryAs<'a, O>;

/// A statement (`$1`, `$2`, ... for its arguments).
pub fn query<'a>(sql: impl SqlSafeStr) -> Query<'a> {
    Query {
        sql: sql.into_sql_str(),
        args: Vec::new(),
    }
}

/// A statement whose rows are read as `O`.
pub fn query_as<'a, O: FromRows>(sql: impl SqlSafeStr) -> QueryAs<'a, O> {
    QueryAs {
        inner: query(sql),
        decode: Row::decode::<O>,
    }
}

/// A statement whose rows are read as their first column, of type `O`.
pub fn query_scalar<'a, O: Decodable + Send + Unpin>(sql: impl SqlSafeStr) -> QueryScalar<'a, O> {
    QueryAs {
        inner: query(sql),
        decode: first_column::<O>,
    }
}

/// Binds `args` to a statement of engine `$db`.
macro_rules! bound {
    ($db:ty, $sql:expr, $args:expr) => {{
        let mut q = sqlx::query::<$db>($sql);
        for arg in $args {
            q = match arg {
                Arg::Int(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Text(v) => q.bind(v.as_deref()),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }};
}

/// Runs `$method` of a bound statement on the target, mapping rows with `$row`.
macro_rules! run {
    ($self:expr, $on:expr, $method:ident, $map:expr) => {{
        let Query { sql, args } = $self;
        match $on.target() {
            Target::SqlitePool(pool) => bound!(Sqlite, sql, args).$method(pool).await.map($map.0),
            Target::Sqlite(conn) => bound!(Sqlite, sql, args).$method(conn).await.map($map.0),
            Target::PostgresPool(pool) => {
                bound!(Postgres, sql, args).$method(pool).await.map($map.1)
            }
            Target::Postgres(conn) => bound!(Postgres, sql, args).$method(conn).await.map($map.1),
        }
    }};
}

impl<'a> Query<'a> {
    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute<'c>(self, on: impl Executor<'c>) -> Result<u64, sqlx::Error> {
        run!(
            self,
            on,
            execute,
            (
                |d: sqlx::sqlite::SqliteQueryResult| d.rows_affected(),
                |d: sqlx::postgres::PgQueryResult| d.rows_affected()
            )
        )
    }

    /// Every row.
    pub async fn fetch_all<'c>(self, on: impl Executor<'c>) -> Result<Vec<Row>, sqlx::Error> {
        run!(
            self,
            on,
            fetch_all,
            (
                |rows: Vec<SqliteRow>| rows.into_iter().map(Row::Sqlite).collect::<Vec<_>>(),
                |rows: Vec<PgRow>| rows.into_iter().map(Row::Postgres).collect::<Vec<_>>()
            )
        )
    }

    /// The first row, if any.
    pub async fn fetch_optional<'c>(
        self,
        on: impl Executor<'c>,
    ) -> Result<Option<Row>, sqlx::Error> {
        run!(
            self,
            on,
            fetch_optional,
            (
                |row: Option<SqliteRow>| row.map(Row::Sqlite),
                |row: Option<PgRow>| row.map(Row::Postgres)
            )
        )
    }

    /// The first row; an error when there is none.
    pub async fn fetch_one<'c>(self, on: impl Executor<'c>) -> Result<Row, sqlx::Error> {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

impl<'a, O: Send + Unpin> QueryAs<'a, O> {
    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.inner = self.inner.bind(value);
        self
    }

    /// Every row.
    pub async fn fetch_all<'c>(self, on: impl Executor<'c>) -> Result<Vec<O>, sqlx::Error> {
        let decode = self.decode;
        self.inner.fetch_all(on).await?.iter().map(decode).collect()
    }

    /// The first row, if any.
    pub async fn fetch_optional<'c>(self, on: impl Executor<'c>) -> Result<Option<O>, sqlx::Error> {
        let decode = self.decode;
        self.inner
            .fetch_optional(on)
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// The first row; an error when there is none.
    pub async fn fetch_one<'c>(self, on: impl Executor<'c>) -> Result<O, sqlx::Error> {
        let decode = self.decode;
        decode(&self.inner.fetch_one(on).await?)
    }
}

fn first_column<O: Decodable>(row: &Row) -> Result<O, sqlx::Error> {
    match row {
        Row::Sqlite(row) => row.try_get(0),
        Row::Postgres(row) => row.try_get(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_taken_in_one_order() {
        let repo = Lock::Repository {
            name: "a/b",
            namespace: "a",
        };
        assert!(Lock::Identity.rank() < Lock::Namespace("a").rank());
        assert!(Lock::Namespace("a").rank() < repo.rank());
        assert!(repo.rank() < Lock::Revocations.rank());
        // A repository's writer holds its namespace shared, under the key the
        // namespace's own lock takes exclusively.
        assert_eq!(repo.keys()[0], (lock_key("namespace", "a"), true));
        assert_eq!(
            Lock::Namespace("a").keys()[0],
            (lock_key("namespace", "a"), false)
        );
        assert_ne!(lock_key("namespace", "a"), lock_key("repository", "a"));
    }
}
