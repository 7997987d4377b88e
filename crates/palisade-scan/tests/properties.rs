//! Property tests of the scanner's readers of hostile bytes (the stable-toolchain twin of
//! `fuzz/python.rs` and `fuzz/metadata.rs`): no input makes them panic.

use palisade_scan::fuzzing;
use proptest::prelude::*;

/// Python-ish text: tokens the analysis looks for, in any order.
fn python_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "import os",
            "import base64 as b",
            "from subprocess import *",
            "exec(",
            "eval(",
            "compile(",
            "__import__('zlib')",
            "b.b64decode(",
            "os.system(",
            "urllib.request.urlopen(",
            "'http://203.0.113.9/x'",
            ")",
            "(",
            ".read()",
            "def f(x):",
            "class A:",
            "lambda y:",
            "    ",
            "\n",
            "=",
            ",",
            "[",
            "]",
            "{",
            "}",
            "\"\"\"",
            "'''",
            "#",
            "\\",
            "if __name__ == '__main__':",
            "Thread(target=f)",
            "open('/tmp/x','w')",
            "f(",
            "x",
            "y",
            "requests.post(",
            "getattr(os, 'sys'+'tem')",
        ]),
        0..60,
    )
    .prop_map(|t| t.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn python_analysis_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = fuzzing::python_file(&bytes);
    }

    #[test]
    fn python_analysis_never_panics_on_token_soup(src in python_soup()) {
        let _ = fuzzing::python_file(src.as_bytes());
    }

    #[test]
    fn scanner_metadata_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = fuzzing::metadata(&bytes);
    }
}
