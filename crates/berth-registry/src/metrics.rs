//! Prometheus metrics: requests by route, method and status, latency
//! histograms by route, tokens issued and refused. Served as text at `/metrics`.
//!
//! Counters are fixed arrays of atomics indexed by small enums, so recording a
//! request costs a few relaxed atomic adds and no allocation or lock: the hot
//! path (tens of thousands of requests a second) pays almost nothing.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::server::conn::CloseReason;

/// The route groups requests are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags,
    /// `/v2/<name>/manifests/<reference>`
    Manifest,
    /// `/v2/<name>/blobs/<digest>`
    Blob,
    /// `/v2/<name>/blobs/uploads/...`
    Upload,
    /// `/v2/<name>/referrers/<digest>`
    Referrers,
    /// `/token` and `/token/jwks.json`
    Token,
    /// `/api/v1/...`
    Admin,
    /// `/metrics`
    Metrics,
    /// Anything else.
    Other,
}

const ROUTES: [Route; 11] = [
    Route::Base,
    Route::Catalog,
    Route::Tags,
    Route::Manifest,
    Route::Blob,
    Route::Upload,
    Route::Referrers,
    Route::Token,
    Route::Admin,
    Route::Metrics,
    Route::Other,
];

impl Route {
    /// Classifies a request path (cheaply: no full parse).
    pub fn of(path: &str) -> Self {
        if path == "/v2" || path == "/v2/" {
            Self::Base
        } else if path.starts_with("/v2/") {
            if path == "/v2/_catalog" {
                Self::Catalog
            } else if path.ends_with("/tags/list") {
                Self::Tags
            } else if path.contains("/blobs/uploads") {
                Self::Upload
            } else if path.contains("/manifests/") {
                Self::Manifest
            } else if path.contains("/blobs/") {
                Self::Blob
            } else if path.contains("/referrers/") {
                Self::Referrers
            } else {
                Self::Other
            }
        } else if path.starts_with("/token") {
            Self::Token
        } else if path.starts_with("/api/") {
            Self::Admin
        } else if path == "/metrics" {
            Self::Metrics
        } else {
            Self::Other
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Catalog => "catalog",
            Self::Tags => "tags",
            Self::Manifest => "manifest",
            Self::Blob => "blob",
            Self::Upload => "upload",
            Self::Referrers => "referrers",
            Self::Token => "token",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
            Self::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OTHER"];
const STATUSES: [u16; 16] = [
    200, 201, 202, 204, 206, 400, 401, 403, 404, 405, 413, 416, 429, 500, 503, 0,
];
/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len() - 1)
}

/// Every counter berth exports.
pub struct Metrics {
    requests: Vec<AtomicU64>,
    latency_buckets: Vec<AtomicU64>,
    latency_sum_micros: Vec<AtomicU64>,
    latency_count: Vec<AtomicU64>,
    tokens_issued: AtomicU64,
    tokens_refused: AtomicU64,
    connections_open: AtomicU64,
    connections_closed: [AtomicU64; CloseReason::ALL.len()],
    connections_refused: AtomicU64,
    gc: GcMetrics,
    events: EventMetrics,
}

/// The events' counters (`events/`).
#[derive(Debug, Default)]
struct EventMetrics {
    /// Events written by this node (with at least one delivery).
    written: AtomicU64,
    /// Attempts by result: delivered, retried, failed.
    attempts: [AtomicU64; 3],
    /// Time spent in attempts.
    attempt_micros_total: AtomicU64,
    /// Sampled pull events dropped on a full queue.
    pulls_dropped: AtomicU64,
    /// Deliveries pending and failed, in the database, at the last look.
    pending: AtomicU64,
    failed_backlog: AtomicU64,
}

/// How an attempt to deliver an event ended, for [`Metrics::record_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    /// A 2xx came back.
    Delivered,
    /// Refused or unreachable, tried again later.
    Retried,
    /// Refused or unreachable on the last attempt.
    Failed,
}

const DELIVERY_RESULTS: [&str; 3] = ["delivered", "retried", "failed"];

/// The garbage collector's counters (`gc/collector.rs`).
#[derive(Debug, Default)]
struct GcMetrics {
    runs: AtomicU64,
    failed_runs: AtomicU64,
    /// Removed, by kind: tags (retention), manifests, links, blob records, bytes.
    removed: [AtomicU64; 5],
    bytes_reclaimed: AtomicU64,
    queue_length: AtomicU64,
    last_duration_micros: AtomicU64,
    duration_micros_total: AtomicU64,
}

/// What one collection removed, for [`Metrics::record_gc`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcCounts {
    /// Tags removed by retention policies.
    pub tags: u64,
    /// Manifests collected.
    pub manifests: u64,
    /// Repository links to blobs removed.
    pub links: u64,
    /// Blob records removed.
    pub blobs: u64,
    /// Blobs whose bytes were deleted.
    pub bytes_objects: u64,
    /// Bytes deleted.
    pub bytes: u64,
}

const GC_KINDS: [&str; 5] = ["tag", "manifest", "link", "blob", "bytes"];

impl Default for Metrics {
    fn default() -> Self {
        let counters = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Self {
            requests: counters(ROUTES.len() * METHODS.len() * STATUSES.len()),
            latency_buckets: counters(ROUTES.len() * BUCKETS.len()),
            latency_sum_micros: counters(ROUTES.len()),
            latency_count: counters(ROUTES.len()),
            tokens_issued: AtomicU64::new(0),
            tokens_refused: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_closed: Default::default(),
            connections_refused: AtomicU64::new(0),
            gc: GcMetrics::default(),
            events: EventMetrics::default(),
        }
    }
}

impl Metrics {
    /// Requests answered so far, all routes: whether the server is serving
    /// (the collector gives way while it is).
    pub fn requests_answered(&self) -> u64 {
        self.requests
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Records one collection (`ok`: it ran to its end), what it removed,
    /// how long it took and the review queue it left.
    pub fn record_gc(&self, ok: bool, counts: GcCounts, elapsed: Duration, queue_length: u64) {
        let gc = &self.gc;
        gc.runs.fetch_add(1, Ordering::Relaxed);
        if !ok {
            gc.failed_runs.fetch_add(1, Ordering::Relaxed);
        }
        let removed = [
            counts.tags,
            counts.manifests,
            counts.links,
            counts.blobs,
            counts.bytes_objects,
        ];
        for (counter, n) in gc.removed.iter().zip(removed) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        gc.bytes_reclaimed
            .fetch_add(counts.bytes, Ordering::Relaxed);
        gc.queue_length.store(queue_length, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        gc.last_duration_micros.store(micros, Ordering::Relaxed);
        gc.duration_micros_total
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts events written by this node.
    pub fn events_written(&self, n: u64) {
        self.events.written.fetch_add(n, Ordering::Relaxed);
    }

    /// Records one attempt to deliver an event.
    pub fn record_delivery(&self, result: DeliveryResult, elapsed: Duration) {
        if let Some(c) = self.events.attempts.get(result as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.events
            .attempt_micros_total
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// Sets the deliveries pending and failed in the database, and the pull
    /// events dropped so far.
    pub fn event_backlog(&self, pending: u64, failed: u64, pulls_dropped: u64) {
        self.events.pending.store(pending, Ordering::Relaxed);
        self.events.failed_backlog.store(failed, Ordering::Relaxed);
        self.events
            .pulls_dropped
            .store(pulls_dropped, Ordering::Relaxed);
    }

    /// Records one answered request.
    pub fn record(&self, route: Route, method: &str, status: u16, elapsed: Duration) {
        let r = route.index();
        let i = (r * METHODS.len() + method_index(method)) * STATUSES.len() + status_index(status);
        if let Some(c) = self.requests.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|bound| secs <= *bound)
            && let Some(c) = self.latency_buckets.get(r * BUCKETS.len() + b)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(c) = self.latency_sum_micros.get(r) {
            c.fetch_add(micros, Ordering::Relaxed);
        }
        if let Some(c) = self.latency_count.get(r) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a token issued by the token service.
    pub fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a token request refused (bad credentials, rate limit).
    pub fn token_refused(&self) {
        self.tokens_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection accepted.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed, and why.
    pub fn connection_closed(&self, reason: CloseReason) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
        if let Some(c) = self.connections_closed.get(reason as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a connection refused at the connection cap.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str(
            "# HELP berth_http_requests_total Requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE berth_http_requests_total counter\n");
        for (r, route) in ROUTES.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (s, status) in STATUSES.iter().enumerate() {
                    let i = (r * METHODS.len() + m) * STATUSES.len() + s;
                    let n = self.requests.get(i).map_or(0, load);
                    if n == 0 {
                        continue;
                    }
                    let status = if *status == 0 {
                        "other".to_owned()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "berth_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                        route.label()
                    );
                }
            }
        }
        out.push_str("# HELP berth_http_request_duration_seconds Time to answer, by route.\n");
        out.push_str("# TYPE berth_http_request_duration_seconds histogram\n");
        for (r, route) in ROUTES.iter().enumerate() {
            let count = self.latency_count.get(r).map_or(0, load);
            if count == 0 {
                continue;
            }
            let label = route.label();
            let mut cumulative = 0;
            for (b, bound) in BUCKETS.iter().enumerate() {
                cumulative += self
                    .latency_buckets
                    .get(r * BUCKETS.len() + b)
                    .map_or(0, load);
                let _ = writeln!(
                    out,
                    "berth_http_request_duration_seconds_bucket{{route=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "berth_http_request_duration_seconds_bucket{{route=\"{label}\",le=\"+Inf\"}} {count}"
            );
            let sum = self.latency_sum_micros.get(r).map_or(0, load) as f64 / 1e6;
            let _ = writeln!(
                out,
                "berth_http_request_duration_seconds_sum{{route=\"{label}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "berth_http_request_duration_seconds_count{{route=\"{label}\"}} {count}"
            );
        }
        out.push_str("# HELP berth_tokens_issued_total Tokens issued by the token service.\n");
        out.push_str("# TYPE berth_tokens_issued_total counter\n");
        let _ = writeln!(
            out,
            "berth_tokens_issued_total {}",
            load(&self.tokens_issued)
        );
        out.push_str("# HELP berth_tokens_refused_total Token requests refused (bad credentials, rate limit).\n");
        out.push_str("# TYPE berth_tokens_refused_total counter\n");
        let _ = writeln!(
            out,
            "berth_tokens_refused_total {}",
            load(&self.tokens_refused)
        );
        out.push_str("# HELP berth_connections_open Connections being served.\n");
        out.push_str("# TYPE berth_connections_open gauge\n");
        let _ = writeln!(
            out,
            "berth_connections_open {}",
            load(&self.connections_open)
        );
        out.push_str("# HELP berth_connections_closed_total Connections closed, by why (normal: by the client or after a clean exchange).\n");
        out.push_str("# TYPE berth_connections_closed_total counter\n");
        for reason in CloseReason::ALL {
            let n = self.connections_closed.get(reason as usize).map_or(0, load);
            let _ = writeln!(
                out,
                "berth_connections_closed_total{{reason=\"{}\"}} {n}",
                reason.label()
            );
        }
        out.push_str("# HELP berth_connections_refused_total Connections refused at the connection cap with every connection busy.\n");
        out.push_str("# TYPE berth_connections_refused_total counter\n");
        let _ = writeln!(
            out,
            "berth_connections_refused_total {}",
            load(&self.connections_refused)
        );
        let gc = &self.gc;
        out.push_str("# HELP berth_gc_runs_total Garbage collections run by this node (dry runs not counted).\n");
        out.push_str("# TYPE berth_gc_runs_total counter\n");
        let _ = writeln!(out, "berth_gc_runs_total {}", load(&gc.runs));
        out.push_str("# HELP berth_gc_failed_runs_total Garbage collections that stopped on an error (the next run continues).\n");
        out.push_str("# TYPE berth_gc_failed_runs_total counter\n");
        let _ = writeln!(out, "berth_gc_failed_runs_total {}", load(&gc.failed_runs));
        out.push_str("# HELP berth_gc_removed_total Objects removed by the garbage collector, by kind (tag: by a retention policy; bytes: blobs whose bytes were deleted).\n");
        out.push_str("# TYPE berth_gc_removed_total counter\n");
        for (kind, counter) in GC_KINDS.iter().zip(&gc.removed) {
            let _ = writeln!(
                out,
                "berth_gc_removed_total{{kind=\"{kind}\"}} {}",
                load(counter)
            );
        }
        out.push_str(
            "# HELP berth_gc_reclaimed_bytes_total Blob bytes deleted by the garbage collector.\n",
        );
        out.push_str("# TYPE berth_gc_reclaimed_bytes_total counter\n");
        let _ = writeln!(
            out,
            "berth_gc_reclaimed_bytes_total {}",
            load(&gc.bytes_reclaimed)
        );
        out.push_str("# HELP berth_gc_queue_length Rows in the review queue after the last collection, due or not.\n");
        out.push_str("# TYPE berth_gc_queue_length gauge\n");
        let _ = writeln!(out, "berth_gc_queue_length {}", load(&gc.queue_length));
        out.push_str("# HELP berth_gc_last_duration_seconds How long the last collection took.\n");
        out.push_str("# TYPE berth_gc_last_duration_seconds gauge\n");
        let _ = writeln!(
            out,
            "berth_gc_last_duration_seconds {}",
            load(&gc.last_duration_micros) as f64 / 1e6
        );
        out.push_str("# HELP berth_gc_duration_seconds_total Time spent collecting.\n");
        out.push_str("# TYPE berth_gc_duration_seconds_total counter\n");
        let _ = writeln!(
            out,
            "berth_gc_duration_seconds_total {}",
            load(&gc.duration_micros_total) as f64 / 1e6
        );
        let events = &self.events;
        out.push_str("# HELP berth_events_written_total Events written to the outbox by this node (each with a delivery per endpoint it goes to).\n");
        out.push_str("# TYPE berth_events_written_total counter\n");
        let _ = writeln!(out, "berth_events_written_total {}", load(&events.written));
        out.push_str("# HELP berth_event_attempts_total Attempts to deliver an event to a webhook endpoint, by result.\n");
        out.push_str("# TYPE berth_event_attempts_total counter\n");
        for (result, counter) in DELIVERY_RESULTS.iter().zip(&events.attempts) {
            let _ = writeln!(
                out,
                "berth_event_attempts_total{{result=\"{result}\"}} {}",
                load(counter)
            );
        }
        out.push_str("# HELP berth_event_attempt_seconds_total Time spent delivering events.\n");
        out.push_str("# TYPE berth_event_attempt_seconds_total counter\n");
        let _ = writeln!(
            out,
            "berth_event_attempt_seconds_total {}",
            load(&events.attempt_micros_total) as f64 / 1e6
        );
        out.push_str("# HELP berth_event_deliveries Deliveries in the outbox, pending or failed, at the delivery worker's last look.\n");
        out.push_str("# TYPE berth_event_deliveries gauge\n");
        let _ = writeln!(
            out,
            "berth_event_deliveries{{state=\"pending\"}} {}",
            load(&events.pending)
        );
        let _ = writeln!(
            out,
            "berth_event_deliveries{{state=\"failed\"}} {}",
            load(&events.failed_backlog)
        );
        out.push_str("# HELP berth_event_pulls_dropped_total Sampled pull events dropped because the queue was full.\n");
        out.push_str("# TYPE berth_event_pulls_dropped_total counter\n");
        let _ = writeln!(
            out,
            "berth_event_pulls_dropped_total {}",
            load(&events.pulls_dropped)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified_by_path_shape() {
        let cases = [
            ("/v2/", Route::Base),
            ("/v2", Route::Base),
            ("/v2/_catalog", Route::Catalog),
            ("/v2/a/b/tags/list", Route::Tags),
            ("/v2/a/manifests/latest", Route::Manifest),
            ("/v2/a/blobs/sha256:00", Route::Blob),
            ("/v2/a/blobs/uploads/", Route::Upload),
            ("/v2/a/blobs/uploads/abc", Route::Upload),
            ("/v2/a/referrers/sha256:00", Route::Referrers),
            ("/token", Route::Token),
            ("/token/jwks.json", Route::Token),
            ("/api/v1/users", Route::Admin),
            ("/metrics", Route::Metrics),
            ("/favicon.ico", Route::Other),
        ];
        for (path, route) in cases {
            assert_eq!(Route::of(path), route, "{path}");
        }
    }

    #[test]
    fn render_shows_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record(Route::Manifest, "GET", 200, Duration::from_micros(300));
        m.record(Route::Manifest, "GET", 200, Duration::from_millis(3));
        m.record(Route::Manifest, "HEAD", 404, Duration::from_millis(3));
        m.token_issued();
        m.token_refused();
        m.token_refused();
        let text = m.render();
        assert!(text.contains(
            "berth_http_requests_total{route=\"manifest\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "berth_http_requests_total{route=\"manifest\",method=\"HEAD\",status=\"404\"} 1\n"
        ));
        assert!(text.contains(
            "berth_http_request_duration_seconds_bucket{route=\"manifest\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "berth_http_request_duration_seconds_bucket{route=\"manifest\",le=\"0.005\"} 3\n"
        ));
        assert!(text.contains("berth_http_request_duration_seconds_count{route=\"manifest\"} 3\n"));
        assert!(text.contains("berth_tokens_issued_total 1\n"));
        assert!(text.contains("berth_tokens_refused_total 2\n"));
        assert!(
            !text.contains("route=\"blob\""),
            "unused routes are omitted"
        );
    }
}
