//! The web interface's reads (`ui/`): repositories with their tag counts
//! and last push, and a repository's tags newest first with their sizes.
//! One SQL text per query for both engines, through `meta/db.rs`.
//!
//! Every listing is a range of an index walked in order and cut at the
//! page size, so a page costs the same at 10 and at 10,000 tags or
//! repositories: repositories by name (`repositories.name`), tags by push
//! time (`tags_by_push`, keyset pagination on `(updated_at, name)`).

use super::db::{Db, query};
use super::{CatalogFilter, MetaError};

/// A repository as the explore page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySummary {
    /// Its name.
    pub name: String,
    /// Whether anyone may pull it.
    pub public: bool,
    /// How many tags it has.
    pub tags: i64,
    /// Unix seconds of its newest tag push, if it has a tag.
    pub last_push: Option<i64>,
}

/// A repository as its page heads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositoryOverview {
    /// Its row id (for [`tags`]).
    pub id: i64,
    /// Whether anyone may pull it.
    pub public: bool,
    /// How many tags it has.
    pub tags: i64,
    /// How many manifests it holds, tagged or not.
    pub manifests: i64,
}

/// A tag as the repository page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSummary {
    /// The tag.
    pub name: String,
    /// The digest of the manifest it points at.
    pub digest: String,
    /// That manifest's media type.
    pub media_type: String,
    /// Unix seconds it was last pushed (set or moved).
    pub pushed_at: i64,
    /// Unix seconds its manifest was last pulled, as noted (at most once a
    /// minute per manifest: `gc/pulls.rs`).
    pub pulled_at: Option<i64>,
    /// Bytes of the blobs the manifest names (config and layers) and, for
    /// an index, of the blobs its platforms' manifests name.
    pub size: i64,
    /// The manifest's bytes when it is an index (its platforms are read
    /// from them); `None` for an image or artifact manifest.
    pub index: Option<Vec<u8>>,
}

/// The media types whose `manifests` list platforms.
const INDEX_TYPES: &str = "('application/vnd.oci.image.index.v1+json', \
                           'application/vnd.docker.distribution.manifest.list.v2+json')";

/// Repositories `filter` admits, by name after `after`, at most `limit`;
/// with `search`, only names containing it (lower-cased; a search with a
/// character no repository name has finds none).
pub async fn repositories(
    db: &Db,
    filter: &CatalogFilter,
    search: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<RepositorySummary>, MetaError> {
    let pattern = match search.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(search) => match like_pattern(search) {
            Some(pattern) => Some(pattern),
            None => return Ok(Vec::new()),
        },
    };
    let mut sql = String::from(
        "SELECT r.name, r.public,
                (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id) AS tag_count,
                (SELECT MAX(t.updated_at) FROM tags t WHERE t.repository_id = r.id) AS last_push
           FROM repositories r
          WHERE r.name > $1 AND ($3 = '' OR r.name LIKE $3 ESCAPE '\\')",
    );
    if let CatalogFilter::Visible { namespaces } = filter {
        if namespaces.is_empty() {
            sql.push_str(" AND r.public");
        } else {
            let placeholders = (0..namespaces.len())
                .map(|i| format!("${}", i + 4))
                .collect::<Vec<_>>()
                .join(", ");
            sql.push_str(&format!(
                " AND (r.public OR r.namespace IN ({placeholders}))"
            ));
        }
    }
    sql.push_str(" ORDER BY r.name LIMIT $2");
    // Safe: the dynamic part is only fixed text and numbered placeholders.
    let mut q = query(sqlx::AssertSqlSafe(sql))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .bind(pattern.unwrap_or_default());
    if let CatalogFilter::Visible { namespaces } = filter {
        for namespace in namespaces {
            q = q.bind(namespace.as_str());
        }
    }
    let rows = q.fetch_all(db).await?;
    rows.iter()
        .map(|row| {
            Ok(RepositorySummary {
                name: row.try_get("name")?,
                public: row.try_get("public")?,
                tags: row.try_get("tag_count")?,
                last_push: row.try_get("last_push")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(MetaError::from)
}

/// A `LIKE` pattern for names containing `search`: `%search%` with `_`
/// (the only wildcard a repository name can hold) escaped; `None` when
/// `search` has a character no repository name has.
fn like_pattern(search: &str) -> Option<String> {
    let search = search.to_ascii_lowercase();
    let mut pattern = String::with_capacity(search.len() + 4);
    pattern.push('%');
    for c in search.chars() {
        match c {
            'a'..='z' | '0'..='9' | '.' | '-' | '/' => pattern.push(c),
            '_' => pattern.push_str("\\_"),
            _ => return None,
        }
    }
    pattern.push('%');
    Some(pattern)
}

/// The repository `name`, with its counts; `None` when it does not exist.
pub async fn repository(db: &Db, name: &str) -> Result<Option<RepositoryOverview>, MetaError> {
    let row = query(
        "SELECT r.id, r.public,
                (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id) AS tag_count,
                (SELECT COUNT(*) FROM manifests m WHERE m.repository_id = r.id) AS manifest_count
           FROM repositories r WHERE r.name = $1",
    )
    .bind(name)
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(RepositoryOverview {
        id: row.try_get("id")?,
        public: row.try_get("public")?,
        tags: row.try_get("tag_count")?,
        manifests: row.try_get("manifest_count")?,
    }))
}

/// Where a page of tags starts: after the tag pushed at `pushed_at` named
/// `name`, in the order newest push first (then name, descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCursor {
    /// The push time of the last tag of the previous page.
    pub pushed_at: i64,
    /// Its name.
    pub name: String,
}

/// The repository's tags, newest push first, after `cursor`, at most `limit`.
pub async fn tags(
    db: &Db,
    repository_id: i64,
    cursor: Option<&TagCursor>,
    limit: u32,
) -> Result<Vec<TagSummary>, MetaError> {
    let sql = format!(
        "SELECT t.name, t.manifest_digest, m.media_type, t.updated_at, m.pulled_at,
                CASE WHEN m.media_type IN {INDEX_TYPES} THEN m.content ELSE NULL END AS index_content,
                (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT)
                   FROM manifest_references r JOIN blobs b ON b.digest = r.child_digest
                  WHERE r.repository_id = t.repository_id
                    AND r.manifest_digest = t.manifest_digest AND NOT r.is_manifest)
              + (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT)
                   FROM manifest_references c
                   JOIN manifest_references r
                     ON r.repository_id = c.repository_id AND r.manifest_digest = c.child_digest
                    AND NOT r.is_manifest
                   JOIN blobs b ON b.digest = r.child_digest
                  WHERE c.repository_id = t.repository_id
                    AND c.manifest_digest = t.manifest_digest AND c.is_manifest) AS size
           FROM tags t
           JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
          WHERE t.repository_id = $1 {}
          ORDER BY t.updated_at DESC, t.name DESC
          LIMIT $2",
        if cursor.is_some() {
            "AND (t.updated_at < $3 OR (t.updated_at = $3 AND t.name < $4))"
        } else {
            ""
        }
    );
    let mut q = query(sqlx::AssertSqlSafe(sql))
        .bind(repository_id)
        .bind(i64::from(limit));
    if let Some(cursor) = cursor {
        q = q.bind(cursor.pushed_at).bind(cursor.name.as_str());
    }
    let rows = q.fetch_all(db).await?;
    rows.iter()
        .map(|row| {
            Ok(TagSummary {
                name: row.try_get("name")?,
                digest: row.try_get("manifest_digest")?,
                media_type: row.try_get("media_type")?,
                pushed_at: row.try_get("updated_at")?,
                pulled_at: row.try_get("pulled_at")?,
                size: row.try_get("size")?,
                index: row.try_get("index_content")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(MetaError::from)
}

/// The tags pointing at `digest` in the repository, by name (at most 20).
pub async fn tags_of(db: &Db, repository_id: i64, digest: &str) -> Result<Vec<String>, MetaError> {
    let rows = query(
        "SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2
          ORDER BY name LIMIT 20",
    )
    .bind(repository_id)
    .bind(digest)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| row.try_get("name"))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(MetaError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_become_like_patterns_with_underscores_escaped() {
        assert_eq!(like_pattern("App").as_deref(), Some("%app%"));
        assert_eq!(like_pattern("my_app").as_deref(), Some("%my\\_app%"));
        assert_eq!(
            like_pattern("acme/api-v2.1").as_deref(),
            Some("%acme/api-v2.1%")
        );
        assert_eq!(like_pattern("50%"), None);
        assert_eq!(like_pattern("a b"), None);
        assert_eq!(like_pattern("x'--"), None);
    }

    proptest::proptest! {
        /// A pattern matches names containing the search, never more: its
        /// only unescaped wildcards are the `%` at either end.
        #[test]
        fn patterns_have_no_wildcard_but_their_ends(search in "\\PC{0,30}") {
            if let Some(pattern) = like_pattern(&search) {
                let inner = &pattern[1..pattern.len() - 1];
                proptest::prop_assert!(pattern.starts_with('%') && pattern.ends_with('%'));
                proptest::prop_assert!(!inner.contains('%'));
                let bytes = inner.as_bytes();
                for (i, b) in bytes.iter().enumerate() {
                    if *b == b'_' {
                        proptest::prop_assert!(i > 0 && bytes[i - 1] == b'\\');
                    }
                }
            }
        }
    }
}
