//! `berth migrate` (`berth_registry::migrate`): an embedded registry,
//! populated through its API while it serves, copied into a target that
//! is then served; every tag, blob, login and token checked there.
//!
//! The source is always the embedded SQLite registry. The target is what
//! the suite runs on: SQLite in a data directory, PostgreSQL when
//! `BERTH_TEST_DATABASE_URL` is set (`.ci/postgres`), and its blobs in S3
//! when `BERTH_TEST_S3_ENDPOINT` is (`.ci/s3`); `.ci/test` runs the suite
//! with both set.

use berth_core::digest::Digest;
use berth_core::media_type;
use berth_core::name::RepositoryName;
use berth_core::tag::Tag;
use berth_registry::identity::password::hash_password;
use berth_registry::identity::{OwnedRepositories, Role};
use berth_registry::meta::db::Db;
use berth_registry::meta::scratch::ScratchDatabase;
use berth_registry::migrate::{
    KeysOutcome, MigrateError, MigrateOptions, MigrateReport, MigrateTarget, migrate,
};
use berth_registry::store::S3Settings;
use berth_registry::{BlobStoreConfig, Config, Registry};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{
    EMPTY_CONFIG, TestApp, encode, image_manifest, layer_descriptor, password_of, random_bytes,
    to_bytes,
};

/// An embedded registry with something of everything in it.
struct Source {
    app: TestApp,
    /// alice's personal access token (`pull,push` on `alice/*`).
    pat: String,
    /// carol's refresh token.
    refresh: String,
    /// Every blob pushed: (repository, bytes).
    blobs: Vec<(String, Vec<u8>)>,
    /// The manifest of `alice/app:1.0` as first pushed, which a referrer names.
    referred: Option<Digest>,
}

/// The repositories [`Source::populate`] pushes to.
const REPOSITORIES: [&str; 3] = ["alice/app", "alice/multi", "acme/tool"];

impl Source {
    /// A new embedded registry with nothing pushed yet.
    async fn empty() -> Self {
        Self {
            app: TestApp::start_embedded().await,
            pat: String::new(),
            refresh: String::new(),
            blobs: Vec::new(),
            referred: None,
        }
    }

    /// Users (alice, bob, carol, the admin), an organisation `acme` owned by
    /// alice with bob a member and a robot, alice's PAT and a revoked one,
    /// carol's refresh token; images in `alice/app` (public; `1.0`, `1.1`
    /// with a 9 MiB layer: more than one S3 part), an index in
    /// `alice/multi`, an image in `acme/tool`, and a referrer of
    /// `alice/app:1.0`.
    async fn populate() -> Self {
        let app = TestApp::start_embedded().await;
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        app.user("carol").await;
        let acme = app.org("acme", &alice).await;
        app.member(&acme, &bob, Role::Member).await;
        app.robot(&acme, "acme-ci").await;
        let pat = app
            .pat(&alice, "ci", "pull,push", &["alice/*", "acme/*"], 3600)
            .await;
        app.pat(&alice, "old", "pull", &[], 3600).await;
        assert!(
            app.registry
                .identity
                .revoke_pat(alice.id, "old")
                .await
                .unwrap()
        );
        let refresh = app.refresh_token("carol", &password_of("carol")).await;
        let mut source = Self {
            app,
            pat,
            refresh,
            blobs: Vec::new(),
            referred: None,
        };
        let one = source
            .push_image("alice/app", "1.0", &[random_bytes(300)])
            .await;
        source
            .push_image(
                "alice/app",
                "1.1",
                &[random_bytes(9 << 20), random_bytes(10)],
            )
            .await;
        let amd = source
            .push_image("alice/multi", "sha256", &[random_bytes(100)])
            .await;
        let arm = source
            .push_image("alice/multi", "sha256", &[random_bytes(200)])
            .await;
        let children: Vec<Value> = [amd, arm]
            .iter()
            .zip(["amd64", "arm64"])
            .map(|((digest, size), arch)| {
                json!({
                    "mediaType": media_type::OCI_IMAGE_MANIFEST,
                    "digest": digest.to_string(),
                    "size": size,
                    "platform": {"os": "linux", "architecture": arch},
                })
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_IMAGE_INDEX,
            "manifests": children,
        });
        source.put("alice/multi", "latest", &index).await;
        source
            .push_image("acme/tool", "latest", &[random_bytes(1000)])
            .await;
        let mut referrer = image_manifest(&[]);
        referrer["artifactType"] = json!("application/vnd.example.sbom");
        referrer["subject"] = json!({
            "mediaType": media_type::OCI_IMAGE_MANIFEST,
            "digest": one.0.to_string(),
            "size": one.1,
        });
        let digest = Digest::sha256_of(&to_bytes(&referrer)).to_string();
        source.put("alice/app", &digest, &referrer).await;
        source.app.set_public("alice/app", true).await;
        source.referred = Some(one.0);
        source
    }

    /// alice's token for pushing to `repository`.
    async fn token(&self, repository: &str) -> String {
        let scope = format!("repository:{repository}:pull,push");
        self.app.user_token("alice", &[&scope]).await
    }

    /// Pushes the empty config, `layers`, and a manifest over them as
    /// `reference` (a tag; `"sha256"` pushes by digest); its digest and size.
    async fn push_image(
        &mut self,
        repository: &str,
        reference: &str,
        layers: &[Vec<u8>],
    ) -> (Digest, usize) {
        let token = self.token(repository).await;
        self.app.push_blob(repository, &token, EMPTY_CONFIG).await;
        self.blobs
            .push((repository.to_owned(), EMPTY_CONFIG.to_vec()));
        for layer in layers {
            self.app.push_blob(repository, &token, layer).await;
            self.blobs.push((repository.to_owned(), layer.clone()));
        }
        let descriptors: Vec<Value> = layers.iter().map(|l| layer_descriptor(l)).collect();
        let manifest = image_manifest(&descriptors);
        let bytes = to_bytes(&manifest);
        let digest = Digest::sha256_of(&bytes);
        let reference = if reference == "sha256" {
            digest.to_string()
        } else {
            reference.to_owned()
        };
        self.put(repository, &reference, &manifest).await;
        (digest, bytes.len())
    }

    async fn put(&self, repository: &str, reference: &str, manifest: &Value) {
        let token = self.token(repository).await;
        let resp = self
            .app
            .put_manifest(repository, reference, Some(&token), manifest)
            .await;
        assert_eq!(
            resp.status,
            201,
            "{repository}:{reference}: {}",
            resp.text()
        );
    }
}

/// Where a test migrates to: a data directory, and the database and S3
/// prefix of the suite's switches.
struct Target {
    dir: TempDir,
    database: Option<ScratchDatabase>,
    blob_store: BlobStoreConfig,
}

impl Target {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let blob_store = S3Settings::for_test_dir(dir.path())
            .map(BlobStoreConfig::S3)
            .unwrap_or_default();
        Self {
            database: ScratchDatabase::from_env().await.unwrap(),
            dir,
            blob_store,
        }
    }

    fn spec(&self) -> MigrateTarget {
        MigrateTarget {
            data_dir: Some(self.dir.path().to_owned()),
            database_url: self.database.as_ref().map(|d| d.url().clone()),
            blob_store: self.blob_store.clone(),
        }
    }

    async fn migrate(&self, source: &Source, dry_run: bool) -> Result<MigrateReport, MigrateError> {
        let options = MigrateOptions {
            dry_run,
            ..MigrateOptions::default()
        };
        migrate(source.app.data_dir(), &self.spec(), &options, None).await
    }

    fn config(&self, config: &mut Config) {
        config.database_url = self.database.as_ref().map(|d| d.url().clone());
        config.blob_store = self.blob_store.clone();
    }

    /// Serves the target as the source's successor: the same service name,
    /// so that the source's tokens are meant for it too.
    async fn serve(self, source: &Source) -> TestApp {
        let service = source.app.service.clone();
        let blob_store = self.blob_store.clone();
        TestApp::launch(self.dir, self.database, move |config| {
            config.service = service;
            config.blob_store = blob_store;
        })
        .await
    }
}

/// `repository:<name>:pull` for every repository.
fn pull_all() -> Vec<String> {
    REPOSITORIES
        .iter()
        .map(|r| format!("repository:{r}:pull"))
        .collect()
}

/// Every repository's tags, and each tag's manifest (digest and bytes).
async fn content(app: &TestApp) -> Vec<(String, Vec<(String, String, Vec<u8>)>)> {
    let scopes = pull_all();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let token = app.user_token("admin", &scopes).await;
    let mut all = Vec::new();
    for repository in REPOSITORIES {
        let tags = app
            .get(&format!("/v2/{repository}/tags/list"), Some(&token))
            .await;
        assert_eq!(tags.status, 200, "{repository}: {}", tags.text());
        let mut manifests = Vec::new();
        for tag in tags.json()["tags"].as_array().unwrap() {
            let tag = tag.as_str().unwrap();
            let resp = app
                .send(
                    app.bearer(
                        reqwest::Method::GET,
                        &format!("/v2/{repository}/manifests/{tag}"),
                        Some(&token),
                    )
                    .header(
                        "accept",
                        format!(
                            "{}, {}",
                            media_type::OCI_IMAGE_MANIFEST,
                            media_type::OCI_IMAGE_INDEX
                        ),
                    ),
                )
                .await;
            assert_eq!(resp.status, 200, "{repository}:{tag}: {}", resp.text());
            let digest = resp.header("docker-content-digest").unwrap().to_owned();
            assert_eq!(digest, Digest::sha256_of(&resp.body).to_string());
            manifests.push((tag.to_owned(), digest, resp.body.clone()));
        }
        all.push((repository.to_owned(), manifests));
    }
    all
}

/// Every blob of `source` reads back from `app` with its bytes.
async fn assert_blobs(app: &TestApp, source: &Source) {
    let scopes = pull_all();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let token = app.user_token("admin", &scopes).await;
    for (repository, bytes) in &source.blobs {
        let digest = Digest::sha256_of(bytes);
        let resp = app
            .get(&format!("/v2/{repository}/blobs/{digest}"), Some(&token))
            .await;
        assert_eq!(resp.status, 200, "{repository}@{digest}: {}", resp.text());
        assert!(resp.body == *bytes, "{repository}@{digest}: other bytes");
    }
}

/// The referrers of `digest` in `alice/app`, as an anonymous client sees them.
async fn referrers(app: &TestApp, digest: &str) -> Value {
    let token = app.anonymous_token(&["repository:alice/app:pull"]).await;
    let resp = app
        .get(&format!("/v2/alice/app/referrers/{digest}"), Some(&token))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["manifests"].clone()
}

/// A token for `scope` with Basic credentials, or the status it was refused with.
async fn login(app: &TestApp, user: &str, password: &str, scope: &str) -> Result<String, u16> {
    let resp = app
        .token_get(Some((user, password)), &app.token_query(&[scope]))
        .await;
    match resp.status {
        200 => Ok(resp.json()["token"].as_str().unwrap().to_owned()),
        status => Err(status),
    }
}

/// The refresh-token grant, as `berth login` uses it: the status.
async fn refresh(app: &TestApp, token: &str) -> u16 {
    let form = format!(
        "grant_type=refresh_token&refresh_token={}&service={}&client_id=test&scope={}",
        encode(token),
        encode(&app.service),
        encode("repository:carol/x:pull")
    );
    app.token_post(&form).await.status
}

/// Whether the target database has berth's schema (a dry run must not
/// create it).
async fn has_schema(target: &Target) -> bool {
    match &target.database {
        Some(database) => {
            let db = Db::connect_postgres(database.url().expose()).await.unwrap();
            let found = db.has_table("users").await.unwrap();
            db.close().await;
            found
        }
        None => target.dir.path().join("berth.db").exists(),
    }
}

/// The whole path: a dry run that changes nothing, a run, a second run
/// that finds everything there, changes on the source (a push, a moved
/// tag, a removed tag, a deleted user, a changed password, a repository
/// made public) carried by a third run whose counts its dry run foretold;
/// then the target serves every tag and blob, the logins, tokens and
/// revocations of the source, and hands out ids past the source's. While
/// it serves, another run is refused.
#[tokio::test]
async fn a_registry_moves_whole_and_a_second_run_changes_nothing() {
    let mut source = Source::populate().await;
    let target = Target::new().await;
    let blobs = {
        let mut digests: Vec<Digest> = source
            .blobs
            .iter()
            .map(|(_, b)| Digest::sha256_of(b))
            .collect();
        digests.sort_by_key(ToString::to_string);
        digests.dedup();
        digests.len() as u64
    };

    // A dry run says it all is to copy, and writes nothing.
    let dry = target.migrate(&source, true).await.unwrap();
    assert!(!dry.complete);
    assert_eq!(dry.counts.blobs, blobs);
    assert_eq!((dry.blobs_copied, dry.blobs_present), (blobs, 0));
    assert_eq!(dry.keys, KeysOutcome::Copied);
    assert_eq!(
        dry.table("users").copied,
        5,
        "admin, alice, bob, carol, acme-ci"
    );
    assert!(!has_schema(&target).await, "a dry run creates nothing");
    assert!(!target.dir.path().join("blobs").exists());

    // The copy, while the source serves.
    let first = target.migrate(&source, false).await.unwrap();
    assert!(first.complete, "{first:?}");
    assert!(first.failures.is_empty());
    assert_eq!((first.blobs_copied, first.blobs_present), (blobs, 0));
    assert_eq!(first.keys, KeysOutcome::Copied);
    for (table, count) in &first.tables {
        assert_eq!(count.copied, count.total, "{table}: {count:?}");
        assert_eq!(count.present + count.updated + count.removed, 0, "{table}");
    }
    assert_eq!(first.table("repositories").total, 3);
    assert_eq!(first.table("personal_access_tokens").total, 2);
    assert_eq!(first.table("refresh_tokens").total, 1);
    assert_eq!(first.table("memberships").total, 2);

    // Again: everything is there already.
    let second = target.migrate(&source, false).await.unwrap();
    assert!(second.complete);
    assert_eq!((second.blobs_copied, second.blobs_present), (0, blobs));
    assert_eq!(second.bytes_copied, 0);
    assert_eq!(second.keys, KeysOutcome::Present);
    for (table, count) in &second.tables {
        assert_eq!(count.present, count.total, "{table}: {count:?}");
        assert_eq!(count.copied + count.updated + count.removed, 0, "{table}");
    }

    // The source serves on: a new image tagged 2.0 and 1.0, 1.1 untagged,
    // bob deleted, alice's password changed, acme/tool made public.
    let (newer, _) = source
        .push_image("alice/app", "2.0", &[random_bytes(500)])
        .await;
    let manifest = source
        .app
        .get(
            &format!("/v2/alice/app/manifests/{newer}"),
            Some(&source.token("alice/app").await),
        )
        .await;
    let manifest: Value = manifest.json();
    source.put("alice/app", "1.0", &manifest).await;
    let registry = &source.app.registry;
    let app_name = RepositoryName::parse("alice/app").unwrap();
    assert!(
        registry
            .meta
            .delete_tag(
                &app_name,
                &Tag::parse("1.1").unwrap(),
                &berth_registry::events::Actor::system()
            )
            .await
            .unwrap()
    );
    registry
        .identity
        .delete_user(
            "bob",
            OwnedRepositories::Keep,
            &berth_registry::events::Actor::system(),
        )
        .await
        .unwrap()
        .unwrap();
    let new_password = "alice-new-password";
    let hash = tokio::task::spawn_blocking(move || hash_password(new_password))
        .await
        .unwrap()
        .unwrap();
    registry
        .identity
        .set_password("alice", &hash)
        .await
        .unwrap();
    source.app.set_public("acme/tool", true).await;

    // The dry run foretells the third run's counts exactly.
    let dry = target.migrate(&source, true).await.unwrap();
    let third = target.migrate(&source, false).await.unwrap();
    assert!(third.complete);
    assert_eq!(dry.tables, third.tables);
    assert_eq!(dry.blobs_copied, third.blobs_copied);
    assert_eq!((third.blobs_copied, third.blobs_present), (1, blobs));
    let count = |table: &str| {
        let c = third.table(table);
        (c.copied, c.updated, c.removed)
    };
    assert_eq!(count("users"), (0, 1, 1), "alice's password; bob");
    assert_eq!(count("memberships"), (0, 0, 1), "bob's");
    assert_eq!(count("tags"), (1, 1, 1), "2.0; 1.0 moved; 1.1");
    assert_eq!(count("repositories"), (0, 1, 0), "acme/tool public");
    assert_eq!(count("manifests"), (1, 0, 0));
    assert!(third.table("revocations").copied >= 2, "{third:?}");

    // A token the source issues now, for the PAT and for alice's login.
    let scope = "repository:alice/app:pull";
    let pat_token = login(&source.app, "alice", &source.pat, scope)
        .await
        .unwrap();
    let login_token = login(&source.app, "alice", new_password, scope)
        .await
        .unwrap();
    let expected = content(&source.app).await;

    // The target serves it all.
    let target_app = target.serve(&source).await;
    assert_eq!(content(&target_app).await, expected);
    assert_blobs(&target_app, &source).await;
    let one = expected[0].1.iter().find(|(tag, ..)| tag == "1.1");
    assert!(one.is_none(), "1.1 was untagged");
    let subject = source.referred.clone().unwrap();
    let found = referrers(&target_app, &subject.to_string()).await;
    assert_eq!(found, referrers(&source.app, &subject.to_string()).await);
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");

    // Logins: the new password, not the old; the PAT; carol's refresh
    // token; bob no more; the revoked PAT no more.
    assert!(
        login(&target_app, "alice", new_password, scope)
            .await
            .is_ok()
    );
    assert_eq!(
        login(&target_app, "alice", &password_of("alice"), scope).await,
        Err(401)
    );
    assert!(
        login(&target_app, "alice", &source.pat, scope)
            .await
            .is_ok()
    );
    assert_eq!(refresh(&target_app, &source.refresh).await, 200);
    assert_eq!(
        login(&target_app, "bob", &password_of("bob"), scope).await,
        Err(401)
    );
    // Anonymous pulls of what is public, on the target too.
    let anonymous = target_app
        .anonymous_token(&["repository:acme/tool:pull"])
        .await;
    let resp = target_app
        .get("/v2/acme/tool/manifests/latest", Some(&anonymous))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    // Tokens the source signed verify on the target.
    for token in [&pat_token, &login_token] {
        let resp = target_app
            .get("/v2/alice/app/manifests/2.0", Some(token))
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let jwks = target_app.get("/token/jwks.json", None).await.json();
    let source_jwks = source.app.get("/token/jwks.json", None).await.json();
    assert_eq!(jwks, source_jwks);

    // The target numbers on past the source: a new user, and a revocation
    // that applies to the tokens the source issued before it.
    target_app.user("dave").await;
    let alice = target_app
        .registry
        .identity
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap();
    assert!(
        target_app
            .registry
            .identity
            .revoke_pat(alice.id, "ci")
            .await
            .unwrap()
    );
    let resp = target_app
        .get("/v2/alice/app/manifests/2.0", Some(&pat_token))
        .await;
    assert_eq!(
        resp.status,
        401,
        "the PAT's token is revoked: {}",
        resp.text()
    );
    let resp = target_app
        .get("/v2/alice/app/manifests/2.0", Some(&login_token))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    // While the target serves, a run is refused.
    let spec = MigrateTarget {
        data_dir: Some(target_app.data_dir().to_owned()),
        database_url: target_app.database_url(),
        blob_store: target_app.registry.config.blob_store.clone(),
    };
    let refused = migrate(
        source.app.data_dir(),
        &spec,
        &MigrateOptions::default(),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(refused, MigrateError::InUse { .. }), "{refused}");
    assert!(refused.to_string().contains("stop it first"), "{refused}");
}

/// A blob whose file in the source is not its digest is refused and
/// named; the others are copied, the identities too, but no repository,
/// manifest or tag. Once the file is restored, the next run copies that
/// blob only, then the content; a third run copies nothing.
#[tokio::test]
async fn a_damaged_blob_is_refused_and_the_content_waits_for_it() {
    let mut source = Source::empty().await;
    source.app.user("alice").await;
    let layer = random_bytes(4096);
    source
        .push_image("alice/app", "1.0", &[layer.clone(), random_bytes(10)])
        .await;
    let digest = Digest::sha256_of(&layer);
    let file = source
        .app
        .data_dir()
        .join("blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex());
    let mut damaged = layer.clone();
    damaged[100] ^= 0xff;
    std::fs::write(&file, &damaged).unwrap();

    let target = Target::new().await;
    let first = target.migrate(&source, false).await.unwrap();
    assert!(!first.complete);
    assert_eq!(first.failures.len(), 1, "{first:?}");
    assert_eq!(first.failures[0].0, digest);
    assert!(
        first.failures[0].1.contains("is not its content"),
        "{}",
        first.failures[0].1
    );
    assert_eq!(first.blobs_copied, 2, "the config and the other layer");
    assert_eq!(first.table("users").copied, 2, "admin and alice");
    for table in ["repositories", "blobs", "manifests", "tags"] {
        assert_eq!(first.table(table).copied, 0, "{table}");
    }

    std::fs::write(&file, &layer).unwrap();
    let second = target.migrate(&source, false).await.unwrap();
    assert!(second.complete, "{second:?}");
    assert_eq!((second.blobs_copied, second.blobs_present), (1, 2));
    assert_eq!(second.table("users").present, 2);
    assert_eq!(second.table("tags").copied, 1);
    let third = target.migrate(&source, false).await.unwrap();
    assert_eq!((third.blobs_copied, third.blobs_present), (0, 3));
    assert!(third.tables.iter().all(|(_, c)| c.copied == 0));

    let target_app = target.serve(&source).await;
    let token = target_app
        .user_token("alice", &["repository:alice/app:pull"])
        .await;
    let resp = target_app
        .get(&format!("/v2/alice/app/blobs/{digest}"), Some(&token))
        .await;
    assert_eq!(resp.status, 200);
    assert!(resp.body == layer);
}

/// A target a `berth serve` started on (its own admin and signing keys)
/// is refused before anything is written, by a dry run too.
#[tokio::test]
async fn a_target_holding_another_registry_is_refused() {
    let source = Source::empty().await;
    source.app.seed_image("admin/app", "1.0").await;
    let target = Target::new().await;
    let mut config = Config::new("http://127.0.0.1:5000");
    target.config(&mut config);
    let other = Registry::open(target.dir.path(), config.clone())
        .await
        .unwrap();
    other
        .bootstrap_admin(Some("another".to_owned()))
        .await
        .unwrap();
    other.db.close().await;
    drop(other);

    for dry_run in [true, false] {
        let refused = target.migrate(&source, dry_run).await.unwrap_err();
        assert!(
            matches!(refused, MigrateError::OtherRegistry { .. }),
            "{refused}"
        );
        let message = refused.to_string();
        assert!(message.contains("another registry's data"), "{message}");
        assert!(
            message.contains("migrate into an empty database"),
            "{message}"
        );
    }
    let reopened = Registry::open(target.dir.path(), config).await.unwrap();
    assert_eq!(reopened.identity.count_users().await.unwrap(), 1);
    let app = RepositoryName::parse("admin/app").unwrap();
    assert!(
        reopened.meta.repository_info(&app).await.unwrap().is_none(),
        "nothing copied"
    );
    reopened.db.close().await;
}

/// A source that is not a data directory is named, with what to give.
#[tokio::test]
async fn a_source_that_is_not_a_registry_is_refused() {
    let target = Target::new().await;
    let empty = tempfile::tempdir().unwrap();
    let refused = migrate(
        empty.path(),
        &target.spec(),
        &MigrateOptions::default(),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!(
            "{} is not a berth data directory (it has no berth.db); give the directory the \
             embedded registry's `berth serve --data-dir` uses",
            empty.path().display()
        )
    );
}

#[tokio::test]
async fn pending_events_move_with_the_registry_and_the_target_delivers_them() {
    use berth_registry::events::{Webhooks, endpoint};

    // The source's receiver is down: its event stays pending.
    let receiver = crate::events::Receiver::down().await;
    let webhooks = || {
        Webhooks::new(
            endpoint::parse_all(&[crate::events::endpoint("ci", &receiver, |_| {})]).unwrap(),
        )
    };
    let source_hooks = webhooks();
    let app = TestApp::launch(tempfile::tempdir().unwrap(), None, move |config| {
        config.webhooks = source_hooks;
    })
    .await;
    app.user("alice").await;
    let mut source = Source {
        app,
        pat: String::new(),
        refresh: String::new(),
        blobs: Vec::new(),
        referred: None,
    };
    let (digest, _) = source
        .push_image("alice/app", "1.0", &[random_bytes(100)])
        .await;
    let pending = source
        .app
        .admin_api(reqwest::Method::GET, "/api/v1/events?state=pending", None)
        .await;
    assert_eq!(pending.status, 200, "{}", pending.text());
    let pending: Value = serde_json::from_slice(&pending.body).unwrap();
    let pending = pending["deliveries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(pending.len(), 1, "{pending:?}");

    let target = Target::new().await;
    let report = target.migrate(&source, false).await.unwrap();
    assert!(report.complete, "{report:?}");
    for table in ["events", "event_deliveries", "event_chains"] {
        assert_eq!(report.table(table).total, 1, "{table}");
        assert_eq!(report.table(table).copied, 1, "{table}");
    }

    // The target, with the receiver up, delivers what the source could not.
    receiver.listen().await;
    let service = source.app.service.clone();
    let blob_store = target.blob_store.clone();
    let target_hooks = webhooks();
    let served = TestApp::launch(target.dir, target.database, move |config| {
        config.service = service;
        config.blob_store = blob_store;
        config.webhooks = target_hooks;
    })
    .await;
    let delivered = receiver.wait_delivered(1).await;
    let event = delivered[0].json();
    assert_eq!(event["id"], pending[0]["id"]);
    assert_eq!(event["type"], "berth.manifest.pushed");
    assert_eq!(event["subject"], "alice/app:1.0");
    assert_eq!(event["data"]["digest"], digest.to_string());
    drop(served);
}
