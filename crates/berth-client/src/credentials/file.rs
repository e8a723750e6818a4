//! Docker's `config.json` and podman's `auth.json`: one format.
//!
//! ```text
//! {
//!   "auths": {
//!     "<key>": { "auth": base64("user:password") }     // HTTP Basic
//!     "<key>": { "identitytoken": "<refresh token>" }  // OAuth2 refresh token
//!                                   // (written with "auth": base64("<token>:"))
//!     "<key>": { "username": "u", "password": "p" }    // spelled out
//!     "<key>": {}                                      // "a helper has it"
//!   },
//!   "credsStore": "<name>",                 // default helper: docker-credential-<name>
//!   "credHelpers": { "<key>": "<name>" },   // per-registry helper
//!   ...                                     // other tools' keys, kept as they are
//! }
//! ```
//!
//! Keys are written in many spellings (`ghcr.io`, `https://ghcr.io`,
//! `https://index.docker.io/v1/`), so they are compared after [`normalize_key`],
//! an exact match winning over a normalised one.
//!
//! Writing keeps every other key byte for byte: the file is parsed into raw JSON
//! fragments, and only the `auths` map is rebuilt, in its original order. The new
//! file is written to a temporary file with mode 0600 beside it and renamed over
//! it, so a reader never sees half a file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use berth_core::reference::Registry;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::Credential;
use super::error::CredentialsError;

/// The user name written beside an identity token: docker-credential-helpers'
/// mark for "the secret is an identity token".
const IDENTITY_TOKEN_USER: &str = "<token>";

/// Docker writes padded standard base64; some tools drop the padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The canonical registry behind a credentials key, lower case, with Docker Hub's
/// names (`docker.io`, `index.docker.io`, `registry-1.docker.io`) all `docker.io`.
///
/// A scheme and any path after it are dropped (`https://index.docker.io/v1/` is
/// Docker Hub), as docker does. Without a scheme a path other than `v1`/`v2`
/// makes the key repository-scoped (podman's `quay.io/org`): such a key answers
/// only for that repository, so it never matches a whole registry (`None`).
pub(crate) fn normalize_key(key: &str) -> Option<String> {
    let key = key.trim();
    let lower = key.to_ascii_lowercase();
    let (rest, had_scheme) = match ["https://", "http://"]
        .iter()
        .find(|scheme| lower.starts_with(*scheme))
    {
        Some(scheme) => (key.get(scheme.len()..).unwrap_or(""), true),
        None => (key, false),
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_end_matches('/');
    if !had_scheme && !matches!(path, "" | "v1" | "v2") {
        return None;
    }
    if host.is_empty() {
        return None;
    }
    Some(match Registry::parse(host) {
        Ok(registry) if registry.is_docker_hub() => Registry::docker_hub().to_string(),
        Ok(registry) => registry.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    })
}

/// The key in `map` that names `key`'s registry: the exact key first, else the
/// first key with the same [`normalize_key`].
fn find_key<'a, V>(map: &'a IndexMap<String, V>, key: &str) -> Option<&'a str> {
    if let Some((found, _)) = map.get_key_value(key) {
        return Some(found);
    }
    let wanted = normalize_key(key)?;
    map.keys()
        .find(|candidate| normalize_key(candidate).as_deref() == Some(wanted.as_str()))
        .map(String::as_str)
}

/// One credentials file, parsed into raw fragments so that it can be written
/// back with only `auths` changed.
#[derive(Debug)]
pub(crate) struct AuthFile {
    path: PathBuf,
    top: IndexMap<String, Box<RawValue>>,
    /// The rebuilt `auths`, once [`set_auth`](Self::set_auth) changed it.
    new_auths: Option<IndexMap<String, Box<RawValue>>>,
}

/// A top-level value on its way out: raw as read, or the rebuilt `auths`,
/// which the pretty printer indents like the rest of the file.
#[derive(Serialize)]
#[serde(untagged)]
enum Node<'a> {
    Raw(&'a RawValue),
    Map(&'a IndexMap<String, Box<RawValue>>),
}

impl AuthFile {
    /// Reads `path`; `Ok(None)` when it does not exist. An empty file is an
    /// empty config, as docker treats it.
    pub(crate) fn read(path: &Path) -> Result<Option<Self>, CredentialsError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialsError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(path, &text).map(Some)
    }

    /// Reads docker's legacy `~/.dockercfg`, whose top-level object is the
    /// `auths` map; `Ok(None)` when it does not exist. Read only: berth never
    /// writes one.
    pub(crate) fn read_legacy(path: &Path) -> Result<Option<Self>, CredentialsError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CredentialsError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if text.trim().is_empty() {
            return Ok(Some(Self::empty(path)));
        }
        // Checked to be an object; then held as the `auths` fragment.
        parse_object(path, &text, "the file must be a JSON object")?;
        let raw = RawValue::from_string(text).map_err(|e| json_error(path, &e))?;
        let mut top = IndexMap::new();
        top.insert("auths".to_owned(), raw);
        Ok(Some(Self {
            path: path.to_owned(),
            top,
            new_auths: None,
        }))
    }

    /// Whether `auths` holds, for `key`, an identity token written with the
    /// user `<token>` (as berth wrote them in docker's config before it kept
    /// them in its own file; docker writes the account's name there).
    pub(crate) fn holds_marked_identity_token(&self, key: &str) -> Result<bool, CredentialsError> {
        let auths = self.auths()?;
        let Some(found) = find_key(&auths, key) else {
            return Ok(false);
        };
        let Some(Value::Object(entry)) = auths.get(found).map(|raw| self.value(raw)).transpose()?
        else {
            return Ok(false);
        };
        let has_token =
            matches!(entry.get("identitytoken"), Some(Value::String(t)) if !t.is_empty());
        let marked = matches!(entry.get("auth"), Some(Value::String(a))
            if BASE64.decode(a.trim()).is_ok_and(|d| d == format!("{IDENTITY_TOKEN_USER}:").as_bytes()));
        Ok(has_token && marked)
    }

    /// An empty config that will be written to `path`.
    pub(crate) fn empty(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            top: IndexMap::new(),
            new_auths: None,
        }
    }

    fn parse(path: &Path, text: &str) -> Result<Self, CredentialsError> {
        if text.trim().is_empty() {
            return Ok(Self::empty(path));
        }
        let top = parse_object(path, text, "the file must be a JSON object")?;
        Ok(Self {
            path: path.to_owned(),
            top,
            new_auths: None,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The default helper name (`credsStore`), if any.
    pub(crate) fn creds_store(&self) -> Result<Option<String>, CredentialsError> {
        let Some(raw) = self.top.get("credsStore") else {
            return Ok(None);
        };
        match self.value(raw)? {
            Value::String(name) if !name.is_empty() => Ok(Some(name)),
            Value::String(_) | Value::Null => Ok(None),
            _ => Err(self.shape("`credsStore` must be a string")),
        }
    }

    /// The helper name configured for `key` in `credHelpers`, if any.
    pub(crate) fn cred_helper(&self, key: &str) -> Result<Option<String>, CredentialsError> {
        let Some(raw) = self.top.get("credHelpers") else {
            return Ok(None);
        };
        let helpers = parse_object(&self.path, raw.get(), "`credHelpers` must be an object")?;
        let Some(found) = find_key(&helpers, key) else {
            return Ok(None);
        };
        match helpers.get(found).map(|raw| self.value(raw)).transpose()? {
            Some(Value::String(name)) if !name.is_empty() => Ok(Some(name)),
            Some(Value::String(_) | Value::Null) | None => Ok(None),
            Some(_) => Err(self.shape(format!("`credHelpers.{found}` must be a string"))),
        }
    }

    /// The credential that `auths` holds for `key`: `identitytoken` first, then
    /// `auth`, then `username`/`password`. An entry without any (docker's `{}`
    /// marker for "a helper has it") is `None`.
    pub(crate) fn auth_entry(&self, key: &str) -> Result<Option<Credential>, CredentialsError> {
        let auths = self.auths()?;
        let Some(found) = find_key(&auths, key) else {
            return Ok(None);
        };
        let Some(raw) = auths.get(found) else {
            return Ok(None);
        };
        let Value::Object(entry) = self.value(raw)? else {
            return Err(self.shape(format!("`auths.{found}` must be an object")));
        };
        let field = |name: &str| -> Result<Option<String>, CredentialsError> {
            match entry.get(name) {
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(Value::String(_) | Value::Null) | None => Ok(None),
                Some(_) => Err(self.shape(format!("`auths.{found}.{name}` must be a string"))),
            }
        };
        if let Some(token) = field("identitytoken")? {
            return Ok(Some(Credential::IdentityToken(token)));
        }
        if let Some(auth) = field("auth")? {
            let bad = || {
                self.shape(format!(
                    "`auths.{found}.auth` is not base64 of `user:password`"
                ))
            };
            let decoded = BASE64.decode(auth.trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
            if username.is_empty() || password.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Credential::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            }));
        }
        match (field("username")?, field("password")?) {
            (Some(username), Some(password)) => Ok(Some(Credential::Basic { username, password })),
            _ => Ok(None),
        }
    }

    /// Every key of `auths`, in file order.
    pub(crate) fn auth_keys(&self) -> Result<Vec<String>, CredentialsError> {
        Ok(self.auths()?.into_keys().collect())
    }

    /// Whether `auths` has an entry (in any spelling) for `key`'s registry.
    pub(crate) fn has_auth(&self, key: &str) -> Result<bool, CredentialsError> {
        Ok(find_key(&self.auths()?, key).is_some())
    }

    /// Replaces the entries for `key`'s registry (in every spelling) with one
    /// entry under `key` holding `credential`, or removes them when `None`.
    /// Other entries and keys are not touched.
    pub(crate) fn set_auth(
        &mut self,
        key: &str,
        credential: Option<&Credential>,
    ) -> Result<(), CredentialsError> {
        let wanted = normalize_key(key);
        let is_alias = |candidate: &str| {
            candidate == key || (wanted.is_some() && normalize_key(candidate) == wanted)
        };
        let original = self.auths()?;
        // The first alias's index among the entries that stay: the new entry goes there.
        let position = original.keys().position(|candidate| is_alias(candidate));
        let mut auths: IndexMap<String, Box<RawValue>> = original
            .into_iter()
            .filter(|(candidate, _)| !is_alias(candidate))
            .collect();
        if let Some(credential) = credential {
            let entry = match credential {
                Credential::Basic { username, password } => {
                    serde_json::json!({ "auth": BASE64.encode(format!("{username}:{password}")) })
                }
                // `auth` too, as docker writes it (`user:`, no password):
                // containers/image (skopeo, podman) skips an entry whose
                // `auth` does not decode, `identitytoken` or not. The user
                // is `<token>`, the credential helpers' mark for one.
                Credential::IdentityToken(token) => serde_json::json!({
                    "auth": BASE64.encode(format!("{IDENTITY_TOKEN_USER}:")),
                    "identitytoken": token,
                }),
            };
            let raw = pretty_entry(&entry)
                .ok_or_else(|| self.shape("cannot encode the new `auths` entry"))?;
            let at = position.unwrap_or(auths.len()).min(auths.len());
            auths.shift_insert(at, key.to_owned(), raw);
        }
        self.new_auths = Some(auths);
        Ok(())
    }

    /// Writes the file atomically with mode 0600, creating its directory (0700).
    /// A symbolic link is followed, so the file it points to is replaced.
    pub(crate) fn write(&self) -> Result<(), CredentialsError> {
        let write_error = |path: &Path| {
            let path = path.to_owned();
            move |source| CredentialsError::Write { path, source }
        };
        let target = match fs::canonicalize(&self.path) {
            Ok(resolved) => resolved,
            Err(err) if err.kind() == io::ErrorKind::NotFound => self.path.clone(),
            Err(source) => {
                return Err(CredentialsError::Write {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        create_private_dir(&dir).map_err(write_error(&dir))?;
        let text = self.to_pretty_json().map_err(write_error(&target))?;

        let file_name = target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.json".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let temp = dir.join(format!(".{file_name}.{}.{nanos}.tmp", std::process::id()));
        let result =
            write_private_file(&temp, text.as_bytes()).and_then(|()| fs::rename(&temp, &target));
        if let Err(source) = result {
            let _ = fs::remove_file(&temp);
            return Err(CredentialsError::Write {
                path: target,
                source,
            });
        }
        // Make the rename durable; a failure here loses nothing already written.
        if let Ok(dir) = fs::File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// The file as docker writes it: tab-indented, with a final newline. Raw
    /// fragments keep their original bytes.
    fn to_pretty_json(&self) -> io::Result<String> {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
        let mut top: IndexMap<&str, Node<'_>> = self
            .top
            .iter()
            .map(|(key, raw)| (key.as_str(), Node::Raw(raw)))
            .collect();
        if let Some(auths) = &self.new_auths {
            match top.get_mut("auths") {
                Some(node) => *node = Node::Map(auths),
                // Docker puts `auths` first.
                None => {
                    top.shift_insert(0, "auths", Node::Map(auths));
                }
            }
        }
        top.serialize(&mut serializer).map_err(io::Error::other)?;
        out.push(b'\n');
        String::from_utf8(out).map_err(io::Error::other)
    }

    fn auths(&self) -> Result<IndexMap<String, Box<RawValue>>, CredentialsError> {
        if let Some(auths) = &self.new_auths {
            return Ok(auths.clone());
        }
        match self.top.get("auths") {
            Some(raw) if raw.get().trim() != "null" => {
                parse_object(&self.path, raw.get(), "`auths` must be an object")
            }
            _ => Ok(IndexMap::new()),
        }
    }

    fn value(&self, raw: &RawValue) -> Result<Value, CredentialsError> {
        serde_json::from_str(raw.get()).map_err(|err| json_error(&self.path, &err))
    }

    fn shape(&self, what: impl Into<String>) -> CredentialsError {
        CredentialsError::Shape {
            path: self.path.clone(),
            what: what.into(),
        }
    }
}

/// Parses a JSON object into raw fragments, in order. Serde's own message is
/// dropped: for a type error it can quote the value, which may be a secret.
fn parse_object(
    path: &Path,
    text: &str,
    not_object: &str,
) -> Result<IndexMap<String, Box<RawValue>>, CredentialsError> {
    serde_json::from_str(text).map_err(|err| {
        if err.is_data() {
            CredentialsError::Shape {
                path: path.to_owned(),
                what: not_object.to_owned(),
            }
        } else {
            json_error(path, &err)
        }
    })
}

fn json_error(path: &Path, err: &serde_json::Error) -> CredentialsError {
    CredentialsError::Json {
        path: path.to_owned(),
        line: err.line(),
        column: err.column(),
    }
}

/// A new `auths` entry, pretty-printed for its place two levels deep.
fn pretty_entry(entry: &Value) -> Option<Box<RawValue>> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    entry
        .serialize(&mut serde_json::Serializer::with_formatter(
            &mut out, formatter,
        ))
        .ok()?;
    let text = String::from_utf8(out).ok()?.replace('\n', "\n\t\t");
    RawValue::from_string(text).ok()
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // The umask can only remove bits; set exactly 0600 whatever it is.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}
