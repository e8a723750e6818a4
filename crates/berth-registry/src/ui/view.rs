//! What every page shows around its content (the header's navigation, a
//! notice), and how numbers, times and digests are written on pages.

use berth_core::token::format_rfc3339;

use super::session::Visitor;
use crate::policy;

/// The parts of the layout every page fills (`templates/base.html`).
pub struct Chrome {
    /// The page's title.
    pub title: String,
    /// The signed-in user's name.
    pub user: Option<String>,
    /// Whether the signed-in user is an administrator (the Admin link).
    pub admin: bool,
    /// Whether signing in is possible (access control is on).
    pub can_sign_in: bool,
    /// The CSRF token of the page's forms.
    pub csrf: String,
    /// The sign-in link, back to this page afterwards.
    pub sign_in: String,
    /// A notice above the content.
    pub notice: Option<Notice>,
}

/// A notice: what happened, or what went wrong.
pub struct Notice {
    /// `ok` or `error` (a CSS class).
    pub kind: &'static str,
    /// The words.
    pub text: String,
}

impl Notice {
    /// A change that was made.
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: "ok",
            text: text.into(),
        }
    }

    /// A refusal or failure.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            kind: "error",
            text: text.into(),
        }
    }
}

impl Chrome {
    /// The layout for `visitor`, titled `title`.
    pub fn new(visitor: &Visitor, title: impl Into<String>) -> Self {
        let principal = visitor.principal();
        Self {
            title: title.into(),
            user: principal.map(|p| p.name.clone()),
            admin: principal.is_some_and(|p| policy::administer(p).is_ok()),
            can_sign_in: !visitor.open,
            csrf: visitor.csrf.clone(),
            sign_in: sign_in_link(&visitor.here),
            notice: None,
        }
    }

    /// The same, with a notice.
    pub fn with_notice(mut self, notice: Option<Notice>) -> Self {
        self.notice = notice;
        self
    }
}

/// `/ui/sign-in?next=<here>`; the sign-in page itself and form targets
/// (pages answering a POST) return to the explore page.
fn sign_in_link(here: &str) -> String {
    if here.starts_with("/ui/sign-in") || here == "/" || here == "/ui/" {
        return "/ui/sign-in".to_owned();
    }
    format!(
        "/ui/sign-in?next={}",
        percent_encoding::utf8_percent_encode(here, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// Bytes as people read them: `512 B`, `1.5 KiB`, `23.4 MiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time as `2026-12-03 14:05 UTC`; `never` for none.
pub fn time(unix: Option<i64>) -> String {
    match unix {
        None => "never".to_owned(),
        Some(t) => {
            let full = format_rfc3339(t);
            // `2026-12-03T14:05:09Z` -> `2026-12-03 14:05 UTC`.
            match (full.get(..10), full.get(11..16)) {
                (Some(day), Some(minute)) => format!("{day} {minute} UTC"),
                _ => full,
            }
        }
    }
}

/// A digest shortened for a table: algorithm and the first 12 hex digits.
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => format!("{algorithm}:{}", hex.get(..12).unwrap_or(hex)),
        None => digest.to_owned(),
    }
}

/// The host (and port) clients pull from: the public URL without its scheme
/// or path.
pub fn registry_host(public_url: &str) -> String {
    let rest = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_times_and_digests_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(time(None), "never");
        assert_eq!(time(Some(0)), "1970-01-01 00:00 UTC");
        assert_eq!(
            short_digest("sha256:0123456789abcdef"),
            "sha256:0123456789ab"
        );
        assert_eq!(
            registry_host("https://r.example.com:8443/x"),
            "r.example.com:8443"
        );
        assert_eq!(registry_host("http://127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
