//! The docker-credential-helpers protocol.
//!
//! A helper is a program `docker-credential-<name>` on `PATH`, run once per
//! action with the action as its only argument:
//!
//! ```text
//! get    stdin: <server URL>                                     stdout: {"ServerURL","Username","Secret"}
//! store  stdin: {"ServerURL":..,"Username":..,"Secret":..}       stdout: nothing
//! erase  stdin: <server URL>                                     stdout: nothing
//! list   stdin: nothing                                          stdout: {"<server URL>": "<username>", ...}
//! ```
//!
//! A failure exits non-zero with a message on stdout (or stderr); the message
//! `credentials not found in native keychain` means "nothing stored", which
//! `get` answers as `None` and `erase` as success. The username `<token>` marks
//! `Secret` as an identity (OAuth2 refresh) token.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::Credential;
use super::error::CredentialsError;

/// The username with which helpers mark `Secret` as an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// The longest helper message quoted in an error.
const MAX_MESSAGE: usize = 300;

/// One helper program, as configured in one file.
#[derive(Debug)]
pub(crate) struct Helper {
    program: String,
    /// The file whose `credsStore`/`credHelpers` names this helper, for errors.
    config: PathBuf,
    /// The `PATH` to find the program on; the process's own when `None`.
    search_path: Option<OsString>,
}

impl Helper {
    /// The helper `docker-credential-<name>` configured in `config`.
    pub(crate) fn new(
        name: &str,
        config: &Path,
        search_path: Option<&OsString>,
    ) -> Result<Self, CredentialsError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(CredentialsError::HelperName {
                config: config.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(Self {
            program: format!("docker-credential-{name}"),
            config: config.to_owned(),
            search_path: search_path.cloned(),
        })
    }

    /// The program's name, `docker-credential-<name>`.
    pub(crate) fn program(&self) -> &str {
        &self.program
    }

    /// The file that configures this helper.
    pub(crate) fn config(&self) -> &Path {
        &self.config
    }

    /// The credential stored for `server_url`, if any.
    pub(crate) fn get(&self, server_url: &str) -> Result<Option<Credential>, CredentialsError> {
        let output = self.run("get", server_url.as_bytes())?;
        if !output.status.success() {
            if not_found(&output) {
                return Ok(None);
            }
            return Err(self.failed("get", &output, None));
        }
        let bad = |what: &str| CredentialsError::HelperOutput {
            program: self.program.clone(),
            config: self.config.clone(),
            action: "get",
            what: what.to_owned(),
        };
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(&output.stdout) else {
            return Err(bad("output that is not a JSON object"));
        };
        let field = |name: &str| match answer.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Ok(String::new()),
            Some(_) => Err(bad(&format!("a `{name}` that is not a string"))),
        };
        let (username, secret) = (field("Username")?, field("Secret")?);
        if secret.is_empty() {
            return Ok(None);
        }
        if username == TOKEN_USERNAME {
            return Ok(Some(Credential::IdentityToken(secret)));
        }
        Ok(Some(Credential::Basic {
            username,
            password: secret,
        }))
    }

    /// Stores `credential` for `server_url`.
    pub(crate) fn store(
        &self,
        server_url: &str,
        credential: &Credential,
    ) -> Result<(), CredentialsError> {
        let (username, secret) = match credential {
            Credential::Basic { username, password } => (username.as_str(), password.as_str()),
            Credential::IdentityToken(token) => (TOKEN_USERNAME, token.as_str()),
        };
        let input = serde_json::json!({
            "ServerURL": server_url,
            "Username": username,
            "Secret": secret,
        })
        .to_string();
        let output = self.run("store", input.as_bytes())?;
        if !output.status.success() {
            return Err(self.failed("store", &output, Some(secret)));
        }
        Ok(())
    }

    /// Erases what is stored for `server_url`; nothing stored is not an error.
    pub(crate) fn erase(&self, server_url: &str) -> Result<(), CredentialsError> {
        let output = self.run("erase", server_url.as_bytes())?;
        if !output.status.success() && !not_found(&output) {
            return Err(self.failed("erase", &output, None));
        }
        Ok(())
    }

    /// The server URLs the helper holds credentials for.
    pub(crate) fn list(&self) -> Result<Vec<String>, CredentialsError> {
        let output = self.run("list", b"")?;
        if !output.status.success() {
            return Err(self.failed("list", &output, None));
        }
        match serde_json::from_slice::<Value>(&output.stdout) {
            Ok(Value::Object(map)) => Ok(map.into_iter().map(|(url, _)| url).collect()),
            _ => Err(CredentialsError::HelperOutput {
                program: self.program.clone(),
                config: self.config.clone(),
                action: "list",
                what: "output that is not a JSON object".to_owned(),
            }),
        }
    }

    fn run(&self, action: &'static str, input: &[u8]) -> Result<Output, CredentialsError> {
        let spawn_error = |source| CredentialsError::HelperSpawn {
            program: self.program.clone(),
            config: self.config.clone(),
            source,
        };
        let mut command = Command::new(&self.program);
        command
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = &self.search_path {
            // On Unix the child's PATH is also where the program is looked up.
            command.env("PATH", path);
        }
        let mut child = spawn(&mut command).map_err(spawn_error)?;
        if let Some(mut stdin) = child.stdin.take() {
            // The input is far below a pipe's buffer, so this cannot block on
            // unread output. A helper that exits without reading is no error here.
            match stdin.write_all(input) {
                Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(spawn_error(err));
                }
                _ => {}
            }
        }
        child.wait_with_output().map_err(spawn_error)
    }

    fn failed(
        &self,
        action: &'static str,
        output: &Output,
        secret: Option<&str>,
    ) -> CredentialsError {
        let mut message = message(output);
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            message = message.replace(secret, "<redacted>");
        }
        if message.chars().count() > MAX_MESSAGE {
            message = message.chars().take(MAX_MESSAGE).collect::<String>() + "...";
        }
        if message.is_empty() {
            message = "no message".to_owned();
        }
        CredentialsError::HelperFailed {
            program: self.program.clone(),
            config: self.config.clone(),
            action,
            status: output.status.to_string(),
            message,
        }
    }
}

/// Spawns `command`, retrying briefly on `ETXTBSY`: Linux refuses to run a
/// program while any process holds it open for writing, which happens for a
/// moment after a helper is installed (or while another thread forks).
fn spawn(command: &mut Command) -> io::Result<std::process::Child> {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Err(err) if err.kind() == io::ErrorKind::ExecutableFileBusy && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// What a failed helper said: stdout by the protocol, else stderr, on one line.
fn message(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = if stdout.trim().is_empty() {
        stderr
    } else {
        stdout
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a failed helper said it holds nothing for the URL.
fn not_found(output: &Output) -> bool {
    message(output)
        .to_ascii_lowercase()
        .contains("credentials not found")
}
