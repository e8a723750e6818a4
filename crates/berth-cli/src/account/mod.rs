//! The account commands: `berth token`, `berth password`, `berth org
//! member`, `berth robot`, `berth repo`, `berth trust`: what a user does for
//! themselves through the registry's API (`/api/v1/`, see
//! `berth-registry/src/http/admin/`), and what an organisation owner does for
//! the organisation. The registry's policy decides; these commands word its
//! answers. Administrators use them for anyone, and `berth admin ...` for
//! the rest.
//!
//! Every command logs in at `--registry` (`BERTH_REGISTRY`) with
//! `BERTH_USERNAME` and `BERTH_PASSWORD`, else with the login `berth login`
//! stored for the registry's host (a refresh token, sent as a bearer token:
//! the password is not kept). What a command produces goes to stdout (a
//! secret once, a list, or with `--output json` the registry's answer);
//! notes go to stderr.

pub mod org;
pub mod password;
pub mod repo;
pub mod robot;
pub mod token;
pub mod trust;

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::api::{Api, Connection, print_out};

/// Where the registry is (every account command takes it).
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The registry's URL [default: http://127.0.0.1:5000].
    ///
    /// The base URL `berth serve` answers at (its --public-url), e.g.
    /// `https://registry.example.com`. The login stored by `berth login
    /// <host:port>` for its host is used when BERTH_USERNAME and
    /// BERTH_PASSWORD are not set.
    #[arg(
        long,
        env = "BERTH_REGISTRY",
        value_name = "URL",
        global = true,
        default_value = "http://127.0.0.1:5000",
        hide_default_value = true
    )]
    pub registry: String,
}

impl Target {
    /// The API of the registry, with the credential found (before any I/O).
    pub fn connect(&self) -> anyhow::Result<Api> {
        Connection::resolve(&self.registry)?.connect()
    }
}

/// How a command's result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people.
    Text,
    /// JSON, for scripts.
    Json,
}

/// Prints `json` (pretty, one value) or `text`, as `output` says.
pub fn emit(output: Output, json: &Value, text: &str) -> anyhow::Result<()> {
    match output {
        Output::Json => print_out(&format!("{json:#}\n")),
        Output::Text => print_out(text),
    }
}
