//! Events: what changed in the registry, told to webhook endpoints, never
//! lost.
//!
//! - A change (a manifest pushed, a tag or manifest or blob deleted, a
//!   repository deleted, a blob mounted) writes its event in the transaction
//!   that makes the change (`meta/events_sql.rs` `record`, called by
//!   `meta/sql.rs`): the event exists exactly when the change does, and both
//!   survive a crash together. Pulls, which change nothing, are sampled and
//!   written in batches ([`pulls`]).
//! - One delivery row per endpoint whose repository patterns and event
//!   actions match ([`Webhooks::routes`]); no endpoint matching, nothing is
//!   written.
//! - Deliveries to one endpoint about one repository go in the order of the
//!   changes (a chain, `event_chains`), at least once: a node that dies
//!   mid-delivery leaves the chain's lease to lapse, and a node (itself,
//!   restarted, or another on the same database) delivers again
//!   ([`delivery`]).
//! - Each delivery is a CloudEvents 1.0 JSON document signed with the
//!   endpoint's secret ([`signature`]).

pub mod delivery;
pub mod endpoint;
pub mod pulls;
pub mod signature;

use std::sync::Arc;

use berth_core::digest::Digest;
use berth_core::name::RepositoryName;
use berth_core::tag::Tag;
use serde::Serialize;

pub use endpoint::{Endpoint, EndpointText};

/// The media type of a CloudEvents JSON document (structured mode).
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// What an endpoint subscribes to: each event type belongs to one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A manifest pushed, by tag or by digest.
    Push,
    /// A tag, manifest, blob link or repository deleted.
    Delete,
    /// A blob mounted from another repository.
    Mount,
    /// A manifest pulled (sampled: `pull_sample`).
    Pull,
}

impl Action {
    /// Every action, in the order the docs list them.
    pub const ALL: [Action; 4] = [Action::Push, Action::Delete, Action::Mount, Action::Pull];

    /// The name used in the settings and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Mount => "mount",
            Action::Pull => "pull",
        }
    }

    /// Parses a name of the settings.
    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// The actor of tags removed by retention policies.
pub const RETENTION_ACTOR: &str = "berth:retention";

/// Who made a change: what an event says of its cause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The token's subject (a user, robot or CI job); `None` for anonymous
    /// requests and registries without access control.
    pub subject: Option<String>,
    /// The request's `X-Request-Id`, as logged and answered.
    pub request_id: Option<String>,
}

impl Actor {
    /// A change made by berth itself or by a tool without a request (tests,
    /// `berth migrate`): no subject, no request id.
    pub fn system() -> Actor {
        Actor::default()
    }

    /// A tag removed by a retention policy: the subject `berth:retention`,
    /// which no user, robot or CI job's subject can be (`:` is not in their
    /// names; a job's starts `trust:`).
    pub fn retention() -> Actor {
        Actor {
            subject: Some(RETENTION_ACTOR.to_owned()),
            request_id: None,
        }
    }

    /// A change made by a request.
    pub fn request(subject: Option<&str>, request_id: Option<&str>) -> Actor {
        Actor {
            subject: subject.map(str::to_owned),
            request_id: request_id.map(str::to_owned),
        }
    }
}

/// What happened, with what each kind of event says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// A manifest stored (again) and, when pushed by tag, the tag pointed at it.
    ManifestPushed {
        /// Its digest.
        digest: &'a Digest,
        /// The media type it was pushed with.
        media_type: &'a str,
        /// Its size in bytes.
        size: u64,
        /// The tag it was pushed under, if any.
        tag: Option<&'a Tag>,
    },
    /// A manifest deleted, with every tag on it.
    ManifestDeleted {
        /// Its digest.
        digest: &'a Digest,
    },
    /// A tag deleted (the manifest stays).
    TagDeleted {
        /// The tag.
        tag: &'a Tag,
        /// The manifest it pointed at.
        digest: &'a Digest,
    },
    /// A blob's link removed from the repository.
    BlobDeleted {
        /// The blob's digest.
        digest: &'a Digest,
    },
    /// A blob linked from another repository without an upload.
    BlobMounted {
        /// The blob's digest.
        digest: &'a Digest,
        /// Its size in bytes.
        size: u64,
        /// The repository it was mounted from, when the request named one.
        from: Option<&'a RepositoryName>,
    },
    /// A repository deleted whole.
    RepositoryDeleted,
    /// A manifest pulled.
    ManifestPulled {
        /// Its digest.
        digest: &'a Digest,
        /// The tag it was pulled by, if any.
        tag: Option<&'a Tag>,
    },
}

impl Change<'_> {
    /// The action an endpoint subscribes to for this change.
    pub fn action(&self) -> Action {
        match self {
            Change::ManifestPushed { .. } => Action::Push,
            Change::ManifestDeleted { .. }
            | Change::TagDeleted { .. }
            | Change::BlobDeleted { .. }
            | Change::RepositoryDeleted => Action::Delete,
            Change::BlobMounted { .. } => Action::Mount,
            Change::ManifestPulled { .. } => Action::Pull,
        }
    }

    /// The CloudEvents `type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Change::ManifestPushed { .. } => "berth.manifest.pushed",
            Change::ManifestDeleted { .. } => "berth.manifest.deleted",
            Change::TagDeleted { .. } => "berth.tag.deleted",
            Change::BlobDeleted { .. } => "berth.blob.deleted",
            Change::BlobMounted { .. } => "berth.blob.mounted",
            Change::RepositoryDeleted => "berth.repository.deleted",
            Change::ManifestPulled { .. } => "berth.manifest.pulled",
        }
    }

    /// The CloudEvents `subject`: the repository, with the tag or digest
    /// concerned as a client would name it (`acme/app:v1`, `acme/app@sha256:...`).
    fn subject(&self, repository: &RepositoryName) -> String {
        match self {
            Change::ManifestPushed { tag: Some(tag), .. }
            | Change::ManifestPulled { tag: Some(tag), .. }
            | Change::TagDeleted { tag, .. } => format!("{repository}:{tag}"),
            Change::ManifestPushed { digest, .. }
            | Change::ManifestPulled { digest, .. }
            | Change::ManifestDeleted { digest }
            | Change::BlobDeleted { digest }
            | Change::BlobMounted { digest, .. } => format!("{repository}@{digest}"),
            Change::RepositoryDeleted => repository.to_string(),
        }
    }
}

/// The `data` member of an event: the same names for every type, absent
/// where they do not apply.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Data<'a> {
    repository: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    /// `null` for anonymous requests.
    actor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// The CloudEvents 1.0 envelope (JSON format, structured mode).
#[derive(Debug, Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    event_type: &'static str,
    subject: &'a str,
    time: &'a str,
    datacontenttype: &'static str,
    data: Data<'a>,
}

/// An event ready to be stored: its CloudEvents document and what the
/// outbox indexes it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The CloudEvents `id` (a random UUID): receivers deduplicate by it.
    pub id: String,
    /// The repository it is about.
    pub repository: String,
    /// What orders its deliveries to an endpoint: the repository for a
    /// change, the repository and ` pull` for a pull (a name holds no
    /// space), so that pulls and changes never wait for each other.
    pub chain: String,
    /// The CloudEvents `type`.
    pub event_type: &'static str,
    /// The CloudEvents `subject`.
    pub subject: String,
    /// The document, exactly as every delivery sends it.
    pub document: String,
    /// Unix seconds of the change.
    pub time: i64,
}

impl Event {
    /// The event of `change` to `repository` by `actor`, from the registry at
    /// `source` (its public URL), at unix second `time`.
    pub fn new(
        source: &str,
        repository: &RepositoryName,
        change: &Change<'_>,
        actor: &Actor,
        time: i64,
    ) -> Event {
        let id = uuid::Uuid::new_v4().to_string();
        let subject = change.subject(repository);
        let mut data = Data {
            repository: repository.as_str(),
            digest: None,
            tag: None,
            media_type: None,
            size: None,
            from: None,
            actor: actor.subject.as_deref(),
            request_id: actor.request_id.as_deref(),
        };
        match change {
            Change::ManifestPushed {
                digest,
                media_type,
                size,
                tag,
            } => {
                data.digest = Some(digest.to_string());
                data.media_type = Some(media_type);
                data.size = Some(*size);
                data.tag = tag.map(Tag::as_str);
            }
            Change::ManifestDeleted { digest } | Change::BlobDeleted { digest } => {
                data.digest = Some(digest.to_string());
            }
            Change::TagDeleted { tag, digest } => {
                data.digest = Some(digest.to_string());
                data.tag = Some(tag.as_str());
            }
            Change::BlobMounted { digest, size, from } => {
                data.digest = Some(digest.to_string());
                data.size = Some(*size);
                data.from = from.map(RepositoryName::as_str);
            }
            Change::RepositoryDeleted => {}
            Change::ManifestPulled { digest, tag } => {
                data.digest = Some(digest.to_string());
                data.tag = tag.map(Tag::as_str);
            }
        }
        let time_text = berth_core::token::format_rfc3339(time);
        let envelope = CloudEvent {
            specversion: "1.0",
            id: &id,
            source,
            event_type: change.event_type(),
            subject: &subject,
            time: &time_text,
            datacontenttype: "application/json",
            data,
        };
        // Serialising plain strings and numbers cannot fail.
        let document = serde_json::to_string(&envelope).unwrap_or_default();
        let chain = match change {
            Change::ManifestPulled { .. } => format!("{repository} pull"),
            _ => repository.to_string(),
        };
        Event {
            id,
            repository: repository.to_string(),
            chain,
            event_type: change.event_type(),
            subject,
            document,
            time,
        }
    }
}

/// The events of this process: the endpoints, the registry's name in the
/// documents, the queue of sampled pulls, and the delivery worker's wake-up.
pub struct Events {
    /// The endpoints.
    pub webhooks: Webhooks,
    /// The CloudEvents `source`: the registry's public URL.
    pub source: String,
    /// Sampled pulls waiting to be written.
    pub pulls: pulls::PullEvents,
    /// Counters served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Held while queued pulls are taken and written (`delivery.rs`).
    pub flushing: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("webhooks", &self.webhooks)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Events to `webhooks`, documents naming `source`.
    pub fn new(
        webhooks: Webhooks,
        source: impl Into<String>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Events {
        Events {
            webhooks,
            source: source.into(),
            pulls: pulls::PullEvents::default(),
            metrics,
            flushing: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// No endpoint: nothing is ever written.
    pub fn disabled() -> Events {
        Events::new(Webhooks::default(), "", Arc::default())
    }

    /// The event of `change` to `repository` by `actor` and the endpoints
    /// it goes to; `None` when it goes nowhere.
    pub fn route<'a>(
        &'a self,
        repository: &RepositoryName,
        change: &Change<'_>,
        actor: &Actor,
        now: i64,
    ) -> Option<(Event, Vec<&'a str>)> {
        if self.webhooks.is_empty() {
            return None;
        }
        let endpoints = self.webhooks.routes(repository.as_str(), change.action());
        if endpoints.is_empty() {
            return None;
        }
        let event = Event::new(&self.source, repository, change, actor, now);
        Some((event, endpoints))
    }

    /// Tells the delivery worker that `n` events were committed (nothing
    /// when none were).
    pub fn committed(&self, n: u64) {
        if n > 0 {
            self.metrics.events_written(n);
            self.wake.notify_one();
        }
    }

    /// Wakes the delivery worker (deliveries made due by hand).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits until events are committed (or a wake-up was left earlier).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// The configured webhook endpoints, and which of them an event goes to.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    endpoints: Vec<Arc<Endpoint>>,
}

impl Webhooks {
    /// The endpoints, whose names are unique ([`endpoint::parse_all`]).
    pub fn new(endpoints: Vec<Endpoint>) -> Webhooks {
        Webhooks {
            endpoints: endpoints.into_iter().map(Arc::new).collect(),
        }
    }

    /// Whether no endpoint is configured (then nothing is ever written).
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The endpoint of this name.
    pub fn endpoint(&self, name: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// The names of the endpoints an event of `action` on `repository` goes to.
    pub fn routes(&self, repository: &str, action: Action) -> Vec<&str> {
        self.endpoints
            .iter()
            .filter(|e| e.wants(repository, action))
            .map(|e| e.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepositoryName {
        RepositoryName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_push_by_tag_is_a_cloudevent_naming_tag_digest_and_actor() {
        let digest = Digest::sha256_of(b"{}");
        let tag = Tag::parse("v1").unwrap_or_else(|e| panic!("{e}"));
        let change = Change::ManifestPushed {
            digest: &digest,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            size: 2,
            tag: Some(&tag),
        };
        let actor = Actor::request(Some("alice"), Some("abc123"));
        let event = Event::new(
            "https://registry.test",
            &name("acme/app"),
            &change,
            &actor,
            1_700_000_000,
        );
        let json: serde_json::Value =
            serde_json::from_str(&event.document).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["id"], event.id.as_str());
        assert_eq!(json["source"], "https://registry.test");
        assert_eq!(json["type"], "berth.manifest.pushed");
        assert_eq!(json["subject"], "acme/app:v1");
        assert_eq!(json["time"], "2023-11-14T22:13:20Z");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(
            json["data"],
            serde_json::json!({
                "repository": "acme/app",
                "digest": digest.to_string(),
                "tag": "v1",
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": 2,
                "actor": "alice",
                "requestId": "abc123",
            })
        );
        assert!(uuid::Uuid::parse_str(&event.id).is_ok());
    }

    #[test]
    fn subjects_name_the_tag_or_digest_concerned() {
        let digest = Digest::sha256_of(b"x");
        let repo = name("a/b");
        let anonymous = Actor::system();
        let event = |change: Change<'_>| Event::new("http://h", &repo, &change, &anonymous, 0);
        assert_eq!(
            event(Change::BlobMounted {
                digest: &digest,
                size: 1,
                from: Some(&name("c/d")),
            })
            .subject,
            format!("a/b@{digest}")
        );
        assert_eq!(event(Change::RepositoryDeleted).subject, "a/b");
        // Changes keep the repository's order; pulls have their own.
        assert_eq!(event(Change::RepositoryDeleted).chain, "a/b");
        let pulled = event(Change::ManifestPulled {
            digest: &digest,
            tag: None,
        });
        assert_eq!(pulled.chain, "a/b pull");
        let deleted = event(Change::ManifestDeleted { digest: &digest });
        let json: serde_json::Value =
            serde_json::from_str(&deleted.document).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["data"]["actor"], serde_json::Value::Null);
        assert!(json["data"].get("requestId").is_none());
    }
}
