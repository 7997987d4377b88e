//! Property tests of the parsers that read what uploaders send (the stable-toolchain twin of
//! the cargo-fuzz targets in `fuzz/`): no input makes them panic, and what they accept keeps
//! its invariants.

use palisade_dist::{CoreMetadata, DistFilename, DistKind, normalize};
use proptest::prelude::*;

/// Valid project names, in varied spellings.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]([A-Za-z0-9._-]{0,12}[A-Za-z0-9])?"
}

fn version() -> impl Strategy<Value = String> {
    ("[0-9]{1,3}", prop::collection::vec("[0-9]{1,3}", 0..3), prop::option::of("(a|b|rc|\\.post|\\.dev)[0-9]{1,2}")).prop_map(
        |(major, rest, pre)| format!("{major}{}{}", rest.iter().map(|r| format!(".{r}")).collect::<String>(), pre.unwrap_or_default()),
    )
}

fn tags() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["py3", "py2", "cp311", "none", "abi3", "any", "manylinux2014_x86_64", "linux_x86_64"]),
        1..3,
    )
    .prop_map(|t| t.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn filenames_never_panic(s in "\\PC{0,80}") {
        let _ = DistFilename::parse(&s);
    }

    #[test]
    fn filenames_from_bytes_of_the_grammar_never_panic(s in "[A-Za-z0-9._+!-]{0,60}(\\.whl|\\.tar\\.gz)") {
        if let Ok(f) = DistFilename::parse(&s) {
            prop_assert_eq!(f.normalized_name.clone(), normalize(&f.name));
            let _ = f.identity();
        }
    }

    #[test]
    fn valid_wheel_names_parse_to_their_parts(n in name(), v in version(), py in tags(), abi in tags(), plat in tags()) {
        let escaped = normalize(&n).replace('-', "_");
        let filename = format!("{escaped}-{v}-{py}-{abi}-{plat}.whl");
        let f = DistFilename::parse(&filename).unwrap();
        prop_assert_eq!(f.kind, DistKind::Wheel);
        prop_assert_eq!(f.normalized_name, normalize(&n));
        prop_assert_eq!(f.python_tag.as_deref(), Some(py.as_str()));
    }

    #[test]
    fn spellings_of_one_wheel_share_an_identity(n in name(), v in version(), py in tags(), plat in tags()) {
        let canonical = format!("{}-{v}-{py}-none-{plat}.whl", normalize(&n).replace('-', "_"));
        // Another case, a trailing zero in the version, the tags in another order.
        let mut reversed_py: Vec<&str> = py.split('.').collect();
        reversed_py.reverse();
        let release_end = v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len());
        let longer = format!("{}.0{}", &v[..release_end].trim_end_matches('.'), &v[release_end..]);
        let other = format!("{}-{longer}-{}-none-{}.whl", normalize(&n).replace('-', "_").to_uppercase(), reversed_py.join("."), plat.to_uppercase());
        let (a, b) = (DistFilename::parse(&canonical).unwrap(), DistFilename::parse(&other).unwrap());
        prop_assert_eq!(a.identity(), b.identity());
    }

    #[test]
    fn metadata_never_panics(raw in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = CoreMetadata::parse(&raw);
    }

    #[test]
    fn metadata_made_of_header_lines_never_panics(lines in prop::collection::vec(
        "(Metadata-Version|Name|Version|Summary|Requires-Python|Requires-Dist|[A-Za-z-]{1,10}|From|\\s)[:]? ?\\PC{0,20}", 0..12)) {
        let _ = CoreMetadata::parse(lines.join("\n").as_bytes());
    }

    #[test]
    fn accepted_metadata_names_the_release(n in name(), v in version(), summary in "[ -~]{0,40}") {
        let raw = format!("Metadata-Version: 2.1\nName: {n}\nVersion: {v}\nSummary: {summary}\n\nbody\n");
        let m = CoreMetadata::parse(raw.as_bytes()).unwrap();
        prop_assert_eq!(m.normalized_name, normalize(&n));
        prop_assert_eq!(m.version, palisade_dist::parse_version(&v).unwrap());
    }
}
