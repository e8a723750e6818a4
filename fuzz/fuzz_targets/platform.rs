//! `--platform` values: `Platform::parse` never panics, prints back exactly
//! what it read, and a parsed platform matches its own index entry.
#![no_main]

use berth_core::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(platform) = Platform::parse(input) else {
        return;
    };
    let printed = platform.to_string();
    assert_eq!(printed, input, "a platform has exactly one spelling");
    assert_eq!(Platform::parse(&printed).as_ref(), Ok(&platform));
    assert!(platform.matches(platform.os(), platform.architecture(), platform.variant()));
});
