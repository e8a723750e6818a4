//! The token signing keys in a database shared by several nodes
//! (PostgreSQL): the files of the keys directory as rows (`key_files`), and a
//! generation every change moves (`key_generation`). What the files mean is
//! `auth/keys.rs`; how nodes keep theirs in step is `auth/key_sync.rs`.
//!
//! A writer holds [`Lock::Keys`] from its read to its commit, so two nodes
//! rotating at once take turns, the second starting from the first's keys.

use super::MetaError;
use super::db::{Db, Lock, Tx, query, query_as, query_scalar};

/// The files of the keys directory: (path in it, content).
pub type KeyFiles = Vec<(String, Vec<u8>)>;

/// Begins a change of the keys: the keys lock held until commit.
pub async fn begin(db: &Db) -> Result<Tx, MetaError> {
    Ok(db.begin_write(&[Lock::Keys]).await?)
}

/// The stored files and their generation, read in one statement (one
/// snapshot); no files on a database no node has written keys to yet.
pub async fn read<'c>(on: impl super::db::Executor<'c>) -> Result<(i64, KeyFiles), MetaError> {
    let rows: Vec<(i64, Option<String>, Option<Vec<u8>>)> = query_as(
        "SELECT g.generation, f.name, f.content
           FROM key_generation g LEFT JOIN key_files f ON TRUE
          WHERE g.id = 1
          ORDER BY f.name",
    )
    .fetch_all(on)
    .await?;
    let generation = rows.first().map_or(0, |(g, _, _)| *g);
    let files = rows
        .into_iter()
        .filter_map(|(_, name, content)| Some((name?, content?)))
        .collect();
    Ok((generation, files))
}

/// The generation of the stored keys: one indexed read, polled by every node.
pub async fn generation(db: &Db) -> Result<i64, MetaError> {
    Ok(
        query_scalar("SELECT generation FROM key_generation WHERE id = 1")
            .fetch_one(db)
            .await?,
    )
}

/// Replaces the stored files with `files` and moves the generation; returns
/// the new generation. Inside a transaction from [`begin`].
pub async fn replace(tx: &mut Tx, files: &KeyFiles) -> Result<i64, MetaError> {
    query("DELETE FROM key_files").execute(&mut *tx).await?;
    for (name, content) in files {
        query("INSERT INTO key_files (name, content) VALUES ($1, $2)")
            .bind(name)
            .bind(content)
            .execute(&mut *tx)
            .await?;
    }
    Ok(query_scalar(
        "UPDATE key_generation SET generation = generation + 1 WHERE id = 1 RETURNING generation",
    )
    .fetch_one(&mut *tx)
    .await?)
}
