//! A CI job's ID token as `berth login --oidc` reads it (a file, a variable,
//! GitHub Actions' answer): the shape check never panics, its error never
//! quotes the input, and an accepted token's claims are an object and its
//! credential presents it unchanged.
#![no_main]

use berth_client::auth::IdToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match IdToken::parse(text) {
        Ok(token) => {
            assert_eq!(token.secret(), text.trim());
            assert!(token.claims().is_object());
            assert!(format!("{token:?}").contains("redacted"));
        }
        Err(e) => {
            // The messages hold no `.`: one naming a token with dots in it
            // would be quoting it.
            let message = e.to_string();
            let secret = text.trim();
            assert!(
                !secret.contains('.') || !message.contains(secret),
                "the error quotes the token: {message}"
            );
        }
    }
});
