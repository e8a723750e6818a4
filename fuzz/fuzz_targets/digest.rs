//! Digests and saved hash states: `Digest::parse` round-trips, and restoring a
//! hash state from arbitrary bytes never panics (it comes from storage that a
//! crash or another version may have left in any shape).
#![no_main]

use berth_core::{Digest, Digester};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data)
        && let Ok(parsed) = Digest::parse(input)
    {
        let printed = parsed.to_string();
        assert_eq!(printed, input, "a digest has exactly one spelling");
        let again = Digest::parse(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, parsed);
        assert_eq!(
            Digest::from_hex(parsed.algorithm(), parsed.hex()).as_ref(),
            Ok(&parsed)
        );
    }
    if let Ok(digester) = Digester::restore_state(data) {
        // A restored state saves and restores to the same digest.
        let saved = digester.save_state();
        let again = Digester::restore_state(&saved)
            .unwrap_or_else(|e| panic!("a saved state does not restore: {e}"));
        assert_eq!(again.bytes_hashed(), digester.bytes_hashed());
        let mut more = digester.clone();
        more.update(data);
        let _ = more.finalize();
        assert_eq!(again.finalize(), digester.finalize());
    }
});
