//! Pull-through cache namespaces added through the admin API (`proxies`):
//! stored as the operator gave them (a `[[proxy]]` table's keys), read by
//! every node's refresh (`proxy::run_refresh`). What they mean is `proxy/`.

use std::path::PathBuf;

use super::MetaError;
use super::db::{Db, query, query_as};
use crate::proxy::ProxyText;

/// Every stored namespace, by name.
pub async fn list(db: &Db) -> Result<Vec<ProxyText>, MetaError> {
    type Row = (String, String, String, Option<String>, Option<String>, i64);
    let rows: Vec<Row> = query_as(
        "SELECT name, url, access, username, password_file, tag_ttl_secs FROM proxies ORDER BY name",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, url, access, username, password_file, ttl)| ProxyText {
                name: Some(name),
                url: Some(url),
                access: Some(access),
                username,
                password: None,
                password_file: password_file.map(PathBuf::from),
                tag_ttl_secs: Some(u64::try_from(ttl).unwrap_or(0)),
            },
        )
        .collect())
}

/// Stores a namespace, checked by the caller; `false` when one of that name
/// is stored already.
pub async fn insert(
    db: &Db,
    proxy: &crate::proxy::ProxySettings,
    password_file: Option<&str>,
    now: i64,
) -> Result<bool, MetaError> {
    let _turn = db.write_turn().await?;
    let inserted = query(
        "INSERT INTO proxies (name, url, access, username, password_file, tag_ttl_secs, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&proxy.name)
    .bind(proxy.origin())
    .bind(proxy.access.as_str())
    .bind(proxy.credential.as_ref().map(|(user, _)| user.as_str()))
    .bind(password_file)
    .bind(i64::try_from(proxy.tag_ttl.as_secs()).unwrap_or(i64::MAX))
    .bind(now)
    .execute(db)
    .await?;
    Ok(inserted > 0)
}

/// Removes a stored namespace; `false` when none has that name.
pub async fn delete(db: &Db, name: &str) -> Result<bool, MetaError> {
    let _turn = db.write_turn().await?;
    let deleted = query("DELETE FROM proxies WHERE name = $1")
        .bind(name)
        .execute(db)
        .await?;
    Ok(deleted > 0)
}
