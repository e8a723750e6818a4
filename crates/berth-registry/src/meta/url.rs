//! `DatabaseUrl`: where the metadata lives when it is not the embedded SQLite
//! file: a PostgreSQL connection URL (`postgres://user:password@host:port/db`
//! or `postgresql://...`, with libpq's query parameters such as `sslmode`).
//!
//! The URL may carry a password: it is shown only with the password replaced
//! by `***` (`Display` and `Debug` alike), and handed to the driver by
//! [`DatabaseUrl::expose`].

use std::fmt;
use std::str::FromStr;

/// A PostgreSQL connection URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

/// Why a database URL was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{shown}` is not a PostgreSQL URL: give postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE \
     (leave the setting out for the embedded SQLite database under the data directory)"
)]
pub struct BadDatabaseUrl {
    /// The value, its password hidden.
    shown: String,
}

impl FromStr for DatabaseUrl {
    type Err = BadDatabaseUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| s.len() > scheme.len() && s.starts_with(scheme));
        if !ok {
            return Err(BadDatabaseUrl { shown: redact(s) });
        }
        Ok(Self(s.to_owned()))
    }
}

impl DatabaseUrl {
    /// The URL itself, password included: for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL carries a password (its own text differs from what
    /// is shown).
    pub fn has_password(&self) -> bool {
        redact(&self.0) != self.0
    }
}

impl<'de> serde::Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// A URL cut where its parts start: `scheme://authority/path?query`.
pub(super) struct UrlParts<'a> {
    /// Everything before `?`.
    pub base: &'a str,
    /// Where the authority (user info and host) starts in `base`.
    pub authority_start: usize,
    /// Where it ends: the path's `/`, or the end of `base`.
    pub authority_end: usize,
    /// What follows `?`, if anything.
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    pub(super) fn of(url: &'a str) -> Self {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let authority_start = base.find("://").map_or(0, |i| i + 3);
        let authority_end = base[authority_start..]
            .find('/')
            .map_or(base.len(), |i| authority_start + i);
        Self {
            base,
            authority_start,
            authority_end,
            query,
        }
    }
}

/// `url` with the password of its user info (and any `password=` query
/// parameter) replaced by `***`.
fn redact(url: &str) -> String {
    let UrlParts {
        base,
        authority_start,
        authority_end,
        query,
    } = UrlParts::of(url);
    let authority = &base[authority_start..authority_end];
    let mut out = base[..authority_start].to_owned();
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    out.push_str(&base[authority_end..]);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        for (url, shown) in [
            (
                "postgres://berth:s3cret@db:5432/berth",
                "postgres://berth:***@db:5432/berth",
            ),
            ("postgresql://berth@db/berth", "postgresql://berth@db/berth"),
            (
                "postgres://db/berth?user=berth&password=s3cret&sslmode=require",
                "postgres://db/berth?user=berth&password=***&sslmode=require",
            ),
            ("postgres://a:b:c@h", "postgres://a:***@h"),
        ] {
            let parsed: DatabaseUrl = url.parse().unwrap();
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(format!("{parsed:?}"), format!("DatabaseUrl({shown})"));
            assert_eq!(parsed.expose(), url);
            assert_eq!(parsed.has_password(), url != shown);
        }
    }

    #[test]
    fn other_schemes_are_refused_without_showing_the_password() {
        for bad in [
            "mysql://u:pw@h/db",
            "postgres://",
            "/var/lib/berth/berth.db",
            "",
        ] {
            let e = bad.parse::<DatabaseUrl>().unwrap_err().to_string();
            assert!(!e.contains("pw@"), "{e}");
            assert!(e.contains("postgres://USER"), "{e}");
        }
    }
}
