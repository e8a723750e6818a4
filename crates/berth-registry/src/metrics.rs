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
}

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
        }
    }
}

impl Metrics {
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
