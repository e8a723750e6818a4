//! Manifests and indexes as the copy walks them, and `oci:DIR[:TAG]`
//! references: `Document::parse` never panics on any bytes (they come from
//! a registry or a layout on disk), and every descriptor it returns has a
//! digest that prints and parses back; a parsed layout reference prints
//! back to itself.
#![no_main]

use berth_client::document::Document;
use berth_client::layout::LayoutRef;
use berth_core::Digest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = Document::parse(data, "fuzz") {
        let descriptors = doc
            .manifests
            .iter()
            .chain(doc.blobs())
            .chain(doc.subject.iter());
        for d in descriptors {
            assert_eq!(Digest::parse(&d.digest.to_string()).as_ref(), Ok(&d.digest));
            let _ = d.platform_name();
        }
        let _ = doc.is_index(doc.media_type.as_deref().unwrap_or_default());
    }
    if let Ok(input) = std::str::from_utf8(data)
        && let Some(Ok(parsed)) = LayoutRef::parse(input)
    {
        let printed = parsed.to_string();
        match LayoutRef::parse(&printed) {
            Some(Ok(again)) => assert_eq!(again, parsed, "{printed:?}"),
            other => panic!("{printed:?} (from {input:?}) does not parse back: {other:?}"),
        }
    }
});
