//! Image references: parsing never panics, and a parsed reference prints to its
//! normalised form, which parses back to the same reference.
#![no_main]

use berth_core::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = Reference::parse(input) {
        let printed = parsed.to_string();
        let again = Reference::parse(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, parsed, "printed form: {printed:?}");
        assert_eq!(again.to_string(), printed);
        // The helpers derived from a parsed reference must not panic either.
        let _ = parsed.registry().api_host();
        let _ = parsed.registry().credential_key();
        let _ = parsed.registry().is_loopback();
        let _ = parsed.tag_or_digest().to_string();
    }
});
