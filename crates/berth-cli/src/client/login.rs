//! `berth login REGISTRY`: verify a credential against the registry's token
//! service, then store it.
//!
//! As `docker login` does, a registry that uses bearer tokens is asked for a
//! refresh token (`offline_token=true`), and the refresh token is stored
//! instead of the password when it is given and works: it can be revoked on
//! its own, and it expires. It is kept in berth's own login file, not in
//! docker's config: podman and skopeo refuse to log in to a registry while a
//! file they read holds an identity token. `--store-password` keeps the
//! password instead, where docker keeps it (its credential helper, else its
//! config.json), so that docker, podman and skopeo use it too. The account
//! and admin commands use either: the API takes a refresh token as a bearer
//! token.
//!
//! `--oidc` logs a CI job in with its OpenID Connect ID token instead
//! (`login/oidc.rs`).

mod oidc;

use std::io::{IsTerminal, Read};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use berth_client::auth::{AuthError, AuthorizationKind, Event, GrantKind, Observer};
use berth_client::client::{ClientError, RegistryClient};
use berth_client::credentials::{Credential, CredentialStore};
use clap::Args;

use super::{Common, block_on, parse_registry, print_out};

/// Log in to a registry: check the credential, then store it.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  berth login registry.example.com -u alice              # prompts for the password
  printf '%s\\n' \"$TOKEN\" | berth login ghcr.io -u alice --password-stdin
  berth login registry.example.com -u admin --store-password   # for docker, podman, skopeo
  berth login --oidc registry.example.com                # in a CI job: its ID token

The password is checked first: berth asks the registry's token service for a
token with it, and stores nothing when it is refused. Then, where the registry
uses bearer tokens and offers one (berth does, for a password login; not for a
personal access token), berth asks for a refresh token (an \"offline token\")
and stores it instead of the password, as docker does: later commands use the
OAuth2 refresh-token grant with it. It stops working when it expires (berth:
after 90 days) or the registry revokes it; then log in again. `berth logout`
removes it from this machine (it does not revoke it).
--store-password stores the password instead. `berth token`, `berth password`,
`berth org`, `berth robot`, `berth repo` and `berth admin` use either.

Where it is stored: a refresh token in berth's own login file,
$XDG_CONFIG_HOME/berth/auth.json (default ~/.config/berth/auth.json, mode
0600), which only berth reads: docker, podman and skopeo do not see it, and
podman's and skopeo's own logins keep working (they refuse to log in while a
file they read holds a refresh token). A password (--store-password, or a
registry that gives no refresh token) goes where docker keeps it: the
credential helper docker's config.json names (credHelpers, credsStore), else
the `auths` of $DOCKER_CONFIG/config.json (mode 0600), which docker, podman and
skopeo all read. So: for docker, podman or skopeo to pull with this login, use
--store-password (or log in with them). The password is never taken from a
flag.

In a CI job, --oidc logs in with the job's OpenID Connect ID token (workload
identity: no secret to store in the CI), where a trust rule of the registry
accepts it (`berth trust add`). The ID token comes from, in order:
--id-token-file FILE; the variable BERTH_ID_TOKEN (GitLab CI: `id_tokens:
BERTH_ID_TOKEN: aud: registry.example.com`); GitHub Actions' ID token request
(ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN, set for a job
with `permissions: id-token: write`), asked for the audience --audience, by
default the registry as given (host[:port], berth's service name; when the
registry names another service, --audience is needed). berth trades it at the registry's token
service (the RFC 8693 token exchange), shows who the registry says the job is
and until when, and stores the ID token as the password of the user `oidc`
where docker keeps passwords, as `docker login -u oidc -p \"$ID_TOKEN\"`
does: berth, docker, podman and skopeo then use it. ID tokens live minutes:
log in again when one expires. The ID token is never printed, nor in the -v
trace.

Exit codes: 0 success, 1 failure (the message says what to do), 2 usage error.")]
pub struct LoginArgs {
    /// The registry, as host[:port] (`docker.io` for Docker Hub).
    #[arg(value_name = "REGISTRY")]
    registry: String,

    /// The user name (prompted for on a terminal when not given).
    ///
    /// With --password-stdin it is required, as stdin holds the password.
    #[arg(short, long, value_name = "USER")]
    username: Option<String>,

    /// Read the password (or access token) from stdin.
    ///
    /// The whole of stdin is read; one trailing newline is dropped. Without
    /// this flag the password is prompted for on the terminal, without echo.
    #[arg(long)]
    password_stdin: bool,

    /// Store the password (where docker, podman and skopeo read it), not a
    /// refresh token.
    ///
    /// By default a registry that offers a refresh token (an OAuth2 offline
    /// token) gets it stored in place of the password, in berth's own login
    /// file, which other tools do not read: docker, podman and skopeo use
    /// berth's login only when it is the password.
    #[arg(long)]
    store_password: bool,

    /// Log in as a CI job, with its OpenID Connect ID token.
    ///
    /// The ID token comes from --id-token-file, else BERTH_ID_TOKEN (GitLab
    /// CI's `id_tokens:`), else GitHub Actions' ID token request (the job
    /// needs `permissions: id-token: write`). The registry's token service
    /// checks it against its trust rules (`berth trust`); it is then stored
    /// as the password of the user `oidc`, where docker, podman and skopeo
    /// read it too.
    #[arg(long, conflicts_with_all = ["username", "password_stdin"])]
    oidc: bool,

    /// Read the ID token from FILE (with --oidc).
    ///
    /// White space around it is dropped. It is sent only to the registry's
    /// token service.
    #[arg(long, value_name = "FILE", requires = "oidc")]
    id_token_file: Option<std::path::PathBuf>,

    /// The audience to ask GitHub Actions' ID token for (with --oidc)
    /// [default: the registry as given, host[:port]].
    ///
    /// The `aud` the registry's trust rule expects: by default its service
    /// name (for berth, the host[:port] of its public URL). When the
    /// registry's challenge names a service other than the host given, berth
    /// asks for this flag rather than trust the registry's word: a registry
    /// naming another registry's service would get an ID token that works
    /// there. An ID token from a file or BERTH_ID_TOKEN carries the audience
    /// it was made for.
    #[arg(long, value_name = "AUD", requires = "oidc")]
    audience: Option<String>,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth login`.
pub fn run(args: LoginArgs) -> anyhow::Result<()> {
    // Resolved before any I/O: a bad registry fails before a prompt.
    let registry = parse_registry(&args.registry)?;
    if args.oidc {
        return oidc::run(
            &registry,
            args.id_token_file.as_deref(),
            args.audience.as_deref(),
            &args.common,
        );
    }
    let key = registry.credential_key();
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) if !u.is_empty() => u,
        _ if args.password_stdin || !interactive => {
            bail!("no user name: give it with -u USER (stdin is not a terminal to ask on)")
        }
        _ => {
            eprint!("Username: ");
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the user name")?;
            line.trim().to_owned()
        }
    };
    if username.is_empty() {
        bail!("the user name is empty; give it with -u USER");
    }
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from stdin")?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        text.strip_suffix('\r').unwrap_or(text).to_owned()
    } else if interactive {
        rpassword::prompt_password(format!("Password for {username}@{key}: "))
            .context("cannot read the password from the terminal")?
    } else {
        bail!(
            "stdin is not a terminal: pass the password on stdin with --password-stdin \
             (it is never taken from a flag)"
        );
    };
    if password.is_empty() {
        bail!("the password is empty; nothing stored");
    }
    let credential = Credential::Basic {
        username: username.clone(),
        password,
    };

    // Did the registry ask for the credential at all? (An open registry
    // does not, and then nothing could be verified.)
    let presented = Arc::new(Mutex::new(false));
    let seen = presented.clone();
    let mut options = args.common.options(&registry)?;
    let inner = options.observer.take();
    options.observer = Some(Observer::new(move |event: &Event| {
        let used = matches!(
            event,
            Event::TokenRequest {
                grant: GrantKind::Basic | GrantKind::Password,
                ..
            } | Event::Request {
                authorization: AuthorizationKind::Basic,
                ..
            }
        );
        if used {
            *seen.lock().unwrap_or_else(PoisonError::into_inner) = true;
        }
        if let Some(inner) = &inner {
            inner.emit(event);
        }
    }));
    let client = RegistryClient::new(registry.clone(), Some(credential.clone()), options)
        .with_context(|| format!("cannot set up a client for {registry}"))?;
    let presented = move || *presented.lock().unwrap_or_else(PoisonError::into_inner);
    // One runtime for every request: the client's connections belong to it.
    let (pinged, refresh) = block_on(async {
        let pinged = client.ping().await;
        let refresh = if pinged.is_ok() && presented() && !args.store_password {
            refresh_token(&client, &args.common).await
        } else {
            None
        };
        (pinged, refresh)
    })?;
    match pinged {
        Ok(_) => {}
        Err(ClientError::Auth(AuthError::BadCredentials { realm, .. })) => bail!(
            "login to {registry} failed: the token service {realm} refused the user name or \
             password of {username} (401); nothing stored. Check them (a personal access token \
             is used as the password)"
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!("cannot verify the credential against {registry}; nothing stored")
            });
        }
    }
    if !presented() {
        eprintln!(
            "note: {registry} did not ask for credentials (an open registry?); stored without \
             verification"
        );
    }
    let stored = refresh.as_ref().unwrap_or(&credential);
    let store = CredentialStore::from_env();
    let source = store
        .store(&key, stored)
        .with_context(|| format!("cannot store the credential for {key}"))?;
    if refresh.is_some() {
        eprintln!(
            "note: stored a refresh token, not the password, in berth's own login file: docker, \
             podman and skopeo do not use it (for them, log in with --store-password, or with \
             their own login)"
        );
    }
    if let Some(winner) = store.source(&key)
        && winner != source.to_string()
    {
        eprintln!("note: {winner} also holds a credential for {key}, and it is used first");
    }
    print_out(&format!(
        "logged in to {registry} as {username}; credential stored in {source}\n"
    ))
}

/// A refresh token for the verified password, when the registry uses bearer
/// tokens and gives one that works: it is tried (the OAuth2 refresh-token
/// grant, then `/v2/`) before it replaces the password, since a registry may
/// issue refresh tokens by `GET` without taking them back by `POST`. Any
/// failure keeps the password, which was verified.
async fn refresh_token(client: &RegistryClient, common: &Common) -> Option<Credential> {
    let token = match client.transport().offline_token().await {
        Ok(token) => token?,
        Err(e) => {
            tracing::debug!(error = %e, "no refresh token; the password is stored");
            return None;
        }
    };
    let registry = client.registry().clone();
    let check = match common
        .options(&registry)
        .map_err(|e| e.to_string())
        .and_then(|options| {
            RegistryClient::new(registry, Some(token.clone()), options).map_err(|e| e.to_string())
        }) {
        Ok(check) => check,
        Err(e) => {
            tracing::debug!(error = %e, "cannot check the refresh token; the password is stored");
            return None;
        }
    };
    match check.ping().await {
        Ok(_) => Some(token),
        Err(e) => {
            eprintln!(
                "note: {} gave a refresh token that does not work ({e}); stored the password",
                client.registry()
            );
            None
        }
    }
}
