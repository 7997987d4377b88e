//! The scanner's Python analysis (lexical gates, tree-sitter parse, every context, `.pth`) on
//! arbitrary bytes: no panic, no runaway.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 64 << 10 {
        return;
    }
    let _ = palisade_scan::fuzzing::python_file(data);
});
