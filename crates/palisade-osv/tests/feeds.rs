//! The crate end to end on real ossf/malicious-packages records: reading them from a folder laid
//! out as that repository is, deciding on them, writing Palisade's own verdicts and reading those
//! back through the export layout.

use std::io::Write;
use std::path::{Path, PathBuf};

use palisade_osv::{
    Advisory, Credit, FileDigests, OsvError, SCHEMA_VERSION, Verdict, blocking, contribution, parse, read_folder, read_zip, read_zip_bytes,
    record, write_zip,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malicious-packages")
}

fn fixture(rel: &str) -> Advisory {
    parse(&std::fs::read(fixtures().join(rel)).unwrap()).unwrap()
}

const BLA: &str = "osv/malicious/pypi/123bla/MAL-2024-10238.json";
const REQUESTS: &str = "osv/malicious/pypi/0requests/MAL-2026-15859.json";
const FASTAPI: &str = "osv/withdrawn/pypi/fastapi/MAL-2026-4750.json";

#[test]
fn the_fixtures_parse_and_decide() {
    let bla = fixture(BLA);
    assert_eq!(bla.id, "MAL-2024-10238");
    assert!(bla.malicious && bla.withdrawn.is_none());
    assert!(bla.affects("123bla", "0.0.1") && bla.affects("123BLA", "0.0.1.0"));
    assert!(!bla.affects("123bla", "0.0.2"));

    let requests = fixture(REQUESTS);
    assert_eq!(requests.modified, "2026-09-04T00:47:46.156672516Z");
    let wheel = "c8784cf0aa8fa13a43614fbd6d51902feeecafdc06fc4db2695fd2572db66db8";
    let sdist = "99aed88269a370198174a549985d8ae7ccc0690aab5185685b960b77914ba31f";
    assert_eq!(requests.packages[0].sha256, [wheel, sdist]);
    // The evidence files inside the package are not package files.
    assert!(!requests.lists_file("b2a6588476f40845a2df173d57d436dc47c0dfd044bcffdc936be1b509cffd3d"));
    // A re-uploaded file is caught by its digest even under another name and version.
    let set = [bla.clone(), requests.clone(), fixture(FASTAPI)];
    assert_eq!(blocking(&set, "renamed", "9.9", &wheel.to_uppercase()).map(|a| a.id.as_str()), Some("MAL-2026-15859"));
    assert_eq!(blocking(&set, "123Bla", "0.0.1", "").map(|a| a.id.as_str()), Some("MAL-2024-10238"));

    let fastapi = &set[2];
    assert_eq!(fastapi.withdrawn.as_deref(), Some("2026-05-26T13:04:03Z"));
    assert!(fastapi.malicious && fastapi.affects("fastapi", "0.136.3"));
    assert!(fastapi.lists_file("3d2a69bdf04b7e9f3afa292c3bc7a98816bbfafa10bc9b45f3f3700d2f761620"));
    // Withdrawn: it still says what it covered, but blocks nothing.
    assert_eq!(blocking(&set, "fastapi", "0.136.3", "3d2a69bdf04b7e9f3afa292c3bc7a98816bbfafa10bc9b45f3f3700d2f761620"), None);
}

#[test]
fn read_folder_reads_a_checkout_layout() {
    let mut seen = Vec::new();
    let stats = read_folder(&fixtures(), |path, raw, result| {
        assert!(!raw.is_empty());
        let a = result.unwrap();
        seen.push((path.to_string_lossy().into_owned(), a.id, a.withdrawn.is_some()));
    })
    .unwrap();
    assert_eq!(stats.records, 3);
    assert_eq!(stats.skipped, 1, "the README");
    seen.sort();
    assert_eq!(
        seen,
        [
            (REQUESTS.into(), "MAL-2026-15859".into(), false),
            (BLA.into(), "MAL-2024-10238".into(), false),
            (FASTAPI.into(), "MAL-2026-4750".into(), true),
        ]
    );
}

#[cfg(unix)]
#[test]
fn read_folder_skips_links_git_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("osv/malicious/pypi/123bla")).unwrap();
    std::fs::copy(fixtures().join(BLA), root.join("osv/malicious/pypi/123bla/MAL-2024-10238.json")).unwrap();
    // A link to a record outside the feed, and a link to a folder outside it: neither is followed.
    std::os::unix::fs::symlink(fixtures().join(REQUESTS), root.join("osv/link.json")).unwrap();
    std::os::unix::fs::symlink(fixtures().join("osv/withdrawn"), root.join("osv/withdrawn")).unwrap();
    std::fs::create_dir_all(root.join(".git/objects")).unwrap();
    std::fs::write(root.join(".git/objects/x.json"), "{}").unwrap();
    std::fs::write(root.join("osv/broken.json"), "{not json").unwrap();
    let big = std::fs::File::create(root.join("osv/huge.json")).unwrap();
    big.set_len(palisade_osv::MAX_RECORD_BYTES as u64 + 10).unwrap();

    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let stats = read_folder(root, |path, _, result| match result {
        Ok(a) => ok.push(a.id),
        Err(e) => failed.push((path.to_string_lossy().into_owned(), e.to_string())),
    })
    .unwrap();
    assert_eq!(ok, ["MAL-2024-10238"]);
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0].0 == "osv/broken.json" && failed[0].1.contains("not valid JSON"), "{failed:?}");
    assert!(failed[1].0 == "osv/huge.json" && failed[1].1.contains("larger than"), "{failed:?}");
    assert_eq!((stats.records, stats.skipped), (3, 3), "two links and .git skipped");
}

fn verdict() -> Verdict {
    Verdict {
        id: palisade_osv::local_id(palisade_osv::DEFAULT_PREFIX, 2026, 7),
        name: "Evil_Pkg".into(),
        versions: vec!["1.0".into(), "1.1".into()],
        files: vec![FileDigests {
            filename: "evil_pkg-1.0-py3-none-any.whl".into(),
            sha256: "AA".repeat(32),
            blake2b_256: "bb".repeat(32),
            md5: "cc".repeat(16),
        }],
        summary: "Malicious code in evil-pkg (PyPI)".into(),
        details: "Runs a credential stealer from setup.py.".into(),
        published: "2026-10-01T12:00:00Z".into(),
        modified: "2026-10-01T12:00:00Z".into(),
        withdrawn: None,
        credit: Credit { name: "Palisade at example.org".into(), contact: vec!["https://example.org".into()] },
        references: vec!["https://example.org/advisories/x_PALISADE-2026-7".into()],
    }
}

#[test]
fn verdict_records_read_back_and_match_the_feed_shape() {
    let v = verdict();
    let rec = record(&v).unwrap();
    assert_eq!(rec["schema_version"], SCHEMA_VERSION);
    assert_eq!(rec["affected"][0]["package"], serde_json::json!({"ecosystem": "PyPI", "name": "evil-pkg"}));
    // The CWE object is exactly the one ossf/malicious-packages writes.
    let upstream: serde_json::Value = serde_json::from_slice(&std::fs::read(fixtures().join(REQUESTS)).unwrap()).unwrap();
    assert_eq!(rec["affected"][0]["database_specific"]["cwes"], upstream["affected"][0]["database_specific"]["cwes"]);
    assert_eq!(rec["credits"][0]["type"], "FINDER");
    assert_eq!(rec["references"][0]["type"], "WEB");
    assert!(rec.get("withdrawn").is_none());

    let a = parse(rec.to_string().as_bytes()).unwrap();
    assert!(a.malicious && a.withdrawn.is_none());
    assert!(a.affects("evil-pkg", "1.0") && a.affects("EVIL.PKG", "1.1.0") && !a.affects("evil-pkg", "1.2"));
    assert!(a.lists_file(&"aa".repeat(32)));

    // Offsets are written as UTC, the only form the schema's pattern allows.
    let withdrawn = Verdict { withdrawn: Some("2026-10-02T02:00:00.5+02:00".into()), ..verdict() };
    let rec_withdrawn = record(&withdrawn).unwrap();
    assert_eq!(rec_withdrawn["withdrawn"], "2026-10-02T00:00:00.5Z");
    let back = parse(rec_withdrawn.to_string().as_bytes()).unwrap();
    assert_eq!(blocking([&back], "evil-pkg", "1.0", ""), None);

    let pr = contribution(&rec);
    assert!(pr.get("id").is_none() && pr.get("summary").is_none() && pr.get("details").is_some());

    let bad = Verdict { files: vec![FileDigests { sha256: "zz".into(), ..verdict().files[0].clone() }], ..verdict() };
    assert!(matches!(record(&bad), Err(OsvError::Verdict { .. })));
    let bad = Verdict { modified: "now".into(), ..verdict() };
    assert!(record(&bad).unwrap_err().to_string().contains("modified \"now\" is not an RFC 3339 timestamp"));
}

#[test]
fn zip_round_trip() {
    let ours = record(&verdict()).unwrap().to_string().into_bytes();
    let theirs = std::fs::read(fixtures().join(BLA)).unwrap();
    let zip = write_zip(&[("x_PALISADE-2026-7".into(), ours), ("MAL-2024-10238".into(), theirs)]).unwrap();
    let mut ids = Vec::new();
    let stats = read_zip_bytes(&zip, |name, raw, result| {
        assert_eq!(parse(raw).unwrap().id, result.as_ref().unwrap().id);
        ids.push((name.to_string(), result.unwrap().id))
    })
    .unwrap();
    assert_eq!(
        ids,
        [
            ("x_PALISADE-2026-7.json".to_string(), "x_PALISADE-2026-7".to_string()),
            ("MAL-2024-10238.json".to_string(), "MAL-2024-10238".to_string())
        ]
    );
    assert_eq!((stats.entries, stats.records, stats.skipped), (2, 2, 0));

    // The same from a file on disk.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &zip).unwrap();
    let mut n = 0;
    read_zip(file.path(), |_, _, r| n += usize::from(r.is_ok())).unwrap();
    assert_eq!(n, 2);

    assert!(write_zip(&[("../escape".into(), b"{}".to_vec())]).is_err());
    assert!(write_zip(&[("A-1".into(), b"{}".to_vec()), ("A-1".into(), b"{}".to_vec())]).is_err());
    assert!(matches!(read_zip_bytes(b"not a zip", |_, _, _| {}), Err(OsvError::Zip { .. })));
}

/// Overwrites the uncompressed size field in every local header and central directory entry.
fn lie_about_sizes(zip: &mut [u8], size: u32) {
    for at in 0..zip.len().saturating_sub(30) {
        match &zip[at..at + 4] {
            [0x50, 0x4b, 0x03, 0x04] => zip[at + 22..at + 26].copy_from_slice(&size.to_le_bytes()),
            [0x50, 0x4b, 0x01, 0x02] => zip[at + 24..at + 28].copy_from_slice(&size.to_le_bytes()),
            _ => {}
        }
    }
}

#[test]
fn zip_entries_are_bounded_whatever_their_headers_say() {
    // An entry that inflates past the bound, beside a folder and a README that are skipped.
    let big = vec![b' '; palisade_osv::MAX_RECORD_BYTES + 100];
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file("MAL-1.json", o).unwrap();
        z.write_all(&big).unwrap();
        z.add_directory("dir/", o).unwrap();
        z.start_file("README.md", o).unwrap();
        z.write_all(b"hello").unwrap();
        z.finish().unwrap();
    }
    let honest = buf.into_inner();
    // Headers declaring too little (the zip reader itself stops there) and too much (Palisade's
    // own read limit stops there): either way one error for the entry, and a bounded read.
    for (declared, reason) in [(100, "larger than its declared"), (100 << 20, "decompresses to more than")] {
        let mut bytes = honest.clone();
        lie_about_sizes(&mut bytes, declared);
        let mut errors = Vec::new();
        let stats = read_zip_bytes(&bytes, |name, _, r| errors.push((name.to_string(), r.unwrap_err().to_string()))).unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].0 == "MAL-1.json" && errors[0].1.contains(reason), "{errors:?}");
        assert!(stats.bytes <= palisade_osv::MAX_RECORD_BYTES as u64 + 1, "{stats:?}");
        assert_eq!(stats.skipped, 2, "a folder and a README");
    }
}
