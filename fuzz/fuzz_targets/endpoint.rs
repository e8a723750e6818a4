//! Request paths: `Endpoint::parse` never panics on `/v2/<input>`, split at the
//! first `?` into path and query, and the scopes an endpoint requires are
//! always valid scopes (they print to a list that parses back to them).
#![no_main]

use berth_core::{Endpoint, Scopes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = match input.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (input, None),
    };
    let path = format!("/v2/{path}");
    let Ok(endpoint) = Endpoint::parse(&path, query) else {
        return;
    };
    let _ = endpoint.repository();
    for method in ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"] {
        let scopes = endpoint.required_access(method);
        let printed = scopes.to_string();
        let again = Scopes::parse(&printed)
            .unwrap_or_else(|e| panic!("required scopes {printed:?} do not parse: {e}"));
        assert_eq!(again, scopes, "{method} {path}");
    }
});
