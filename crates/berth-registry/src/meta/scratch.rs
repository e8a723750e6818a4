//! Throwaway PostgreSQL databases for test suites: one per test, created on
//! the cluster `BERTH_TEST_DATABASE_URL` names (`.ci/postgres` starts one)
//! and dropped when the test is done. Without the variable the suites run on
//! SQLite.
//!
//! The suites of several crates use it, so it lives here rather than in each
//! suite's support module.

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::MetaError;
use super::url::{DatabaseUrl, UrlParts};

/// The variable that switches the test suites to PostgreSQL: the URL of a
/// cluster on which they may create and drop databases.
pub const TEST_DATABASE_VAR: &str = "BERTH_TEST_DATABASE_URL";

/// A database of its own for one test, dropped with this value.
#[derive(Debug)]
pub struct ScratchDatabase {
    cluster: PgConnectOptions,
    name: String,
    url: DatabaseUrl,
}

impl ScratchDatabase {
    /// A new database on the cluster of [`TEST_DATABASE_VAR`]; `None` when
    /// the variable is not set (the tests run on SQLite).
    pub async fn from_env() -> Result<Option<Self>, MetaError> {
        match std::env::var(TEST_DATABASE_VAR) {
            Ok(url) if !url.is_empty() => Ok(Some(Self::create(&url).await?)),
            _ => Ok(None),
        }
    }

    /// Creates `test_<random>` on the cluster at `cluster_url`.
    pub async fn create(cluster_url: &str) -> Result<Self, MetaError> {
        let cluster = PgConnectOptions::from_str(cluster_url)?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| MetaError::Corrupt(e.to_string()))?;
        let name = format!("test_{}", hex::encode(random));
        let mut admin = PgConnection::connect_with(&cluster).await?;
        // Safe: the name is `test_` and hex digits.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let url = replace_database(cluster_url, &name)
            .parse::<DatabaseUrl>()
            .map_err(|e| MetaError::Corrupt(e.to_string()))?;
        Ok(Self { cluster, name, url })
    }

    /// The URL of the database.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }
}

/// `url` with its database (the path) replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let parts = UrlParts::of(url);
    let (base, query) = (parts.base, parts.query);
    let mut out = format!("{}/{name}", &base[..parts.authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop runs outside any async context it could use: a thread of its
        // own with a runtime of its own, joined, so the database is gone when
        // the test ends. `WITH (FORCE)` ends the connections a server of the
        // test may still hold.
        let cluster = self.cluster.clone();
        let name = std::mem::take(&mut self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect_with(&cluster)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .map_err(|e| e.to_string())?;
                admin.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot drop a test database: {e}"),
            Err(_) => eprintln!("cannot drop a test database: its thread panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        for (url, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/test_x",
            ),
            (
                "postgres://u:p@h/db?sslmode=disable",
                "postgres://u:p@h/test_x?sslmode=disable",
            ),
            ("postgres://h:1", "postgres://h:1/test_x"),
        ] {
            assert_eq!(replace_database(url, "test_x"), expected);
        }
    }
}
