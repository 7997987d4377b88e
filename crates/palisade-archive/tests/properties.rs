//! Property tests of the archive readers (the stable-toolchain twin of `fuzz/archive.rs`): any
//! bytes, in any of the formats, are read without a panic and within the limits; an honest
//! archive is listed exactly; and whatever members a tar states, the walker either calls the
//! archive complete with one content per path, or refuses it.

use std::collections::BTreeMap;
use std::io::Write;

use palisade_archive::{WalkLimits, walk_bytes};
use proptest::prelude::*;

fn limits() -> WalkLimits {
    WalkLimits { max_total_uncompressed: 16 << 20, ratio_floor: 1 << 20, ..WalkLimits::default() }
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One tar member's kind.
#[derive(Clone, Debug)]
enum Entry {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// Paths from a small vocabulary, so that names collide and nest.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "setup.py", "x.pth", "sub", "A", "."]), 1..4)
        .prop_map(|parts| format!("p-1.0/{}", parts.join("/")))
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Entry::File),
        1 => Just(Entry::Dir),
        2 => prop::sample::select(vec!["a", "..", "../..", "sub/a", "b", "/etc/x", "c/../a", "."]).prop_map(|t| Entry::Symlink(t.into())),
        1 => path().prop_map(Entry::Hardlink),
    ]
}

fn tar(members: &[(String, Entry)], end: bool) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (p, e) in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        let r = match e {
            Entry::File(d) => {
                h.set_size(d.len() as u64);
                t.append_data(&mut h, p, d.as_slice())
            }
            Entry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                t.append_data(&mut h, p, &[][..])
            }
            Entry::Symlink(target) | Entry::Hardlink(target) => {
                h.set_entry_type(if matches!(e, Entry::Symlink(_)) { tar::EntryType::Symlink } else { tar::EntryType::Link });
                h.set_size(0);
                t.append_link(&mut h, p, target)
            }
        };
        r.unwrap();
    }
    let mut raw = t.into_inner().unwrap();
    if !end {
        raw.truncate(raw.len() - 1024);
    }
    raw
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_in_any_format_are_read_within_limits(bytes in prop::collection::vec(any::<u8>(), 0..2000), wrap in 0u8..3) {
        let (data, name) = match wrap {
            0 => (bytes.clone(), "p-1.0-py3-none-any.whl"),
            1 => (gz(&bytes), "p-1.0.tar.gz"),
            _ => (bytes.clone(), "p-1.0.tar"),
        };
        let l = limits();
        let mut total = 0u64;
        let w = walk_bytes(&data, name, &l, &mut |m| total += m.data.len() as u64);
        prop_assert!(w.entries <= l.max_entries + 1);
        prop_assert!(total <= l.max_total_uncompressed * 2);
    }

    #[test]
    fn mutated_honest_archives_are_read_without_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), zip in any::<bool>()) {
        let mut data = if zip {
            let mut buf = std::io::Cursor::new(Vec::new());
            let mut z = zip::ZipWriter::new(&mut buf);
            for (n, d) in [("p/__init__.py", &b"import os\n"[..]), ("p-1.0.dist-info/METADATA", b"Name: p\n")] {
                z.start_file(n, zip::write::SimpleFileOptions::default()).unwrap();
                z.write_all(d).unwrap();
            }
            z.finish().unwrap();
            buf.into_inner()
        } else {
            gz(&tar(&[("p-1.0/setup.py".into(), Entry::File(b"print(1)".to_vec())), ("p-1.0/l".into(), Entry::Symlink("setup.py".into()))], true))
        };
        for (i, b) in flips {
            let at = i.index(data.len());
            data[at] ^= b;
        }
        let _ = walk_bytes(&data, if zip { "p-1.0-py3-none-any.whl" } else { "p-1.0.tar.gz" }, &limits(), &mut |_| {});
    }

    #[test]
    fn honest_tars_are_listed_exactly(files in prop::collection::btree_map("[a-z]{1,6}(/[a-z]{1,6}){0,2}", prop::collection::vec(any::<u8>(), 0..50), 1..8)) {
        // Distinct paths, none of which is another's folder, nor the same in another case.
        let names: Vec<&String> = files.keys().collect();
        prop_assume!(!names.iter().any(|a| names.iter().any(|b| b.starts_with(&format!("{a}/")))));
        let members: Vec<(String, Entry)> = files.iter().map(|(p, d)| (format!("p-1.0/{p}"), Entry::File(d.clone()))).collect();
        let mut seen = BTreeMap::new();
        let w = walk_bytes(&gz(&tar(&members, true)), "p-1.0.tar.gz", &limits(), &mut |m| {
            seen.insert(m.path.trim_start_matches("p-1.0/").to_string(), m.data.to_vec());
        });
        prop_assert!(w.complete, "{:?}", w.anomalies);
        prop_assert_eq!(seen, files);
    }

    #[test]
    fn any_tar_is_complete_and_unambiguous_or_refused(members in prop::collection::vec((path(), entry()), 1..10), end in any::<bool>()) {
        let data = gz(&tar(&members, end));
        let mut listed: Vec<(String, Vec<u8>)> = Vec::new();
        let w = walk_bytes(&data, "p-1.0.tar.gz", &limits(), &mut |m| listed.push((m.path.to_string(), m.data.to_vec())));
        if w.complete {
            // One content per path: a path listed twice (a repeated file) has the same bytes.
            let mut by_path: BTreeMap<&str, &Vec<u8>> = BTreeMap::new();
            for (p, d) in &listed {
                if let Some(prev) = by_path.insert(p, d) {
                    prop_assert_eq!(prev, d, "{} listed with two contents", p);
                }
                prop_assert!(!p.contains("/./") && !p.contains("//") && !p.contains(".."), "{}", p);
            }
        }
    }
}
