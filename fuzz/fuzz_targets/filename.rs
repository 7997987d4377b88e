//! Distribution filenames: parsing never panics, a parsed name keeps its invariants, and the
//! file's identity is a function of what an installer reads from the name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_dist::DistFilename;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(f) = DistFilename::parse(text) {
        assert!(text.ends_with(".whl") || text.ends_with(".tar.gz"));
        assert_eq!(f.normalized_name, palisade_dist::normalize(&f.name));
        let _ = f.identity();
        let _ = f.pyversion();
    }
});
