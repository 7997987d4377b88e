//! Core metadata (METADATA, PKG-INFO): the upload's parser and the scanner's never panic, and
//! what the upload accepts has a valid name and version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_dist::CoreMetadata;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = CoreMetadata::parse(data) {
        assert!(palisade_dist::ProjectName::new(&m.normalized_name).is_ok());
    }
    let _ = palisade_scan::fuzzing::metadata(data);
});
