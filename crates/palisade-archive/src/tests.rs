use super::*;
use std::io::Write;

const META: &[u8] = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";

fn wheel(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    let mut z = zip::ZipWriter::new(f.reopen().unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
    f
}

fn sdist(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    let gz = flate2::write::GzEncoder::new(f.reopen().unwrap(), flate2::Compression::default());
    let mut t = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, name, *data).unwrap();
    }
    t.into_inner().unwrap().finish().unwrap();
    f
}

fn read(f: &tempfile::NamedTempFile, filename: &str) -> Result<Vec<u8>, ArchiveError> {
    read_core_metadata(f.path(), &DistFilename::parse(filename).unwrap(), filename, &Limits::default())
}

const WHL: &str = "demo-1.0-py3-none-any.whl";

#[test]
fn reads_wheel_metadata() {
    let f = wheel(&[
        ("demo/__init__.py", b""),
        ("demo-1.0.dist-info/METADATA", META),
        ("demo-1.0.dist-info/WHEEL", b"x"),
        ("demo-1.0.dist-info/RECORD", b""),
    ]);
    assert_eq!(read(&f, WHL).unwrap(), META);
}

#[test]
fn wheel_without_record_is_refused() {
    let f = wheel(&[("demo-1.0.dist-info/METADATA", META), ("demo-1.0.dist-info/WHEEL", b"x")]);
    let err = read(&f, WHL).unwrap_err().to_string();
    assert!(err.contains("RECORD"), "{err}");
}

#[test]
fn wheel_with_traversal_is_refused() {
    let f = wheel(&[
        ("../evil.py", b""),
        ("demo-1.0.dist-info/METADATA", META),
        ("demo-1.0.dist-info/WHEEL", b"x"),
        ("demo-1.0.dist-info/RECORD", b""),
    ]);
    assert!(matches!(read(&f, WHL), Err(ArchiveError::UnsafePath(..))));
}

#[test]
fn two_dist_infos_are_refused() {
    let f = wheel(&[("a-1.0.dist-info/METADATA", META), ("demo-1.0.dist-info/METADATA", META)]);
    assert!(matches!(read(&f, WHL), Err(ArchiveError::Layout(..))));
}

#[test]
fn not_a_zip_is_refused() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"PK\x03\x04 this is not really a zip").unwrap();
    assert!(matches!(read(&f, WHL), Err(ArchiveError::Zip(..))));
}

#[test]
fn wheel_bomb_is_refused() {
    let big = vec![0u8; 70 << 20];
    let f = wheel(&[
        ("demo/zeros", &big),
        ("demo-1.0.dist-info/METADATA", META),
        ("demo-1.0.dist-info/WHEEL", b"x"),
        ("demo-1.0.dist-info/RECORD", b""),
    ]);
    assert!(matches!(read(&f, WHL), Err(ArchiveError::Ratio(..))));
}

#[test]
fn oversized_metadata_is_refused() {
    let f = wheel(&[("demo-1.0.dist-info/METADATA", META), ("demo-1.0.dist-info/WHEEL", b"x"), ("demo-1.0.dist-info/RECORD", b"")]);
    let limits = Limits { max_metadata_bytes: 10, ..Limits::default() };
    let r = read_core_metadata(f.path(), &DistFilename::parse(WHL).unwrap(), WHL, &limits);
    assert!(matches!(r, Err(ArchiveError::MetadataTooLarge(..))));
}

#[test]
fn reads_sdist_metadata() {
    let f = sdist(&[("demo-1.0/setup.py", b""), ("demo-1.0/PKG-INFO", META), ("demo-1.0/src/demo.egg-info/PKG-INFO", b"other")]);
    assert_eq!(read(&f, "demo-1.0.tar.gz").unwrap(), META);
}

#[test]
fn sdist_with_two_roots_is_refused() {
    let f = sdist(&[("demo-1.0/PKG-INFO", META), ("other/x", b"")]);
    assert!(matches!(read(&f, "demo-1.0.tar.gz"), Err(ArchiveError::Layout(..))));
}

#[test]
fn sdist_without_pkg_info_is_refused() {
    let f = sdist(&[("demo-1.0/setup.py", b"")]);
    assert!(matches!(read(&f, "demo-1.0.tar.gz"), Err(ArchiveError::Layout(..))));
}

#[test]
fn truncated_sdist_is_refused() {
    let f = sdist(&[("demo-1.0/PKG-INFO", META), ("demo-1.0/big", &vec![7u8; 100_000])]);
    let data = std::fs::read(f.path()).unwrap();
    let mut g = tempfile::NamedTempFile::new().unwrap();
    g.write_all(&data[..data.len() - 20]).unwrap();
    assert!(matches!(read(&g, "demo-1.0.tar.gz"), Err(ArchiveError::Tar(..))));
}

#[test]
fn member_paths() {
    for ok in ["a", "a/b.py", "a/./b", "a..b/c"] {
        assert!(is_safe_member_path(ok), "{ok}");
    }
    for bad in ["", "/etc/passwd", "../x", "a/../../x", "a\\b", "C:/x", "a\0b", "a/\nb"] {
        assert!(!is_safe_member_path(bad), "{bad:?}");
    }
    assert!(escapes_root("a/../../b"));
    assert!(!escapes_root("a/b/../c"));
}

#[test]
fn duplicate_metadata_is_refused() {
    let mut bytes = std::fs::read(
        wheel(&[
            ("demo-1.0.dist-info/METADATA", META),
            ("demo-1.0.dist-info/METADATB", META),
            ("demo-1.0.dist-info/WHEEL", b"x"),
            ("demo-1.0.dist-info/RECORD", b""),
        ])
        .path(),
    )
    .unwrap();
    for pos in bytes.windows(8).enumerate().filter(|(_, w)| *w == b"METADATB").map(|(i, _)| i).collect::<Vec<_>>() {
        bytes[pos + 7] = b'A';
    }
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&bytes).unwrap();
    assert!(matches!(read(&f, WHL), Err(ArchiveError::Duplicate(..))));
}

#[test]
fn sdist_bomb_is_refused_before_it_is_expanded() {
    // 40 MiB of zeros compress to ~40 KiB: with a 1 MiB floor the ratio trips on the header.
    let f = sdist(&[("demo-1.0/PKG-INFO", META), ("demo-1.0/zeros", &vec![0u8; 40 << 20])]);
    let limits = Limits { ratio_floor: 1 << 20, ..Limits::default() };
    let started = std::time::Instant::now();
    let r = read_core_metadata(f.path(), &DistFilename::parse("demo-1.0.tar.gz").unwrap(), "demo-1.0.tar.gz", &limits);
    assert!(matches!(r, Err(ArchiveError::Ratio(..))), "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
