//! `berth auth explain REF`: the whole authentication flow, step by step,
//! as the transport lives it (through its observer): challenges, scopes and
//! why, the credential's source (never the secret), the token request, the
//! grant and where its expiry comes from.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::Context;
use berth_client::auth::{Event, ExpirySource, OIDC_USERNAME, Observer, Operation, Reply, Request};
use berth_client::client::RegistryClient;
use berth_client::credentials::{Credential, CredentialStore};
use berth_core::reference::Registry;
use berth_core::token::format_rfc3339;
use berth_core::{Digest, Reference};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::tags::parse_reference;
use super::{
    Common, Output, authorization, block_on, bold, color, grant, json_text, or_none,
    parse_registry, unix,
};

/// Understand how a registry authenticates.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Show the authentication flow for an operation, step by step.
    #[command(after_help = "\
Examples:
  berth auth explain registry.example.com/acme/app:1.0
  berth auth explain ghcr.io/acme/app --push
  berth auth explain 127.0.0.1:5000 --catalog

Steps: the credential's source (never the secret); GET /v2/ and each challenge
(scheme, realm, service, scope, error); then the operation's request on a fresh
connection: the scope computed (the challenge's scope is only a hint, kept when
it names the operation's repository), the token request (endpoint, method,
grant), the grant received (JWT claims iss, sub, aud, exp, access when the
token is a JWT) and its expiry with its source (JWT exp, issued_at +
expires_in, or receipt + expires_in with 60 s by default).

Nothing is changed: a pull is a HEAD of the manifest, a push a GET of the tag
list under a push token, a delete a DELETE of a digest that cannot exist, the
catalog a GET of one entry. Tokens and passwords are never printed.

With --output json the same facts come as one object, for scripts.

Exit codes: 0 success (the operation's answer is shown, even a refusal), 1
failure to reach the registry or its token service, 2 usage error.")]
    Explain(ExplainArgs),
}

/// `berth auth explain` arguments.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The image, as [host[:port]/]name[:tag] (with --catalog: the registry).
    #[arg(value_name = "REF")]
    reference: String,

    /// Explain a push (scope `pull,push`).
    #[arg(long, group = "operation")]
    push: bool,

    /// Explain a delete (scope `delete`).
    #[arg(long, group = "operation")]
    delete: bool,

    /// Explain listing the catalog (scope `registry:catalog:*`).
    #[arg(long, group = "operation")]
    catalog: bool,

    /// Output format: the numbered steps, or one JSON object with the same
    /// facts (`credential`, `ping`, `operation`, each step's `events`).
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    output: Output,

    #[command(flatten)]
    common: Common,
}

/// Runs `berth auth ...`.
pub fn run(command: AuthCommand) -> anyhow::Result<()> {
    match command {
        AuthCommand::Explain(args) => explain(args),
    }
}

/// What the operation's probe is.
enum Probe {
    Pull(Reference),
    Push(Reference),
    Delete(Reference),
    Catalog,
}

fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let (registry, probe) = if args.catalog {
        let host = args.reference.split('/').next().unwrap_or_default();
        (parse_registry(host)?, Probe::Catalog)
    } else {
        let reference = parse_reference(&args.reference)?;
        let registry = reference.registry().clone();
        let probe = if args.push {
            Probe::Push(reference)
        } else if args.delete {
            Probe::Delete(reference)
        } else {
            Probe::Pull(reference)
        };
        (registry, probe)
    };
    let color = color();
    let mut out = String::new();
    let key = registry.credential_key();
    let store = CredentialStore::from_env();
    let credential = store
        .lookup(&key)
        .with_context(|| format!("cannot read the stored credentials for {key}"))?;

    let _ = writeln!(out, "{}", bold(&format!("1. Credential for {key}"), color));
    let mut report = json!({ "registry": registry.to_string(), "credentialKey": key });
    match (&credential, store.source(&key)) {
        (Some(c), Some(source)) => {
            let who = match c {
                Credential::Basic { username, .. } if username == OIDC_USERNAME => {
                    format!("user {username}, a CI job's ID token as the password")
                }
                Credential::Basic { username, .. } => format!("user {username}, password"),
                Credential::IdentityToken(_) => "an identity (refresh) token".to_owned(),
            };
            let _ = writeln!(out, "   {who} from {source} (secret not shown)");
            report["credential"] = match c {
                Credential::Basic { username, .. } => {
                    json!({ "kind": "password", "username": username, "source": source.to_string() })
                }
                Credential::IdentityToken(_) => {
                    json!({ "kind": "identity-token", "source": source.to_string() })
                }
            };
        }
        _ => {
            report["credential"] = Value::Null;
            let _ = writeln!(
                out,
                "   none found (BERTH_USERNAME/BERTH_PASSWORD, podman auth.json, docker config.json): \
                 anonymous, so only pull can be asked"
            );
        }
    }

    let events = Arc::new(Mutex::new(Vec::new()));
    let client = |registry: &Registry| -> anyhow::Result<RegistryClient> {
        let sink = events.clone();
        let mut options = args.common.options(registry)?;
        let verbose = options.observer.take();
        options.observer = Some(Observer::new(move |event: &Event| {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(event.clone());
            if let Some(v) = &verbose {
                v.emit(event);
            }
        }));
        RegistryClient::new(registry.clone(), credential.clone(), options)
            .with_context(|| format!("cannot set up a client for {registry}"))
    };
    let take = || std::mem::take(&mut *events.lock().unwrap_or_else(PoisonError::into_inner));

    let _ = writeln!(out, "\n{}", bold("2. Ping: GET /v2/", color));
    let ping = block_on(client(&registry)?.ping())?;
    let events = take();
    describe(&mut out, &events);
    let result = match &ping {
        Ok(p) if p.checked => "the registry accepts this client at /v2/".to_owned(),
        Ok(_) => "the token service grants nothing without a repository (as GHCR); \
                  /v2/ checked only as far as its challenge"
            .to_owned(),
        Err(e) => e.to_string(),
    };
    let _ = writeln!(out, "   result: {result}");
    report["ping"] = json!({
        "checked": ping.as_ref().is_ok_and(|p| p.checked),
        "result": result,
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    });

    let (title, operation, request) = probe_request(&registry, &probe)?;
    let _ = writeln!(
        out,
        "\n{}",
        bold(
            &format!("3. {title} (a fresh connection, so the registry's challenge shows)"),
            color
        )
    );
    let probe_client = client(&registry)?;
    let request = request(&probe_client)?;
    let reply = block_on(probe_client.transport().send(&operation, &request))?;
    let events = take();
    describe(&mut out, &events);
    let (failed, status, result) = match reply {
        Ok(Reply::Success(response)) => (
            false,
            Some(response.status().as_u16()),
            format!("{} (allowed)", response.status()),
        ),
        Ok(Reply::Failure(failure)) => {
            let note = match (&probe, failure.status.as_u16()) {
                (Probe::Delete(_), 404) => "; the delete token was accepted, the digest is unknown",
                (_, 401 | 403) => "; the grant does not cover the operation",
                _ => "",
            };
            (
                false,
                Some(failure.status.as_u16()),
                format!("{}{note}", failure.message()),
            )
        }
        Err(e) => (true, None, e.to_string()),
    };
    let _ = writeln!(out, "   result: {result}");
    report["operation"] = json!({
        "title": title,
        "status": status,
        "result": result,
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    });
    match args.output {
        Output::Text => super::print_out(&out)?,
        Output::Json => super::print_out(&json_text(&report))?,
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

type MakeRequest = Box<dyn Fn(&RegistryClient) -> anyhow::Result<Request>>;

/// The probe's title, operation and request (none changes anything).
fn probe_request(
    registry: &Registry,
    probe: &Probe,
) -> anyhow::Result<(String, Operation, MakeRequest)> {
    let url = |path: String| {
        move |client: &RegistryClient| -> anyhow::Result<Request> {
            Ok(Request::new(Method::GET, client.transport().url(&path)?))
        }
    };
    Ok(match probe {
        Probe::Pull(r) => {
            let path = format!("/v2/{}/manifests/{}", r.repository(), r.tag_or_digest());
            (
                format!("Pull {r}: HEAD {path}"),
                Operation::Pull(r.repository().clone()),
                Box::new(move |client: &RegistryClient| {
                    let accept = berth_client::client::MANIFEST_ACCEPT.join(", ");
                    Ok(
                        Request::new(Method::HEAD, client.transport().url(&path)?).header(
                            reqwest::header::ACCEPT,
                            reqwest::header::HeaderValue::from_str(&accept)?,
                        ),
                    )
                }),
            )
        }
        Probe::Push(r) => {
            let path = format!("/v2/{}/tags/list", r.repository());
            (
                format!(
                    "Push to {}/{}: GET {path} under a push token",
                    registry,
                    r.repository()
                ),
                Operation::Push(r.repository().clone(), None),
                Box::new(url(path)),
            )
        }
        Probe::Delete(r) => {
            let zero = Digest::parse(&format!("sha256:{}", "0".repeat(64)))?;
            let path = format!("/v2/{}/manifests/{zero}", r.repository());
            (
                format!(
                    "Delete in {}/{}: DELETE {path} (a digest that cannot exist)",
                    registry,
                    r.repository()
                ),
                Operation::Delete(r.repository().clone()),
                Box::new(move |client: &RegistryClient| {
                    Ok(Request::new(Method::DELETE, client.transport().url(&path)?))
                }),
            )
        }
        Probe::Catalog => (
            format!("Catalog of {registry}: GET /v2/_catalog?n=1"),
            Operation::Catalog,
            Box::new(url("/v2/_catalog?n=1".to_owned())),
        ),
    })
}

/// The events of one step, explained.
fn describe(out: &mut String, events: &[Event]) {
    for event in events {
        match event {
            Event::Request {
                method,
                url,
                authorization: kind,
            } => {
                let _ = writeln!(out, "   > {method} {url} ({})", authorization(*kind));
            }
            Event::Response { status, .. } => {
                let _ = writeln!(out, "   < {status}");
            }
            Event::Challenges(challenges) => {
                for c in challenges.iter() {
                    let p = |name: &str| c.param(name).unwrap_or("-").to_owned();
                    let _ = writeln!(
                        out,
                        "     challenge: scheme={} realm={} service={} scope={} error={}",
                        c.scheme(),
                        p("realm"),
                        p("service"),
                        p("scope"),
                        p("error")
                    );
                }
            }
            Event::Scopes {
                operation,
                needed,
                hint,
                kept,
                anonymous,
                requested,
            } => {
                let _ = writeln!(
                    out,
                    "     scope: the operation {} needs {}",
                    operation_name(operation),
                    or_none(needed)
                );
                if !hint.is_empty() {
                    let verdict = if kept.is_empty() {
                        "dropped: it names no repository of the operation (a placeholder such \
                         as GHCR's is never trusted)"
                            .to_owned()
                    } else if *kept == *hint {
                        "kept: it names the operation's repository".to_owned()
                    } else {
                        format!("partly kept ({kept}): only what names the operation's repository")
                    };
                    let _ = writeln!(out, "     challenge scope hint {hint}: {verdict}");
                }
                if *anonymous {
                    let _ = writeln!(out, "     anonymous: repository scopes reduced to pull");
                }
                let _ = writeln!(out, "     scope requested: {}", or_none(requested));
            }
            Event::TokenRequest {
                realm,
                method,
                grant: kind,
                service,
                scopes,
            } => {
                let _ = writeln!(
                    out,
                    "     token endpoint: {method} {realm} ({}), service={} scope={}",
                    grant(*kind),
                    service.as_deref().unwrap_or("-"),
                    or_none(scopes)
                );
            }
            Event::TokenReceived {
                claims,
                granted,
                expires_in,
                expires_at,
                lifetime,
                expiry,
            } => token_received(
                out,
                claims.as_ref(),
                granted.as_ref(),
                *expires_in,
                *expires_at,
                lifetime.as_secs(),
                *expiry,
            ),
        }
    }
}

fn token_received(
    out: &mut String,
    claims: Option<&Value>,
    granted: Option<&berth_core::Scopes>,
    expires_in: Option<u64>,
    expires_at: SystemTime,
    lifetime: u64,
    expiry: ExpirySource,
) {
    let _ = writeln!(
        out,
        "     grant: {}",
        granted.map_or("(not stated by the token service)".to_owned(), or_none)
    );
    match claims {
        Some(c) => {
            let s = |name: &str| match &c[name] {
                Value::Null => "-".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let exp = c["exp"]
                .as_i64()
                .map_or("-".to_owned(), |e| format!("{e} ({})", format_rfc3339(e)));
            let _ = writeln!(
                out,
                "     JWT claims (unverified): iss={} sub={} aud={} exp={exp} access={}",
                s("iss"),
                s("sub"),
                s("aud"),
                c["access"]
            );
        }
        None => {
            let _ = writeln!(
                out,
                "     the token is opaque (not a JWT): no claims to show"
            );
        }
    }
    let expires_in = match expires_in {
        Some(n) => format!("expires_in {n} s"),
        None => "no expires_in sent: the default 60 s".to_owned(),
    };
    let source = match expiry {
        ExpirySource::JwtExp => "the JWT's exp claim".to_owned(),
        ExpirySource::IssuedAt => format!("issued_at + {expires_in}"),
        ExpirySource::Received => format!("time of receipt + {expires_in}"),
    };
    let at = unix(expires_at);
    let _ = writeln!(
        out,
        "     expiry: {} (valid {lifetime} s), from {source}; refreshed {} s before",
        format_rfc3339(at),
        (lifetime / 10).max(5)
    );
}

/// One event as JSON: the same facts as the text, no secret.
fn event_json(event: &Event) -> Value {
    match event {
        Event::Request {
            method,
            url,
            authorization: kind,
        } => json!({
            "event": "request", "method": method.as_str(), "url": url,
            "authorization": authorization(*kind),
        }),
        Event::Response { status, url } => {
            json!({ "event": "response", "status": status, "url": url })
        }
        Event::Challenges(challenges) => json!({
            "event": "challenges",
            "challenges": challenges.iter().map(|c| json!({
                "scheme": c.scheme(),
                "realm": c.param("realm"),
                "service": c.param("service"),
                "scope": c.param("scope"),
                "error": c.param("error"),
            })).collect::<Vec<_>>(),
        }),
        Event::Scopes {
            operation,
            needed,
            hint,
            kept,
            anonymous,
            requested,
        } => json!({
            "event": "scopes",
            "operation": operation_name(operation),
            "needed": needed.to_string(),
            "hint": hint.to_string(),
            "hintKept": kept.to_string(),
            "anonymous": anonymous,
            "requested": requested.to_string(),
        }),
        Event::TokenRequest {
            realm,
            method,
            grant: kind,
            service,
            scopes,
        } => json!({
            "event": "token-request", "realm": realm, "method": method.as_str(),
            "grant": grant(*kind), "service": service, "scope": scopes.to_string(),
        }),
        Event::TokenReceived {
            claims,
            granted,
            expires_in,
            expires_at,
            lifetime,
            expiry,
        } => json!({
            "event": "token-received",
            "granted": granted.as_ref().map(ToString::to_string),
            "claims": claims,
            "expiresIn": expires_in,
            "expiresAt": format_rfc3339(unix(*expires_at)),
            "lifetimeSeconds": lifetime.as_secs(),
            "expirySource": match expiry {
                ExpirySource::JwtExp => "jwt-exp",
                ExpirySource::IssuedAt => "issued_at+expires_in",
                ExpirySource::Received => "received+expires_in",
            },
        }),
    }
}

fn operation_name(operation: &Operation) -> String {
    match operation {
        Operation::Pull(r) => format!("pull of {r}"),
        Operation::Push(r, _) => format!("push to {r}"),
        Operation::Delete(r) => format!("delete in {r}"),
        Operation::Catalog => "catalog".to_owned(),
        Operation::Ping => "ping (/v2/, no resource)".to_owned(),
    }
}
