//! `Link` headers and pagination queries: parsing never panics, and parsed
//! values print to a form that parses back to the same value.
#![no_main]

use berth_core::pagination::{Link, Pagination, next_link};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(links) = Link::parse_all(input) {
        let printed = links
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let again = Link::parse_all(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, links, "printed form: {printed:?}");
        let next = next_link([input]);
        let want = links.iter().find(|l| l.has_rel("next")).map(|l| l.target());
        assert_eq!(next.as_ref().map(Option::as_deref), Ok(want));
    } else {
        assert!(next_link([input]).is_err());
    }
    // Several header lines, split where the input has newlines.
    let _ = next_link(input.split('\n'));
    if let Ok(page) = Pagination::from_query(input) {
        let printed = page.to_query();
        let again = Pagination::from_query(&printed)
            .unwrap_or_else(|e| panic!("printed form {printed:?} does not parse: {e}"));
        assert_eq!(again, page, "printed form: {printed:?}");
    }
});
