//! Credential sources, their precedence, key spellings, helpers and writing.
//!
//! Every test builds its own home in a temporary directory and passes the
//! environment explicitly ([`CredentialStore::from_vars`]): no test reads the
//! real home directory or environment. Helpers are shell scripts
//! `docker-credential-<name>` in the test's `bin/`, which is the helper `PATH`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;

use super::file::normalize_key;
use super::{Credential, CredentialStore, CredentialsError, FileKind, Source};

/// A fake helper that keeps one file per server URL in its directory, as the
/// JSON `store` was given, and logs each call.
const FAKE_HELPER: &str = r#"#!/bin/sh
dir="$(dirname "$0")/fake-store"
mkdir -p "$dir"
name() { printf '%s' "$1" | tr -c 'A-Za-z0-9' '_'; }
case "$1" in
  store)
    input=$(cat)
    url=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
    printf '%s' "$input" > "$dir/$(name "$url").cred"
    echo "store $url" >> "$dir/log" ;;
  get)
    url=$(cat)
    echo "get $url" >> "$dir/log"
    if [ -f "$dir/$(name "$url").cred" ]; then cat "$dir/$(name "$url").cred"
    else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase)
    url=$(cat)
    echo "erase $url" >> "$dir/log"
    if [ -f "$dir/$(name "$url").cred" ]; then rm "$dir/$(name "$url").cred"
    else echo "credentials not found in native keychain"; exit 1; fi ;;
  list)
    printf '{'; sep=''
    for f in "$dir"/*.cred; do
      [ -f "$f" ] || continue
      url=$(sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p' "$f")
      printf '%s"%s":"x"' "$sep" "$url"; sep=','
    done
    printf '}' ;;
  *) echo "unknown action $1"; exit 1 ;;
esac
"#;

/// One user's home, environment and helper directory, all under a temp dir.
struct Home {
    root: TempDir,
    vars: HashMap<&'static str, OsString>,
}

impl Home {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(root.path().join("bin")).unwrap();
        let mut vars = HashMap::new();
        vars.insert("HOME", home.into_os_string());
        let mut path = root.path().join("bin").into_os_string();
        path.push(":/usr/bin:/bin");
        vars.insert("PATH", path);
        Self { root, vars }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    fn docker_config(&self) -> PathBuf {
        self.path("home/.docker/config.json")
    }

    fn set(&mut self, name: &'static str, value: impl Into<OsString>) -> &mut Self {
        self.vars.insert(name, value.into());
        self
    }

    fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn write_docker_config(&self, content: &str) -> PathBuf {
        self.write("home/.docker/config.json", content)
    }

    fn helper(&self, name: &str, script: &str) {
        let path = self.path(&format!("bin/docker-credential-{name}"));
        fs::write(&path, script).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn helper_log(&self) -> String {
        fs::read_to_string(self.path("bin/fake-store/log")).unwrap_or_default()
    }

    fn store(&self) -> CredentialStore {
        let vars = self.vars.clone();
        CredentialStore::from_vars(move |name| vars.get(name).cloned())
    }
}

fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    }
}

fn auth(username: &str, password: &str) -> String {
    STANDARD.encode(format!("{username}:{password}"))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---- key normalisation ----

#[test]
fn keys_normalise_to_one_registry() {
    let hub = Some("docker.io".to_owned());
    for key in [
        "https://index.docker.io/v1/",
        "index.docker.io",
        "docker.io",
        "registry-1.docker.io",
        "https://registry-1.docker.io/v2/",
        "HTTPS://Index.Docker.IO/v1/",
    ] {
        assert_eq!(normalize_key(key), hub, "{key}");
    }
    let local = Some("localhost:5000".to_owned());
    for key in [
        "localhost:5000",
        "http://localhost:5000",
        "https://localhost:5000/",
        "localhost:5000/v2/",
    ] {
        assert_eq!(normalize_key(key), local, "{key}");
    }
    assert_eq!(normalize_key("GHCR.io"), Some("ghcr.io".to_owned()));
    // podman's repository-scoped keys never stand for a whole registry.
    assert_eq!(normalize_key("quay.io/org"), None);
    assert_ne!(normalize_key("localhost:5001"), local);
}

#[test]
fn docker_hub_key_matches_both_spellings() {
    let home = Home::new();
    home.write_docker_config(&format!(
        r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
        auth("hubuser", "hubpass")
    ));
    let store = home.store();
    assert_eq!(
        store.lookup("https://index.docker.io/v1/").unwrap(),
        Some(basic("hubuser", "hubpass"))
    );
    assert_eq!(
        store.lookup("docker.io").unwrap(),
        Some(basic("hubuser", "hubpass"))
    );

    let home = Home::new();
    home.write_docker_config(&format!(
        r#"{{"auths":{{"docker.io":{{"auth":"{}"}}}}}}"#,
        auth("u", "p")
    ));
    assert_eq!(
        home.store().lookup("https://index.docker.io/v1/").unwrap(),
        Some(basic("u", "p"))
    );
}

#[test]
fn localhost_key_matches_with_scheme() {
    let home = Home::new();
    home.write_docker_config(&format!(
        r#"{{"auths":{{"http://localhost:5000":{{"auth":"{}"}},"localhost:5001":{{"auth":"{}"}}}}}}"#,
        auth("five", "thousand"),
        auth("other", "port")
    ));
    let store = home.store();
    assert_eq!(
        store.lookup("localhost:5000").unwrap(),
        Some(basic("five", "thousand"))
    );
    assert_eq!(store.lookup("localhost:5002").unwrap(), None);
}

#[test]
fn exact_key_wins_over_alias() {
    let home = Home::new();
    home.write_docker_config(&format!(
        r#"{{"auths":{{"https://ghcr.io":{{"auth":"{}"}},"ghcr.io":{{"auth":"{}"}}}}}}"#,
        auth("alias", "a"),
        auth("exact", "e")
    ));
    assert_eq!(
        home.store().lookup("ghcr.io").unwrap(),
        Some(basic("exact", "e"))
    );
}

// ---- docker config.json ----

#[test]
fn docker_config_auth_field() {
    let home = Home::new();
    let path = home.write_docker_config(&format!(
        r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
        auth("octo", "pa:ss:word")
    ));
    let store = home.store();
    // The password may contain `:`; only the first one separates.
    assert_eq!(
        store.lookup("ghcr.io").unwrap(),
        Some(basic("octo", "pa:ss:word"))
    );
    assert_eq!(
        store.source("ghcr.io"),
        Some(format!("docker config {}", path.display()))
    );
    assert_eq!(store.lookup("quay.io").unwrap(), None);
    assert_eq!(store.source("quay.io"), None);
}

#[test]
fn docker_config_username_password_fields() {
    let home = Home::new();
    home.write_docker_config(r#"{"auths":{"quay.io":{"username":"robot","password":"pw"}}}"#);
    assert_eq!(
        home.store().lookup("quay.io").unwrap(),
        Some(basic("robot", "pw"))
    );
}

#[test]
fn docker_config_identity_token() {
    let home = Home::new();
    home.write_docker_config(&format!(
        r#"{{"auths":{{"myacr.azurecr.io":{{"auth":"{}","identitytoken":"refresh-abc"}}}}}}"#,
        auth("00000000-0000-0000-0000-000000000000", "")
    ));
    assert_eq!(
        home.store().lookup("myacr.azurecr.io").unwrap(),
        Some(Credential::IdentityToken("refresh-abc".to_owned()))
    );
}

#[test]
fn docker_config_dir_comes_from_docker_config_var() {
    let mut home = Home::new();
    let dir = home.path("elsewhere");
    home.set("DOCKER_CONFIG", dir.clone());
    let path = home.write(
        "elsewhere/config.json",
        r#"{"auths":{"ghcr.io":{"username":"u","password":"p"}}}"#,
    );
    // The default location is ignored when DOCKER_CONFIG is set.
    home.write_docker_config(r#"{"auths":{"ghcr.io":{"username":"no","password":"no"}}}"#);
    let store = home.store();
    assert_eq!(store.docker_config(), Some(path.as_path()));
    assert_eq!(store.lookup("ghcr.io").unwrap(), Some(basic("u", "p")));
}

#[test]
fn missing_and_empty_files_have_no_credentials() {
    let home = Home::new();
    assert_eq!(home.store().lookup("ghcr.io").unwrap(), None);
    home.write_docker_config("");
    assert_eq!(home.store().lookup("ghcr.io").unwrap(), None);
    // docker's `{}` marker without a helper answers nothing.
    home.write_docker_config(r#"{"auths":{"ghcr.io":{}}}"#);
    assert_eq!(home.store().lookup("ghcr.io").unwrap(), None);
}

#[test]
fn broken_files_name_the_file_and_never_the_secret() {
    let home = Home::new();
    let path = home.write_docker_config(r#"{"auths": {"ghcr.io": {"auth": "c2VjcmV0"}"#);
    let err = home.store().lookup("ghcr.io").unwrap_err();
    assert!(matches!(err, CredentialsError::Json { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    // A type error: serde's own message would quote the value.
    home.write_docker_config(r#"{"auths":"hunter2-secret"}"#);
    let err = home.store().lookup("ghcr.io").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    assert!(
        err.to_string().contains("`auths` must be an object"),
        "{err}"
    );

    home.write_docker_config(r#"{"auths":{"ghcr.io":{"auth":"not base64 hunter2!"}}}"#);
    let err = home.store().lookup("ghcr.io").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("auths.ghcr.io.auth"), "{err}");
}

// ---- podman auth.json and precedence ----

#[test]
fn podman_search_order() {
    let mut home = Home::new();
    let entry = |user: &str| {
        format!(
            r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
            auth(user, "p")
        )
    };
    let berth = home.write("xdg-config/berth/auth.json", &entry("berth"));
    let explicit = home.write("explicit.json", &entry("registry-auth-file"));
    let runtime = home.write("run/containers/auth.json", &entry("runtime"));
    let config_home = home.write("xdg-config/containers/auth.json", &entry("config-home"));
    let docker = home.write_docker_config(&entry("docker"));
    // ~/.dockercfg: the auths map at the top level.
    let legacy = home.write(
        "home/.dockercfg",
        &format!(
            r#"{{"ghcr.io":{{"auth":"{}","email":"x@y"}}}}"#,
            auth("legacy", "p")
        ),
    );
    let (run, xdg_config) = (home.path("run"), home.path("xdg-config"));
    home.set("REGISTRY_AUTH_FILE", explicit.clone())
        .set("XDG_RUNTIME_DIR", run)
        .set("XDG_CONFIG_HOME", xdg_config);

    let store = home.store();
    let files: Vec<_> = store.files().map(|(k, p)| (k, p.to_owned())).collect();
    assert_eq!(
        files,
        [
            (FileKind::Berth, berth.clone()),
            (FileKind::RegistryAuthFile, explicit.clone()),
            (FileKind::Podman, runtime.clone()),
            (FileKind::Podman, config_home.clone()),
            (FileKind::Docker, docker.clone()),
            (FileKind::DockerLegacy, legacy.clone()),
        ]
    );
    let user = |store: &CredentialStore| match store.lookup("ghcr.io").unwrap() {
        Some(Credential::Basic { username, .. }) => username,
        other => panic!("{other:?}"),
    };
    assert_eq!(user(&store), "berth");
    assert_eq!(
        store.source("ghcr.io"),
        Some(format!("berth login file {}", berth.display()))
    );
    fs::remove_file(&berth).unwrap();
    assert_eq!(user(&store), "registry-auth-file");
    assert_eq!(
        store.source("ghcr.io"),
        Some(format!(
            "auth file {} (REGISTRY_AUTH_FILE)",
            explicit.display()
        ))
    );
    fs::remove_file(&explicit).unwrap();
    assert_eq!(user(&store), "runtime");
    assert_eq!(
        store.source("ghcr.io"),
        Some(format!("podman auth file {}", runtime.display()))
    );
    fs::remove_file(&runtime).unwrap();
    assert_eq!(user(&store), "config-home");
    fs::remove_file(&config_home).unwrap();
    assert_eq!(user(&store), "docker");
    fs::remove_file(&docker).unwrap();
    assert_eq!(user(&store), "legacy");
    assert_eq!(
        store.source("ghcr.io"),
        Some(format!("docker legacy file {}", legacy.display()))
    );
}

/// Regression: podman's and skopeo's file when XDG_RUNTIME_DIR is unset,
/// `/run/containers/$UID/auth.json`, was not read, so a `skopeo login` there
/// left berth unauthorized.
#[test]
fn without_xdg_runtime_dir_podmans_per_uid_file_is_read() {
    let home = Home::new();
    let vars = home.vars.clone();
    let store = CredentialStore::from_vars_and_uid(move |name| vars.get(name).cloned(), Some(1000));
    let files: Vec<_> = store.files().map(|(k, p)| (k, p.to_owned())).collect();
    assert_eq!(
        files[1],
        (
            FileKind::Podman,
            PathBuf::from("/run/containers/1000/auth.json")
        ),
        "{files:?}"
    );
    let mut home = home;
    let run = home.path("run");
    home.set("XDG_RUNTIME_DIR", run.clone());
    let vars = home.vars.clone();
    let store = CredentialStore::from_vars_and_uid(move |name| vars.get(name).cloned(), Some(1000));
    assert!(
        store
            .files()
            .all(|(_, p)| p != Path::new("/run/containers/1000/auth.json")),
        "XDG_RUNTIME_DIR wins"
    );
}

#[test]
fn podman_config_home_defaults_under_home() {
    let home = Home::new();
    let path = home.write(
        "home/.config/containers/auth.json",
        r#"{"auths":{"quay.io":{"username":"pod","password":"man"}}}"#,
    );
    let store = home.store();
    assert_eq!(store.lookup("quay.io").unwrap(), Some(basic("pod", "man")));
    assert_eq!(
        store.source("quay.io"),
        Some(format!("podman auth file {}", path.display()))
    );
}

#[test]
fn a_registry_missing_from_podman_falls_through_to_docker() {
    let mut home = Home::new();
    home.write(
        "run/containers/auth.json",
        r#"{"auths":{"quay.io":{"username":"pod","password":"man"}}}"#,
    );
    home.write_docker_config(r#"{"auths":{"ghcr.io":{"username":"dock","password":"er"}}}"#);
    let run = home.path("run");
    home.set("XDG_RUNTIME_DIR", run);
    assert_eq!(
        home.store().lookup("ghcr.io").unwrap(),
        Some(basic("dock", "er"))
    );
}

#[test]
fn environment_wins_when_both_variables_are_set() {
    let mut home = Home::new();
    home.write_docker_config(r#"{"auths":{"ghcr.io":{"username":"file","password":"f"}}}"#);
    home.set("BERTH_USERNAME", "ci");
    // One variable alone is not a credential.
    assert_eq!(
        home.store().lookup("ghcr.io").unwrap(),
        Some(basic("file", "f"))
    );
    home.set("BERTH_PASSWORD", "ci-secret");
    let store = home.store();
    assert_eq!(
        store.lookup("ghcr.io").unwrap(),
        Some(basic("ci", "ci-secret"))
    );
    assert_eq!(
        store.lookup("quay.io").unwrap(),
        Some(basic("ci", "ci-secret"))
    );
    assert_eq!(
        store.source("ghcr.io"),
        Some("BERTH_USERNAME/BERTH_PASSWORD".to_owned())
    );
    // Empty counts as unset.
    home.set("BERTH_PASSWORD", "");
    assert_eq!(
        home.store().lookup("ghcr.io").unwrap(),
        Some(basic("file", "f"))
    );
}

#[test]
fn debug_never_shows_secrets() {
    let mut home = Home::new();
    home.set("BERTH_USERNAME", "ci")
        .set("BERTH_PASSWORD", "hunter2");
    let store = home.store();
    let debug = format!("{store:?} {:?}", store.lookup("x").unwrap());
    assert!(!debug.contains("hunter2"), "{debug}");
    let token = format!("{:?}", Credential::IdentityToken("hunter2".to_owned()));
    assert!(!token.contains("hunter2"), "{token}");
}

// ---- credential helpers ----

#[test]
fn cred_helpers_then_auths_then_creds_store() {
    let home = Home::new();
    home.helper("fake", FAKE_HELPER);
    let config = home.write_docker_config(&format!(
        r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}},"quay.io":{{"auth":"{}"}}}},
            "credsStore":"fake","credHelpers":{{"ghcr.io":"fake"}}}}"#,
        auth("auths-ghcr", "p"),
        auth("auths-quay", "p")
    ));
    let store = home.store();
    // Nothing in the helper yet: credHelpers falls through to auths.
    assert_eq!(
        store.lookup("ghcr.io").unwrap(),
        Some(basic("auths-ghcr", "p"))
    );
    // Put credentials into the helper directly.
    home.write(
        "bin/fake-store/ghcr_io.cred",
        r#"{"ServerURL":"ghcr.io","Username":"helper-ghcr","Secret":"s"}"#,
    );
    home.write(
        "bin/fake-store/quay_io.cred",
        r#"{"ServerURL":"quay.io","Username":"helper-quay","Secret":"s"}"#,
    );
    home.write(
        "bin/fake-store/gcr_io.cred",
        r#"{"ServerURL":"gcr.io","Username":"helper-gcr","Secret":"s"}"#,
    );
    // credHelpers beats auths.
    assert_eq!(
        store.lookup("ghcr.io").unwrap(),
        Some(basic("helper-ghcr", "s"))
    );
    assert_eq!(
        store.source("ghcr.io"),
        Some(format!(
            "credential helper docker-credential-fake (configured in {})",
            config.display()
        ))
    );
    // auths beats credsStore.
    assert_eq!(
        store.lookup("quay.io").unwrap(),
        Some(basic("auths-quay", "p"))
    );
    // credsStore answers when nothing else does.
    assert_eq!(
        store.lookup("gcr.io").unwrap(),
        Some(basic("helper-gcr", "s"))
    );
    assert_eq!(store.lookup("nowhere.example").unwrap(), None);
    // The helper got the key itself on stdin.
    assert!(
        home.helper_log().contains("get ghcr.io\n"),
        "{}",
        home.helper_log()
    );
}

#[test]
fn helper_token_username_is_an_identity_token() {
    let home = Home::new();
    home.helper(
        "tok",
        "#!/bin/sh\ncat >/dev/null\n\
         echo '{\"ServerURL\":\"myacr.azurecr.io\",\"Username\":\"<token>\",\"Secret\":\"refresh-xyz\"}'\n",
    );
    home.write_docker_config(r#"{"credHelpers":{"https://myacr.azurecr.io":"tok"}}"#);
    assert_eq!(
        home.store().lookup("myacr.azurecr.io").unwrap(),
        Some(Credential::IdentityToken("refresh-xyz".to_owned()))
    );
}

#[test]
fn failing_helper_is_named_in_the_error() {
    let home = Home::new();
    home.helper(
        "broken",
        "#!/bin/sh\ncat >/dev/null\necho 'keychain is locked' >&2\nexit 3\n",
    );
    let config = home.write_docker_config(r#"{"credsStore":"broken"}"#);
    let store = home.store();
    let err = store.lookup("ghcr.io").unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, CredentialsError::HelperFailed { .. }),
        "{err:?}"
    );
    assert!(text.contains("docker-credential-broken"), "{text}");
    assert!(text.contains("keychain is locked"), "{text}");
    assert!(text.contains(&config.display().to_string()), "{text}");
    assert_eq!(store.source("ghcr.io"), None);

    // Storing through it fails too, and the secret it was handed is not quoted.
    home.helper("echo", "#!/bin/sh\ncat\nexit 1\n");
    home.write_docker_config(r#"{"credsStore":"echo"}"#);
    let err = home
        .store()
        .store("ghcr.io", &basic("u", "hunter2"))
        .unwrap_err();
    assert!(err.to_string().contains("docker-credential-echo"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn missing_helper_is_named_in_the_error() {
    let home = Home::new();
    home.write_docker_config(r#"{"credsStore":"not-installed"}"#);
    let err = home.store().lookup("ghcr.io").unwrap_err();
    assert!(
        matches!(err, CredentialsError::HelperSpawn { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("docker-credential-not-installed"),
        "{err}"
    );

    home.write_docker_config(r#"{"credsStore":"../../bin/sh"}"#);
    let err = home.store().lookup("ghcr.io").unwrap_err();
    assert!(
        matches!(err, CredentialsError::HelperName { .. }),
        "{err:?}"
    );
}

#[test]
fn store_and_erase_through_a_helper() {
    let home = Home::new();
    home.helper("fake", FAKE_HELPER);
    let path = home.write_docker_config(&format!(
        r#"{{"credsStore":"fake","auths":{{"ghcr.io":{{"auth":"{}"}},"quay.io":{{}}}},"x":1}}"#,
        auth("stale", "old")
    ));
    let store = home.store();
    let source = store.store("ghcr.io", &basic("fresh", "new")).unwrap();
    assert!(
        matches!(source, Source::Helper { ref program, .. } if program == "docker-credential-fake")
    );
    // The stale plain-text entry, which would win over credsStore, is gone.
    assert_eq!(
        store.lookup("ghcr.io").unwrap(),
        Some(basic("fresh", "new"))
    );
    let config = read_json(&path);
    assert_eq!(
        config,
        serde_json::json!({"credsStore":"fake","auths":{"quay.io":{}},"x":1})
    );

    store
        .store(
            "https://index.docker.io/v1/",
            &Credential::IdentityToken("refresh-1".to_owned()),
        )
        .unwrap();
    assert_eq!(
        store.lookup("https://index.docker.io/v1/").unwrap(),
        Some(Credential::IdentityToken("refresh-1".to_owned()))
    );
    let listed: Vec<_> = store.list().unwrap().into_iter().map(|(k, _)| k).collect();
    assert!(listed.contains(&"ghcr.io".to_owned()), "{listed:?}");

    store.erase("ghcr.io").unwrap();
    assert_eq!(store.lookup("ghcr.io").unwrap(), None);
    // Erasing what is not there is no error.
    store.erase("ghcr.io").unwrap();
    assert!(home.helper_log().contains("erase ghcr.io\n"));
    assert_eq!(read_json(&path)["x"], 1);
}

// ---- writing docker config.json ----

#[test]
fn store_creates_the_file_private() {
    let home = Home::new();
    let store = home.store();
    let path = home.docker_config();
    assert!(!path.exists());
    let source = store.store("ghcr.io", &basic("octo", "cat")).unwrap();
    assert_eq!(
        source.to_string(),
        format!("docker config {}", path.display())
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }
    assert_eq!(
        read_json(&path),
        serde_json::json!({"auths":{"ghcr.io":{"auth":auth("octo","cat")}}})
    );
    assert_eq!(store.lookup("ghcr.io").unwrap(), Some(basic("octo", "cat")));
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.json"]);
}

#[test]
fn store_keeps_every_other_key() {
    let home = Home::new();
    let original = r#"{
	"auths": {
		"quay.io": {
			"auth": "cXVheTpwdw==",
			"email": "kept@example.com"
		},
		"http://localhost:5000": {
			"auth": "b2xkOm9sZA=="
		},
		"ghcr.io": {}
	},
	"psFormat": "table {{.ID}}",
	"proxies": {"default": {"httpProxy": "http://proxy:3128", "noProxy": "*.local"}},
	"plugins": {"z": 1, "a": [1, 2, 3]},
	"credHelpers": {"gcr.io": "gcloud"}
}"#;
    let path = home.write_docker_config(original);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let store = home.store();
    store
        .store("localhost:5000", &basic("new", "secret"))
        .unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);

    let text = fs::read_to_string(&path).unwrap();
    // Other keys keep their bytes and order; the alias `http://localhost:5000`
    // was replaced in place by the key written.
    for kept in [
        r#""psFormat": "table {{.ID}}""#,
        r#""proxies": {"default": {"httpProxy": "http://proxy:3128", "noProxy": "*.local"}}"#,
        r#""plugins": {"z": 1, "a": [1, 2, 3]}"#,
        r#""credHelpers": {"gcr.io": "gcloud"}"#,
        r#""email": "kept@example.com""#,
    ] {
        assert!(text.contains(kept), "{kept} missing from\n{text}");
    }
    let order: Vec<_> = [
        "\"auths\"",
        "\"psFormat\"",
        "\"proxies\"",
        "\"plugins\"",
        "\"credHelpers\"",
    ]
    .iter()
    .map(|key| text.find(key).unwrap())
    .collect();
    assert!(order.is_sorted(), "{text}");
    let json = read_json(&path);
    let auths: Vec<_> = json["auths"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(auths.len(), 3);
    assert!(
        text.find("\"quay.io\"") < text.find("\"localhost:5000\""),
        "{text}"
    );
    assert!(
        text.find("\"localhost:5000\"") < text.find("\"ghcr.io\""),
        "{text}"
    );
    assert!(!text.contains("http://localhost:5000"), "{text}");
    assert_eq!(
        json["auths"]["localhost:5000"]["auth"],
        auth("new", "secret")
    );
    assert_eq!(
        store.lookup("localhost:5000").unwrap(),
        Some(basic("new", "secret"))
    );

    store.erase("localhost:5000").unwrap();
    let after = read_json(&path);
    assert_eq!(store.lookup("localhost:5000").unwrap(), None);
    let mut expected: serde_json::Value = serde_json::from_str(original).unwrap();
    expected["auths"]
        .as_object_mut()
        .unwrap()
        .remove("http://localhost:5000");
    assert_eq!(after, expected);
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
}

/// Regression: a refresh token stored in docker's config made `podman login`
/// and `skopeo login` refuse ("auth file contains an Identity token"). It
/// goes to berth's own file; a password goes to docker's config and replaces
/// it.
#[test]
fn store_identity_token_in_berths_own_file_only() {
    let home = Home::new();
    let store = home.store();
    let berth = home.path("home/.config/berth/auth.json");
    let token = Credential::IdentityToken("refresh-2".to_owned());
    let source = store.store("https://index.docker.io/v1/", &token).unwrap();
    assert_eq!(
        source,
        Source::File {
            kind: FileKind::Berth,
            path: berth.clone()
        }
    );
    assert!(!home.docker_config().exists(), "docker's config untouched");
    assert_eq!(
        read_json(&berth),
        serde_json::json!({"auths":{"https://index.docker.io/v1/":{
            "auth": auth("<token>", ""),
            "identitytoken": "refresh-2",
        }}})
    );
    assert_eq!(mode(&berth), 0o600);
    assert_eq!(store.lookup("docker.io").unwrap(), Some(token));
    // Storing Basic for the same registry (another spelling) goes to docker's
    // config, and the token, which would be found first, goes away.
    store.store("docker.io", &basic("u", "p")).unwrap();
    assert_eq!(
        read_json(&home.docker_config()),
        serde_json::json!({"auths":{"docker.io":{"auth":auth("u","p")}}})
    );
    assert_eq!(read_json(&berth), serde_json::json!({"auths":{}}));
    assert_eq!(store.lookup("docker.io").unwrap(), Some(basic("u", "p")));
    // erase removes from both.
    store
        .store("ghcr.io", &Credential::IdentityToken("t".to_owned()))
        .unwrap();
    store.erase("ghcr.io").unwrap();
    store.erase("docker.io").unwrap();
    assert_eq!(store.lookup("ghcr.io").unwrap(), None);
    assert_eq!(store.lookup("docker.io").unwrap(), None);
}

#[test]
fn storing_a_token_removes_the_one_berth_left_in_docker_config_only() {
    let home = Home::new();
    let config = home.write_docker_config(&format!(
        r#"{{"auths":{{"ghcr.io":{{"auth":"{}","identitytoken":"old"}},"quay.io":{{"auth":"{}","identitytoken":"dockers"}}}}}}"#,
        auth("<token>", ""),
        auth("alice", "")
    ));
    let store = home.store();
    for key in ["ghcr.io", "quay.io"] {
        store
            .store(key, &Credential::IdentityToken("new".to_owned()))
            .unwrap();
    }
    // berth's own earlier entry is gone; the one docker login wrote stays.
    assert_eq!(
        read_json(&config),
        serde_json::json!({"auths":{"quay.io":{"auth":auth("alice",""),"identitytoken":"dockers"}}})
    );
    assert_eq!(
        store.lookup("ghcr.io").unwrap(),
        Some(Credential::IdentityToken("new".to_owned()))
    );
}

#[test]
fn store_follows_a_symlinked_config() {
    let home = Home::new();
    let real = home.write("dotfiles/docker.json", r#"{"auths":{}}"#);
    fs::create_dir_all(home.docker_config().parent().unwrap()).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&real, home.docker_config()).unwrap();
        home.store().store("ghcr.io", &basic("u", "p")).unwrap();
        assert!(
            fs::symlink_metadata(home.docker_config())
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(read_json(&real)["auths"]["ghcr.io"]["auth"], auth("u", "p"));
    }
}

#[test]
fn erase_without_a_file_is_no_error() {
    let home = Home::new();
    home.store().erase("ghcr.io").unwrap();
    assert!(!home.docker_config().exists());
}

#[test]
fn explicit_constructor_reads_only_what_it_is_given() {
    let home = Home::new();
    let path = home.write(
        "only.json",
        r#"{"auths":{"ghcr.io":{"username":"u","password":"p"}}}"#,
    );
    let pod = home.write(
        "pod.json",
        r#"{"auths":{"ghcr.io":{"username":"pod","password":"p"}}}"#,
    );
    let store = CredentialStore::new(&path);
    assert_eq!(store.lookup("ghcr.io").unwrap(), Some(basic("u", "p")));
    let store = store.with_auth_file(FileKind::Podman, &pod);
    assert_eq!(store.lookup("ghcr.io").unwrap(), Some(basic("pod", "p")));
    let store = store.with_env_credential("env", "e");
    assert_eq!(store.lookup("ghcr.io").unwrap(), Some(basic("env", "e")));
}
