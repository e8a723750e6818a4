//! `berth admin events list|redeliver`: the outbox of events (what each
//! webhook endpoint was sent, is waiting for, or failed to take) and
//! redelivery on demand (`/api/v1/events`).

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::token::Output;
use crate::api::{Api, columns, print_out};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List deliveries of events, newest first.
    #[command(after_help = "\
Examples:
  berth admin events list                      # the latest 100 deliveries
  berth admin events list --failed             # what every retry failed to deliver
  berth admin events list --pending --endpoint ci
  berth admin events list --repository acme/app --limit 0 --output json

Each row is one event's delivery to one endpoint: pending (to be attempted;
NEXT says when), delivered (a 2xx came back), or failed (every attempt
refused; `berth admin events redeliver` sends it again). Delivered records
are kept a day, failed ones thirty days.")]
    List {
        /// Only failed deliveries.
        #[arg(long, conflicts_with_all = ["pending", "delivered"])]
        failed: bool,
        /// Only pending deliveries.
        #[arg(long, conflicts_with = "delivered")]
        pending: bool,
        /// Only delivered ones.
        #[arg(long)]
        delivered: bool,
        /// Only deliveries to this endpoint (its `name` in `[[webhook]]`).
        #[arg(long, value_name = "NAME")]
        endpoint: Option<String>,
        /// Only events of this repository.
        #[arg(long, value_name = "NAME")]
        repository: Option<String>,
        /// At most this many rows; 0 lists every one.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        /// `text` or `json`.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Send events again: those named, or every failed delivery.
    #[command(after_help = "\
Examples:
  berth admin events redeliver --failed              # every failed delivery
  berth admin events redeliver --failed --endpoint ci
  berth admin events redeliver 1042 1043             # these events, whatever came of them

The deliveries become pending with their attempts counted afresh, and go in
their repository's order with what else is pending for the endpoint.")]
    Redeliver {
        /// Event numbers (the EVENT column of `list`).
        #[arg(
            value_name = "EVENT",
            required_unless_present = "failed",
            conflicts_with = "failed"
        )]
        events: Vec<i64>,
        /// Every failed delivery.
        #[arg(long)]
        failed: bool,
        /// Only deliveries to this endpoint.
        #[arg(long, value_name = "NAME")]
        endpoint: Option<String>,
    },
}

/// The most rows one page of the API gives.
const API_PAGE: u32 = 1000;
/// The most deliveries one redelivery moves (the server's cap).
const MAX_REDELIVER: u64 = 10_000;

pub fn run(api: &Api, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::List {
            failed,
            pending,
            delivered,
            endpoint,
            repository,
            limit,
            output,
        } => {
            let state = match (failed, pending, delivered) {
                (true, _, _) => Some("failed"),
                (_, true, _) => Some("pending"),
                (_, _, true) => Some("delivered"),
                _ => None,
            };
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(state) = state {
                query.push(("state", state.to_owned()));
            }
            if let Some(endpoint) = &endpoint {
                query.push(("endpoint", endpoint.clone()));
            }
            if let Some(repository) = &repository {
                query.push(("repository", repository.clone()));
            }
            let deliveries = if limit == 0 {
                let query: Vec<(&str, &str)> =
                    query.iter().map(|(k, v)| (*k, v.as_str())).collect();
                api.list_all(&["events"], &query, "deliveries")
                    .context("cannot list the events")?
            } else {
                query.push(("n", limit.min(API_PAGE).to_string()));
                let query: Vec<(&str, &str)> =
                    query.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let page = api
                    .call_with_query(Method::GET, &["events"], &query, None)
                    .context("cannot list the events")?;
                page["deliveries"].as_array().cloned().unwrap_or_default()
            };
            if output == Output::Json {
                return print_out(&format!("{:#}\n", json!({ "deliveries": deliveries })));
            }
            if deliveries.is_empty() {
                eprintln!(
                    "no deliveries{}",
                    describe_filter(state, &endpoint, &repository)
                );
                return Ok(());
            }
            print_out(&table(&deliveries, berth_registry::clock::now_unix_ms()))
        }
        EventsCommand::Redeliver {
            events,
            failed,
            endpoint,
        } => {
            if events.is_empty() && !failed {
                bail!("name the events to send again, or give --failed");
            }
            let mut body = if failed {
                json!({ "failed": true })
            } else {
                json!({ "events": events })
            };
            if let Some(endpoint) = &endpoint {
                body["endpoint"] = json!(endpoint);
            }
            let answer = api
                .call(Method::POST, &["events", "redeliver"], Some(&body))
                .context("cannot send the events again")?;
            let count = answer["redelivered"].as_u64().unwrap_or(0);
            print_out(&format!(
                "{count} deliver{} pending again\n",
                if count == 1 { "y" } else { "ies" }
            ))?;
            if failed && count >= MAX_REDELIVER {
                eprintln!(
                    "at most {MAX_REDELIVER} a request: run `berth admin events redeliver --failed` again for the rest"
                );
            }
            Ok(())
        }
    }
}

fn describe_filter(
    state: Option<&str>,
    endpoint: &Option<String>,
    repository: &Option<String>,
) -> String {
    let mut parts = Vec::new();
    if let Some(state) = state {
        parts.push(state.to_owned());
    }
    if let Some(endpoint) = endpoint {
        parts.push(format!("to {endpoint}"));
    }
    if let Some(repository) = repository {
        parts.push(format!("of {repository}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" {}", parts.join(" "))
    }
}

/// The deliveries as columns: EVENT STATE ATTEMPTS ENDPOINT TYPE SUBJECT
/// CREATED NEXT LAST ERROR.
fn table(deliveries: &[Value], now_ms: i64) -> String {
    let mut rows = vec![
        [
            "EVENT",
            "STATE",
            "ATTEMPTS",
            "ENDPOINT",
            "TYPE",
            "SUBJECT",
            "CREATED",
            "NEXT",
            "LAST ERROR",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for d in deliveries {
        let text = |name: &str| d[name].as_str().unwrap_or("").to_owned();
        let next = match d["nextAttemptMs"].as_i64() {
            Some(at) if at <= now_ms => "now".to_owned(),
            Some(at) => format!("in {}", seconds((at - now_ms) / 1000)),
            None => String::new(),
        };
        let error = match (d["lastStatus"].as_u64(), d["lastError"].as_str()) {
            (_, Some(error)) => error.to_owned(),
            (Some(status), None) => format!("HTTP {status}"),
            _ => String::new(),
        };
        rows.push(vec![
            d["event"].as_i64().unwrap_or(0).to_string(),
            text("state"),
            d["attempts"].as_u64().unwrap_or(0).to_string(),
            text("endpoint"),
            text("type").trim_start_matches("berth.").to_owned(),
            text("subject"),
            d["createdAt"]
                .as_i64()
                .map(berth_core::token::format_rfc3339)
                .unwrap_or_default(),
            next,
            error,
        ]);
    }
    columns(&rows)
}

/// `42s`, `3m`, `2h`.
fn seconds(s: i64) -> String {
    match s {
        ..=0 => "0s".to_owned(),
        1..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_state_next_attempt_and_last_error() {
        let rows = [
            json!({"event": 7, "state": "pending", "attempts": 2, "endpoint": "ci",
                   "type": "berth.manifest.pushed", "subject": "acme/app:v1",
                   "createdAt": 1_700_000_000, "nextAttemptMs": 1_700_000_030_000i64,
                   "lastStatus": 503, "lastError": "HTTP 503 Service Unavailable"}),
            json!({"event": 6, "state": "delivered", "attempts": 1, "endpoint": "ci",
                   "type": "berth.tag.deleted", "subject": "acme/app:old",
                   "createdAt": 1_700_000_000, "lastStatus": 200}),
        ];
        let text = table(&rows, 1_700_000_000_000);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("EVENT"), "{text}");
        assert!(
            lines[1].contains("pending") && lines[1].contains("in 30s"),
            "{text}"
        );
        assert!(
            lines[1].contains("manifest.pushed") && lines[1].contains("HTTP 503"),
            "{text}"
        );
        assert!(
            lines[2].contains("delivered") && lines[2].contains("HTTP 200"),
            "{text}"
        );
    }
}
