//! The route table: every `/v2` request is parsed into an [`Endpoint`], passes
//! the gate, and is dispatched here to its handler. From a URL to its code is
//! this one match.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_core::endpoint::{Endpoint, EndpointError};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::{
    API_VERSION, admin, base, blobs, catalog, health, manifests, referrers, tags, token, uploads,
};
use crate::Registry;
use crate::auth::gate;
use crate::error::RegistryError;
use crate::events::Actor;
use crate::metrics::Route;

/// The header carrying each request's id (set when the client sent none).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared state of the router.
#[derive(Clone)]
pub struct AppState {
    /// The stores, settings and token machinery.
    pub registry: Registry,
}

/// Request ids: 32 hex digits, a random half drawn once per process and a
/// counter. Unique across processes and restarts like a random UUID, without
/// asking the kernel for randomness on every request (a `getrandom` system
/// call per request, measured with `strace -c`).
#[derive(Clone)]
struct RequestIds {
    prefix: u64,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let mut random = [0u8; 8];
        // Without randomness, the start time still tells processes apart.
        let prefix = match getrandom::fill(&mut random) {
            Ok(()) => u64::from_le_bytes(random),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        Self {
            prefix,
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{:016x}{n:016x}", self.prefix);
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The registry's HTTP application.
pub fn router(registry: Registry) -> Router {
    let state = AppState { registry };
    let request_id = REQUEST_ID;
    // Outermost first: a request id for every request (kept when the client
    // sent one), a span carrying it for every log line of the request, and the
    // id echoed back so a user can quote it.
    let layers = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), RequestIds::new()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
                })
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG))
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        .layer(PropagateRequestIdLayer::new(request_id));
    let registry_api = Router::new()
        .route("/v2", axum::routing::any(dispatch))
        .route("/v2/", axum::routing::any(dispatch))
        .route("/v2/{*rest}", axum::routing::any(dispatch))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            API_VERSION,
        ));
    let token_service = Router::new()
        .route("/token", get(token::get_token).post(token::post_token))
        .route("/token/jwks.json", get(token::get_jwks));
    let metrics = Router::new()
        .route("/metrics", get(get_metrics))
        .route("/healthz", get(health::get_healthz))
        .route("/readyz", get(health::get_readyz));
    let ui = if state.registry.config.ui {
        crate::ui::routes()
    } else {
        Router::new()
    };
    Router::new()
        .merge(registry_api)
        .merge(metrics)
        .merge(token_service)
        .merge(admin::routes())
        .merge(ui)
        // Every answer, errors and unknown paths included: a browser must
        // never guess a type for what berth serves (a manifest or blob
        // pushed as HTML would otherwise run as a page of this origin).
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(layers)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_request,
        ))
        .with_state(state)
}

/// Records every request in the metrics (route group, method, status, time).
async fn count_request(
    State(app): State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let route = Route::of(request.uri().path());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    app.registry.metrics.record(
        route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /metrics`: the Prometheus text exposition.
async fn get_metrics(State(app): State<AppState>) -> Response {
    let mut text = app.registry.metrics.render();
    app.registry.proxies.render_metrics(&mut text);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

async fn dispatch(State(app): State<AppState>, request: Request) -> Response {
    match route(&app, request).await {
        Ok(response) => response,
        Err(e) => {
            match &e {
                RegistryError::DiskFull => {
                    app.registry.disk.note_refused();
                }
                e if e.is_disk_full() => {
                    app.registry.disk.note_full(&e.to_string());
                }
                _ => {}
            }
            e.into_response()
        }
    }
}

/// Whether a request stores something (and so waits while the disk is full).
fn stores(endpoint: &Endpoint, method: &Method) -> bool {
    matches!(
        (endpoint, method),
        (Endpoint::Manifest { .. }, &Method::PUT)
            | (Endpoint::Uploads { .. }, &Method::POST)
            | (Endpoint::Upload { .. }, &Method::PATCH | &Method::PUT)
    )
}

async fn route(app: &AppState, request: Request) -> Result<Response, RegistryError> {
    let (parts, body) = request.into_parts();
    let query = parts.uri.query();
    let endpoint = Endpoint::parse(parts.uri.path(), query)?;
    let method = parts.method.clone();
    let r = &app.registry;
    let admission = gate::admit(r, &endpoint, method.as_str(), &parts.headers).await?;
    let headers = &parts.headers;
    let head = method == Method::HEAD;
    let actor = Actor::request(
        admission.token_subject.as_deref(),
        headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()),
    );
    // A push into a pull-through cache is refused even where the gate
    // admits everything (access control off).
    if stores(&endpoint, &method)
        && let Some(name) = endpoint.repository()
        && let Some(target) = r.proxies.find(name)
    {
        return Err(target.refusal(name, &berth_core::scope::Action::Push));
    }
    if stores(&endpoint, &method) && !r.disk.admit_write().await {
        return Err(RegistryError::DiskFull);
    }

    match (&endpoint, &method) {
        (Endpoint::Base, &Method::GET | &Method::HEAD) => Ok(base::get_base()),
        (Endpoint::Catalog, &Method::GET) => {
            catalog::list_repositories(r, query, &admission.catalog, admission.subject.as_ref())
                .await
        }
        (Endpoint::Tags { name }, &Method::GET) => match r.proxies.find(name) {
            Some(target) => crate::proxy::tags::list(r, &target, name, query).await,
            None => tags::list_tags(r, name, query).await,
        },
        (Endpoint::Manifest { name, reference }, &Method::GET | &Method::HEAD) => {
            manifests::get_manifest(r, name, reference, headers, head, &actor).await
        }
        (Endpoint::Manifest { name, reference }, &Method::PUT) => {
            manifests::put_manifest(r, name, reference, headers, body, &actor).await
        }
        (Endpoint::Manifest { name, reference }, &Method::DELETE) => {
            manifests::delete_manifest(r, name, reference, &actor).await
        }
        (
            Endpoint::InvalidManifestReference { name, error },
            &Method::GET | &Method::HEAD | &Method::DELETE,
        ) => Err(manifests::no_such_reference(r, name, error, &method)),
        (Endpoint::InvalidManifestReference { error, .. }, &Method::PUT) => {
            Err(EndpointError::from(error.clone()).into())
        }
        (Endpoint::Blob { name, digest }, &Method::GET | &Method::HEAD) => {
            blobs::get_blob(r, name, digest, headers, head).await
        }
        (Endpoint::Blob { name, digest }, &Method::DELETE) => {
            blobs::delete_blob(r, name, digest, &actor).await
        }
        (Endpoint::Uploads { name, mount }, &Method::POST) => {
            let mount = mount.as_ref().filter(|_| admission.mount_allowed);
            let subject = admission.token_subject.as_deref();
            uploads::start_upload(r, name, subject, mount, query, headers, body, &actor).await
        }
        (Endpoint::Upload { name, id }, &Method::GET) => uploads::get_upload(r, name, id).await,
        (Endpoint::Upload { name, id }, &Method::PATCH) => {
            uploads::patch_upload(r, name, id, headers, body).await
        }
        (Endpoint::Upload { name, id }, &Method::PUT) => {
            uploads::put_upload(r, name, id, query, headers, body).await
        }
        (Endpoint::Upload { name, id }, &Method::DELETE) => {
            uploads::cancel_upload(r, name, id).await
        }
        (Endpoint::Referrers { name, digest }, &Method::GET) => {
            referrers::list_referrers(r, name, digest, query).await
        }
        _ => Err(RegistryError::MethodNotAllowed {
            method: method.to_string(),
            endpoint: endpoint_label(&endpoint),
        }),
    }
}

fn endpoint_label(endpoint: &Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Base => "/v2/",
        Endpoint::Catalog => "/v2/_catalog",
        Endpoint::Tags { .. } => "/v2/<name>/tags/list",
        Endpoint::Manifest { .. } | Endpoint::InvalidManifestReference { .. } => {
            "/v2/<name>/manifests/<reference>"
        }
        Endpoint::Blob { .. } => "/v2/<name>/blobs/<digest>",
        Endpoint::Uploads { .. } => "/v2/<name>/blobs/uploads/",
        Endpoint::Upload { .. } => "/v2/<name>/blobs/uploads/<id>",
        Endpoint::Referrers { .. } => "/v2/<name>/referrers/<digest>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_32_hex_digits_and_never_repeat() {
        let mut ids = RequestIds::new();
        let request = axum::http::Request::new(());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = ids
                .make_request_id(&request)
                .map(|id| id.into_header_value());
            let id = id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned);
            let Some(id) = id else {
                panic!("no request id made");
            };
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            assert!(seen.insert(id), "a request id repeated");
        }
        // Another process (another prefix) does not repeat this one's ids.
        let mut other = RequestIds::new();
        let first = other
            .make_request_id(&request)
            .map(|id| id.into_header_value());
        let first = first
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(!seen.contains(&first));
    }
}
