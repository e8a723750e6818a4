//! A webhook endpoint: where events go, which ones, how they are signed,
//! and how hard berth tries.
//!
//! In the TOML file (`[[webhook]]`, one table per endpoint):
//!
//! ```toml
//! [[webhook]]
//! name = "ci"                                  # unique; names the endpoint in the API
//! url = "https://ci.example/hooks/berth"
//! repositories = ["acme/**"]                   # patterns as PATs have them; default all
//! actions = ["push", "delete"]                 # default push, delete, mount
//! secret_file = "/etc/berth/ci-webhook.secret" # or secret = "..."; at least 16 bytes
//! pull_sample = 0.1                            # share of pulls told, with "pull" in actions
//! timeout_secs = 10
//! retries = 10                                 # attempts after the first, then failed
//! retry_initial_secs = 1                       # doubling, with jitter,
//! retry_max_secs = 300                         # up to this
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Action;
use crate::identity::patterns::{repo_pattern_matches, validate_repo_pattern};

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// The most endpoints a registry may have.
pub const MAX_ENDPOINTS: usize = 64;

/// An endpoint as the TOML file writes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointText {
    /// Unique name.
    pub name: Option<String>,
    /// Where events are `POST`ed.
    pub url: Option<String>,
    /// Repository patterns; empty or absent: every repository.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// Actions subscribed to; absent: push, delete, mount.
    pub actions: Option<Vec<String>>,
    /// The signing secret, inline.
    pub secret: Option<String>,
    /// A file holding the signing secret (surrounding whitespace ignored).
    pub secret_file: Option<PathBuf>,
    /// The share of pulls told (0 to 1).
    pub pull_sample: Option<f64>,
    /// Seconds a delivery may take.
    pub timeout_secs: Option<f64>,
    /// Attempts after the first before a delivery is marked failed.
    pub retries: Option<u32>,
    /// The first retry's delay, in seconds.
    pub retry_initial_secs: Option<f64>,
    /// The longest delay between attempts, in seconds.
    pub retry_max_secs: Option<f64>,
}

/// A signing secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The secret's bytes, for signing.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An endpoint, checked.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Unique name (letters, digits, `-`, `_`, `.`; at most 64).
    pub name: String,
    /// Where events are `POST`ed (http or https).
    pub url: url::Url,
    /// Repository patterns; empty: every repository.
    pub repositories: Vec<String>,
    /// Actions subscribed to.
    pub actions: Vec<Action>,
    /// The signing secret.
    pub secret: Secret,
    /// The share of pulls told.
    pub pull_sample: f64,
    /// How long one delivery may take.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// The first retry's delay.
    pub retry_initial: Duration,
    /// The longest delay.
    pub retry_max: Duration,
}

impl Endpoint {
    /// Whether an event of `action` on `repository` goes here.
    pub fn wants(&self, repository: &str, action: Action) -> bool {
        self.actions.contains(&action)
            && (action != Action::Pull || self.pull_sample > 0.0)
            && (self.repositories.is_empty()
                || self
                    .repositories
                    .iter()
                    .any(|p| repo_pattern_matches(p, repository)))
    }

    /// The delay before attempt `attempt` (1 = the first retry): the initial
    /// delay doubled per attempt, at most the maximum, then between half and
    /// all of it at random (so that many deliveries failing together do not
    /// come back together).
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let doubled = self
            .retry_initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(30));
        let capped = doubled.min(self.retry_max);
        capped.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
    }

    /// Checks an endpoint of the TOML file; the error names the endpoint and
    /// the key.
    pub fn parse(text: &EndpointText) -> Result<Endpoint, String> {
        let name = text
            .name
            .clone()
            .ok_or("a [[webhook]] needs a name, e.g. name = \"ci\"")?;
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid_name {
            return Err(format!(
                "webhook name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        let at = |key: &str, e: &dyn std::fmt::Display| format!("webhook {name:?}: {key}: {e}");
        let url_text = text
            .url
            .as_deref()
            .ok_or_else(|| at("url", &"missing; give where events are POSTed"))?;
        let url = url::Url::parse(url_text).map_err(|e| at("url", &e))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(at("url", &"give an http:// or https:// URL with a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(at(
                "url",
                &"no credentials in the URL: receivers check the signature header instead",
            ));
        }
        for pattern in &text.repositories {
            validate_repo_pattern(pattern).map_err(|e| at("repositories", &e))?;
        }
        let actions = match &text.actions {
            None => vec![Action::Push, Action::Delete, Action::Mount],
            Some(list) if list.is_empty() => {
                return Err(at(
                    "actions",
                    &"empty; name at least one of push, delete, mount, pull",
                ));
            }
            Some(list) => {
                let mut actions = Vec::new();
                for item in list {
                    let action = Action::parse(item).ok_or_else(|| {
                        at(
                            "actions",
                            &format!("{item:?} is not one of push, delete, mount, pull"),
                        )
                    })?;
                    if !actions.contains(&action) {
                        actions.push(action);
                    }
                }
                actions
            }
        };
        let secret = match (&text.secret, &text.secret_file) {
            (Some(_), Some(_)) => {
                return Err(at("secret", &"give secret or secret_file, not both"));
            }
            (Some(secret), None) => secret.trim().as_bytes().to_vec(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| at("secret_file", &format!("{}: {e}", path.display())))?
                .trim()
                .as_bytes()
                .to_vec(),
            (None, None) => {
                return Err(at(
                    "secret",
                    &"missing: give secret_file (or secret), which receivers check the signature with",
                ));
            }
        };
        if secret.len() < MIN_SECRET_BYTES {
            return Err(at(
                "secret",
                &format!(
                    "at least {MIN_SECRET_BYTES} bytes; e.g. `openssl rand -hex 32` into the file"
                ),
            ));
        }
        if text.pull_sample.is_some() && !actions.contains(&Action::Pull) {
            return Err(at(
                "pull_sample",
                &"set, but actions do not name \"pull\": add it, or remove pull_sample",
            ));
        }
        let pull_sample = text
            .pull_sample
            .unwrap_or(if actions.contains(&Action::Pull) {
                1.0
            } else {
                0.0
            });
        if !(0.0..=1.0).contains(&pull_sample) {
            return Err(at("pull_sample", &"give a share between 0 and 1, e.g. 0.1"));
        }
        let seconds = |key: &str, value: Option<f64>, default: f64, least: f64| {
            let value = value.unwrap_or(default);
            if value.is_finite() && value >= least && value <= 86_400.0 {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(at(key, &format!("give {least} to 86400 seconds")))
            }
        };
        let timeout = seconds("timeout_secs", text.timeout_secs, 10.0, 0.1)?;
        let retry_initial = seconds("retry_initial_secs", text.retry_initial_secs, 1.0, 0.01)?;
        let retry_max = seconds("retry_max_secs", text.retry_max_secs, 300.0, 0.01)?;
        if retry_max < retry_initial {
            return Err(at("retry_max_secs", &"must be at least retry_initial_secs"));
        }
        let retries = text.retries.unwrap_or(10);
        if retries > 100 {
            return Err(at("retries", &"at most 100"));
        }
        Ok(Endpoint {
            name,
            url,
            repositories: text.repositories.clone(),
            actions,
            secret: Secret(secret),
            pull_sample,
            timeout,
            retries,
            retry_initial,
            retry_max,
        })
    }
}

/// Checks every endpoint of the file: each one, unique names, at most
/// [`MAX_ENDPOINTS`].
pub fn parse_all(texts: &[EndpointText]) -> Result<Vec<Endpoint>, String> {
    if texts.len() > MAX_ENDPOINTS {
        return Err(format!(
            "{} [[webhook]] tables; at most {MAX_ENDPOINTS}",
            texts.len()
        ));
    }
    let mut endpoints: Vec<Endpoint> = Vec::with_capacity(texts.len());
    for text in texts {
        let endpoint = Endpoint::parse(text)?;
        if endpoints.iter().any(|e| e.name == endpoint.name) {
            return Err(format!(
                "two [[webhook]] tables are named {:?}; names must be unique",
                endpoint.name
            ));
        }
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> EndpointText {
        EndpointText {
            name: Some("ci".to_owned()),
            url: Some("http://127.0.0.1:9/hook".to_owned()),
            secret: Some("0123456789abcdef".to_owned()),
            ..EndpointText::default()
        }
    }

    fn refused(text: &EndpointText) -> String {
        match Endpoint::parse(text) {
            Ok(e) => panic!("accepted {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_are_push_delete_mount_to_every_repository() {
        let e = Endpoint::parse(&text()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.actions, [Action::Push, Action::Delete, Action::Mount]);
        assert!(e.wants("any/thing", Action::Push));
        assert!(!e.wants("any/thing", Action::Pull));
        assert_eq!(e.timeout, Duration::from_secs(10));
        assert_eq!(e.retries, 10);
        assert_eq!(format!("{e:?}").matches("0123456789abcdef").count(), 0);
    }

    #[test]
    fn patterns_and_actions_route() {
        let mut t = text();
        t.repositories = vec!["acme/**".to_owned()];
        t.actions = Some(vec!["pull".to_owned(), "delete".to_owned()]);
        t.pull_sample = Some(0.5);
        let e = Endpoint::parse(&t).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.wants("acme/app", Action::Pull));
        assert!(e.wants("acme/a/b", Action::Delete));
        assert!(!e.wants("acme/app", Action::Push));
        assert!(!e.wants("other/app", Action::Delete));
        t.pull_sample = Some(0.0);
        let e = Endpoint::parse(&t).unwrap_or_else(|e| panic!("{e}"));
        assert!(!e.wants("acme/app", Action::Pull));
    }

    #[test]
    fn bad_settings_are_refused_naming_the_key() {
        let mut t = text();
        t.secret = Some("short".to_owned());
        assert!(refused(&t).contains("secret: at least 16 bytes"));
        let mut t = text();
        t.secret = None;
        assert!(refused(&t).contains("secret: missing"));
        let mut t = text();
        t.url = Some("ftp://h/x".to_owned());
        assert!(refused(&t).contains("url:"));
        let mut t = text();
        t.url = Some("https://user:pw@h/x".to_owned());
        assert!(refused(&t).contains("no credentials"));
        let mut t = text();
        t.actions = Some(vec!["pushh".to_owned()]);
        assert!(refused(&t).contains("\"pushh\" is not one of"));
        let mut t = text();
        t.repositories = vec![String::new()];
        assert!(refused(&t).contains("repositories:"));
        let mut t = text();
        t.name = Some("a b".to_owned());
        assert!(refused(&t).contains("webhook name"));
        let mut t = text();
        t.pull_sample = Some(0.5);
        assert!(refused(&t).contains("pull_sample: set, but actions do not name \"pull\""));
        t.actions = Some(vec!["pull".to_owned()]);
        t.pull_sample = Some(2.0);
        assert!(refused(&t).contains("pull_sample"));
        let mut t = text();
        t.retry_initial_secs = Some(10.0);
        t.retry_max_secs = Some(1.0);
        assert!(refused(&t).contains("retry_max_secs"));
        assert!(
            parse_all(&[text(), text()])
                .err()
                .is_some_and(|e| e.contains("unique"))
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let mut t = text();
        t.retry_initial_secs = Some(1.0);
        t.retry_max_secs = Some(60.0);
        let e = Endpoint::parse(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(e.backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(e.backoff(3, 0.0), Duration::from_secs(2));
        assert_eq!(e.backoff(10, 1.0), Duration::from_secs(60));
        assert_eq!(e.backoff(u32::MAX, 1.0), Duration::from_secs(60));
    }
}
