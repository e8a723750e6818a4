//! `WWW-Authenticate` challenges: parsing never panics, and a parsed value
//! prints to a form that parses back to the same value and prints the same.
#![no_main]

use berth_core::{Challenge, Challenges};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = Challenges::parse(input) {
        let printed = parsed.to_string();
        let again = Challenges::parse(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, parsed, "printed form: {printed:?}");
        assert_eq!(again.to_string(), printed);
    }
    // The single-challenge parser shares the grammar; it must agree with the list.
    if let Ok(one) = input.parse::<Challenge>() {
        let printed = one.to_string();
        let again: Challenge = printed
            .parse()
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, one, "printed form: {printed:?}");
        assert_eq!(again.to_string(), printed);
    }
});
