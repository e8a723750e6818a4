//! `/api/v1/events`: the outbox of events as administrators see it
//! (`berth admin events list`), and redelivery on demand (`berth admin events
//! redeliver`).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, ApiError, json_response, read_json};
use crate::clock::{now_unix, now_unix_ms};
use crate::http::router::AppState;
use crate::meta::events_sql::{
    EventsSql, ListFilter, MAX_REDELIVER, Redeliver, State as DeliveryState,
};

/// The listing's page size when `n` is not given, and its largest.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// `GET /api/v1/events[?state=pending|delivered|failed][&endpoint=NAME][&repository=NAME][&n=N][&last=EVENT/ENDPOINT]`:
/// deliveries, newest event first, each with its state, attempts and last
/// error; `Link` to the next page.
pub(super) async fn list_events(
    State(app): State<AppState>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut filter = ListFilter::default();
    let mut n = DEFAULT_PAGE;
    let mut kept = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match &*key {
            "state" => {
                filter.state = Some(DeliveryState::parse(&value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "state={value} is not one of pending, delivered, failed"
                    ))
                })?);
            }
            "endpoint" => filter.endpoint = Some(value.to_string()),
            "repository" => filter.repository = Some(value.to_string()),
            "n" => {
                n = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("n={value}: give 1 to {MAX_PAGE}"))
                    })?;
                continue;
            }
            "last" => {
                filter.after = Some(parse_cursor(&value)?);
                continue;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}`; this endpoint takes state, endpoint, repository, n and last"
                )));
            }
        }
        kept.push(format!(
            "{key}={}",
            percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    let sql = EventsSql::new(app.registry.db.clone());
    let deliveries = sql.list(&filter, n).await?;
    let body = json!({ "deliveries": deliveries });
    let mut response = json_response(StatusCode::OK, &body);
    if deliveries.len() == n as usize
        && let Some(last) = deliveries.last()
    {
        kept.push(format!("n={n}"));
        kept.push(format!("last={}/{}", last.event, last.endpoint));
        let link =
            berth_core::pagination::Link::next(&format!("/api/v1/events?{}", kept.join("&")))
                .to_string();
        if let Ok(value) = axum::http::HeaderValue::from_str(&link) {
            response
                .headers_mut()
                .insert(axum::http::header::LINK, value);
        }
    }
    Ok(response)
}

/// `EVENT/ENDPOINT`, the last delivery of a page.
fn parse_cursor(text: &str) -> Result<(i64, String), ApiError> {
    text.split_once('/')
        .and_then(|(event, endpoint)| Some((event.parse::<i64>().ok()?, endpoint.to_owned())))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "last={text}: give the last delivery of the previous page as EVENT/ENDPOINT, as the Link header does"
            ))
        })
}

/// The body of a redelivery: events by number, or every failed delivery.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverBody {
    /// Events by number (any state but pending).
    #[serde(default)]
    events: Vec<i64>,
    /// Every failed delivery.
    #[serde(default)]
    failed: bool,
    /// Only deliveries to this endpoint.
    endpoint: Option<String>,
}

/// `POST /api/v1/events/redeliver` with `{"events": [N, ...]}` or
/// `{"failed": true}`, optionally `"endpoint": NAME`: those deliveries
/// pending again, attempts counted afresh; `{"redelivered": COUNT}`.
pub(super) async fn redeliver(
    State(app): State<AppState>,
    admin: Admin,
    body: Body,
) -> Result<Response, ApiError> {
    let body: RedeliverBody = read_json(body).await?;
    match (body.events.is_empty(), body.failed) {
        (true, false) => {
            return Err(ApiError::bad_request(
                "name the events to send again (\"events\": [12, 13]) or ask for every failed delivery (\"failed\": true)",
            ));
        }
        (false, true) => {
            return Err(ApiError::bad_request(
                "give \"events\" or \"failed\": true, not both",
            ));
        }
        _ => {}
    }
    if body.events.len() > MAX_REDELIVER {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_REDELIVER} events a request"
        )));
    }
    if let Some(endpoint) = &body.endpoint
        && app.registry.events.webhooks.endpoint(endpoint).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "no webhook endpoint is named {endpoint:?} in this node's settings"
        )));
    }
    let which = Redeliver {
        events: body.events,
        endpoint: body.endpoint,
    };
    let sql = EventsSql::new(app.registry.db.clone());
    let count = sql.redeliver(&which, now_unix(), now_unix_ms()).await?;
    app.registry.events.wake();
    audit!(
        admin,
        "events.redeliver",
        count,
        failed = which.events.is_empty(),
        "admin: event deliveries sent again"
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({ "redelivered": count }),
    ))
}
