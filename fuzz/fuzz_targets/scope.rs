//! Token scopes: parsing never panics, and a parsed scope or scope list prints
//! to a form that parses back to the same value and prints the same.
#![no_main]

use berth_core::{Scope, Scopes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = Scopes::parse(input) {
        let printed = parsed.to_string();
        let again = Scopes::parse(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, parsed, "printed form: {printed:?}");
        assert_eq!(again.to_string(), printed);
        assert_eq!(
            again.len(),
            printed.split(' ').filter(|s| !s.is_empty()).count()
        );
    }
    if let Ok(one) = input.parse::<Scope>() {
        let printed = one.to_string();
        let again: Scope = printed
            .parse()
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, one, "printed form: {printed:?}");
        assert_eq!(again.to_string(), printed);
        // A single scope is also a one-element list.
        let list = Scopes::parse(&printed)
            .unwrap_or_else(|e| panic!("scope {printed:?} is not a scope list: {e}"));
        assert_eq!(list.iter().collect::<Vec<_>>(), [&one]);
    }
});
