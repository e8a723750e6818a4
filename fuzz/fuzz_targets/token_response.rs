//! The token service's wire formats: token responses and JWT claims (JSON) and
//! token requests (query strings and forms). Parsing never panics; what the
//! server prints for a parsed value parses back to the same value.
#![no_main]

use berth_core::{Claims, TokenRequest, TokenResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = TokenResponse::parse(data) {
        // `to_json` fills in defaults, so compare from the first reprint on.
        let json = response.to_json();
        let canonical = TokenResponse::parse(json.as_bytes())
            .unwrap_or_else(|e| panic!("printed form {json:?} does not parse: {e}"));
        assert_eq!(canonical.to_json(), json);
        assert_eq!(canonical.bearer_token(), response.bearer_token());
        assert_eq!(canonical.lifetime_secs(), response.lifetime_secs());
        let _ = response.issued_at_unix();
    }
    if let Ok(claims) = Claims::parse(data) {
        let scopes = claims.scopes();
        let access = Claims::access_from_scopes(&scopes);
        let again = Claims { access, ..claims };
        assert_eq!(again.scopes(), scopes);
    }
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = TokenRequest::from_query(input) {
        let printed = request.to_query();
        let again = TokenRequest::from_query(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, request, "printed form: {printed:?}");
    }
    if let Ok(request) = TokenRequest::from_form(input) {
        let printed = request.to_form();
        let again = TokenRequest::from_form(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, request, "printed form: {printed:?}");
    }
});
