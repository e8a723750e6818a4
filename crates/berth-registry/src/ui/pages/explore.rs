//! The explore page (`/`, `/ui/`): the repositories the visitor may pull,
//! by name, with a name search, paginated.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{error_page, render};
use crate::http::router::AppState;
use crate::meta::CatalogFilter;
use crate::meta::browse_sql::{self, RepositorySummary};
use crate::policy;
use crate::ui::session::Visitor;
use crate::ui::view::{self, Chrome};

/// Repositories on a page.
pub const PAGE: u32 = 50;

/// Names examined for one page at most: a personal access token confined to
/// a few repositories would otherwise walk the whole catalogue to fill a
/// page; past this, the page ends and links on from the last name examined.
pub const MAX_EXAMINED: usize = 1000;

#[derive(Deserialize, Default)]
pub struct Params {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

struct Row {
    name: String,
    tags: i64,
    last_push: String,
    visibility: &'static str,
}

#[derive(Template)]
#[template(path = "explore.html")]
struct ExplorePage {
    chrome: Chrome,
    search: String,
    repositories: Vec<Row>,
    next: Option<String>,
}

/// `GET /` and `GET /ui/[?q=&after=]`.
pub async fn get(
    State(app): State<AppState>,
    visitor: Visitor,
    RawQuery(raw): RawQuery,
) -> Response {
    let r = &app.registry;
    let params: Params = super::query(raw.as_deref());
    let search: String = params.q.trim().chars().take(255).collect();
    let filter = if visitor.open {
        CatalogFilter::All
    } else {
        policy::catalog_filter(&visitor.subject)
    };
    // Pages of names the filter admits, then the token's limits (as the
    // catalog applies them), until one more than a page is found.
    let mut rows: Vec<RepositorySummary> = Vec::new();
    let mut after = params.after.clone();
    let mut more = false;
    let mut examined = 0usize;
    'pages: loop {
        let found = match browse_sql::repositories(
            &r.db,
            &filter,
            Some(&search),
            after.as_deref(),
            PAGE + 1,
        )
        .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "explore page: cannot list repositories");
                return error_page(
                    &visitor,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database unavailable",
                    "The registry's database did not answer; try again shortly.",
                );
            }
        };
        let exhausted = found.len() < (PAGE + 1) as usize;
        examined += found.len();
        after = found.last().map(|s| s.name.clone()).or(after);
        for summary in found {
            if !policy::token_admits_listing(&visitor.subject, &summary.name) {
                continue;
            }
            if rows.len() == PAGE as usize {
                more = true;
                break 'pages;
            }
            rows.push(summary);
        }
        if exhausted {
            break;
        }
        if examined >= MAX_EXAMINED {
            // Go on from the last name examined, not the last one shown.
            let next = after.clone().unwrap_or_default();
            return show(&visitor, search, rows, Some(next));
        }
    }
    let next = match rows.last() {
        Some(last) if more => Some(last.name.clone()),
        _ => None,
    };
    show(&visitor, search, rows, next)
}

/// The page of `rows`, with a link to the names after `next` when given.
fn show(
    visitor: &Visitor,
    search: String,
    rows: Vec<RepositorySummary>,
    next: Option<String>,
) -> Response {
    let next = next.map(|after| format!("/ui/?q={}&after={}", encode(&search), encode(&after)));
    let page = ExplorePage {
        chrome: Chrome::new(visitor, "Repositories"),
        search,
        repositories: rows
            .into_iter()
            .map(|s| Row {
                tags: s.tags,
                last_push: view::time(s.last_push),
                visibility: if s.public { "public" } else { "private" },
                name: s.name,
            })
            .collect(),
        next,
    };
    render(visitor, StatusCode::OK, &page)
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
