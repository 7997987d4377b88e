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

/// Builds an sdist from members that may be links: `(name, Some(data))` is a file,
/// `(name, None)` with `link` set is a symlink (or a hard link when it starts with `=`).
fn sdist_raw(members: &[(&str, &[u8], Option<&str>)], terminated: bool) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, data, link) in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match link {
            Some(target) => {
                let (kind, target) =
                    if let Some(t) = target.strip_prefix('=') { (tar::EntryType::Link, t) } else { (tar::EntryType::Symlink, *target) };
                h.set_entry_type(kind);
                h.set_size(0);
                t.append_link(&mut h, name, target).unwrap();
            }
            None => {
                h.set_size(data.len() as u64);
                t.append_data(&mut h, name, *data).unwrap();
            }
        }
    }
    let mut raw = t.into_inner().unwrap();
    if !terminated {
        raw.truncate(raw.len() - 1024);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap()
}

fn read_bytes(data: &[u8], filename: &str) -> Result<Vec<u8>, ArchiveError> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    read(&f, filename)
}

const SDIST: &str = "demo-1.0.tar.gz";

fn refused(r: Result<Vec<u8>, ArchiveError>, needle: &str) {
    match r {
        Ok(_) => panic!("accepted; expected a refusal mentioning {needle:?}"),
        Err(e) => assert!(e.to_string().contains(needle), "{e}"),
    }
}

#[test]
fn sdist_links_inside_the_tree_are_accepted() {
    let data = sdist_raw(
        &[("demo-1.0/PKG-INFO", META, None), ("demo-1.0/docs/n.txt", b"x", None), ("demo-1.0/setup.py", b"", Some("docs/n.txt"))],
        true,
    );
    assert_eq!(read_bytes(&data, SDIST).unwrap(), META);
}

#[test]
fn sdist_link_chain_out_of_the_tree_is_refused() {
    let data = sdist_raw(
        &[
            ("demo-1.0/PKG-INFO", META, None),
            ("demo-1.0/up", b"", Some("..")),
            ("demo-1.0/up2", b"", Some("up/..")),
            ("demo-1.0/up3", b"", Some("up2/..")),
            ("demo-1.0/up3/escaped.txt", b"x", None),
        ],
        true,
    );
    refused(read_bytes(&data, SDIST), "points outside the archive");
}

#[test]
fn sdist_regular_file_then_link_of_the_same_name_is_refused() {
    let data = sdist_raw(
        &[
            ("demo-1.0/PKG-INFO", META, None),
            ("demo-1.0/docs/n.txt", b"x", None),
            ("demo-1.0/setup.py", b"from setuptools import setup", None),
            ("demo-1.0/setup.py", b"", Some("docs/n.txt")),
        ],
        true,
    );
    refused(read_bytes(&data, SDIST), "more than once");
    // A hard link of the same name too.
    let data = sdist_raw(
        &[
            ("demo-1.0/PKG-INFO", META, None),
            ("demo-1.0/n.txt", b"x", None),
            ("demo-1.0/setup.py", b"s", None),
            ("demo-1.0/setup.py", b"", Some("=demo-1.0/n.txt")),
        ],
        true,
    );
    refused(read_bytes(&data, SDIST), "more than once");
}

#[test]
fn sdist_second_gzip_member_is_read() {
    let mut data = sdist_raw(&[("demo-1.0/PKG-INFO", META, None), ("demo-1.0/setup.py", b"harmless", None)], false);
    data.extend(sdist_raw(&[("demo-1.0/setup.py", b"exec(payload)", None)], true));
    refused(read_bytes(&data, SDIST), "more than once");
    // A second member whose PKG-INFO replaces the first one's.
    let mut data = sdist_raw(&[("demo-1.0/PKG-INFO", META, None)], false);
    data.extend(sdist_raw(&[("demo-1.0/PKG-INFO", b"Metadata-Version: 2.1\nName: other\nVersion: 9\n", None)], true));
    refused(read_bytes(&data, SDIST), "more than once");
}

#[test]
fn sdist_data_after_the_archive_end_is_refused() {
    let mut data = sdist_raw(&[("demo-1.0/PKG-INFO", META, None)], true);
    data.extend(sdist_raw(&[("demo-1.0/evil.py", b"exec(payload)", None)], true));
    refused(read_bytes(&data, SDIST), "after the end of its tar archive");
}

#[test]
fn sdist_pkg_info_must_be_a_regular_file() {
    let data = sdist_raw(&[("demo-1.0/real", META, None), ("demo-1.0/PKG-INFO", b"", Some("real"))], true);
    refused(read_bytes(&data, SDIST), "must be a regular file");
}

#[test]
fn sdist_top_folder_of_another_project_is_refused() {
    let data = sdist_raw(&[("other-1.0/PKG-INFO", META, None)], true);
    refused(read_bytes(&data, SDIST), "top-level folder \"other-1.0\" is not that of demo 1.0");
    let data = sdist_raw(&[("demo-2.0/PKG-INFO", META, None)], true);
    refused(read_bytes(&data, SDIST), "is not that of demo 1.0");
    // Old spellings of the same release are fine.
    let data = sdist_raw(&[("Demo-1.0.0/PKG-INFO", META, None)], true);
    assert!(read_bytes(&data, SDIST).is_ok());
}

#[test]
fn sdist_names_that_differ_only_in_case_are_refused() {
    let data = sdist_raw(&[("demo-1.0/PKG-INFO", META, None), ("demo-1.0/setup.py", b"a", None), ("demo-1.0/Setup.py", b"b", None)], true);
    refused(read_bytes(&data, SDIST), "differ only in case");
}

#[test]
fn wheel_dist_info_of_another_project_is_refused() {
    let f = wheel(&[("other-1.0.dist-info/METADATA", META), ("other-1.0.dist-info/WHEEL", b"x"), ("other-1.0.dist-info/RECORD", b"")]);
    refused(read(&f, WHL), "metadata folder \"other-1.0.dist-info\" is not that of demo 1.0");
    let f = wheel(&[("demo-2.0.dist-info/METADATA", META), ("demo-2.0.dist-info/WHEEL", b"x"), ("demo-2.0.dist-info/RECORD", b"")]);
    refused(read(&f, WHL), "is not that of demo 1.0");
}

#[test]
fn wheel_member_named_otherwise_in_its_local_header_is_refused() {
    let mut bytes = std::fs::read(
        wheel(&[
            ("demo/helper_data_0001.py", b"x"),
            ("demo-1.0.dist-info/METADATA", META),
            ("demo-1.0.dist-info/WHEEL", b"x"),
            ("demo-1.0.dist-info/RECORD", b""),
        ])
        .path(),
    )
    .unwrap();
    let pos = bytes.windows(24).position(|w| w == b"demo/helper_data_0001.py").unwrap();
    bytes[pos..pos + 24].copy_from_slice(b"demo/zzzzzzzzzzzzzzz.pth");
    refused(read_bytes(&bytes, WHL), "is also named \"demo/zzzzzzzzzzzzzzz.pth\"");
}

#[test]
fn wheel_unicode_path_field_is_refused() {
    let f = tempfile::NamedTempFile::new().unwrap();
    let mut z = zip::ZipWriter::new(f.reopen().unwrap());
    let mut field = vec![1u8];
    field.extend(crc32fast::hash(b"demo/__init__.py").to_le_bytes());
    field.extend_from_slice(b"demo/__INIT__.PY");
    let mut o = zip::write::FullFileOptions::default();
    o.add_extra_field(0x7075, &field, false).unwrap();
    z.start_file("demo/__init__.py", o).unwrap();
    let plain = zip::write::SimpleFileOptions::default();
    for (n, d) in [("demo-1.0.dist-info/METADATA", META), ("demo-1.0.dist-info/WHEEL", b"x"), ("demo-1.0.dist-info/RECORD", b"")] {
        z.start_file(n, plain).unwrap();
        z.write_all(d).unwrap();
    }
    z.finish().unwrap();
    refused(read(&f, WHL), "is also named \"demo/__INIT__.PY\"");
}

#[test]
fn wheel_member_below_a_file_is_refused() {
    let f = wheel(&[
        ("demo/x", b"file"),
        ("demo/x/y.py", b"below it"),
        ("demo-1.0.dist-info/METADATA", META),
        ("demo-1.0.dist-info/WHEEL", b"x"),
        ("demo-1.0.dist-info/RECORD", b""),
    ]);
    refused(read(&f, WHL), "more than once (or below a file)");
}

#[test]
fn sdist_file_stated_twice_with_the_same_bytes_is_one_file() {
    // pyarrow's sdist states LICENSE.txt and NOTICE.txt twice, identically.
    let data = sdist_raw(
        &[("demo-1.0/PKG-INFO", META, None), ("demo-1.0/LICENSE.txt", b"Apache", None), ("demo-1.0/LICENSE.txt", b"Apache", None)],
        true,
    );
    assert_eq!(read_bytes(&data, SDIST).unwrap(), META);
    let data = sdist_raw(
        &[("demo-1.0/PKG-INFO", META, None), ("demo-1.0/LICENSE.txt", b"Apache", None), ("demo-1.0/LICENSE.txt", b"Apachf", None)],
        true,
    );
    refused(read_bytes(&data, SDIST), "more than once");
}

/// One raw ustar header (and its data, padded), with `size` free to disagree with the data.
fn raw_member(name: &str, kind: tar::EntryType, size: u64, data: &[u8], link: &str) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    if !link.is_empty() {
        h.set_link_name(link).unwrap();
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn gz_bytes(raw: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(raw).unwrap();
    gz.finish().unwrap()
}

#[test]
fn sdist_folder_or_link_carrying_a_member_as_data_is_refused() {
    let hidden = raw_member("demo-1.0/setup.py", tar::EntryType::Regular, 13, b"exec(payload)", "");
    for (kind, link) in [(tar::EntryType::Directory, ""), (tar::EntryType::Symlink, "PKG-INFO")] {
        let mut raw = raw_member("demo-1.0/PKG-INFO", tar::EntryType::Regular, META.len() as u64, META, "");
        raw.extend(raw_member("demo-1.0/docs", kind, hidden.len() as u64, &[], link));
        raw.extend(&hidden);
        raw.extend([0u8; 1024]);
        refused(read_bytes(&gz_bytes(&raw), SDIST), "bytes of data, which tar readers skip differently");
    }
}

#[test]
fn sdist_gnu_long_name_over_4096_bytes_is_refused_before_it_is_read() {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_size(256 << 20);
    h.set_cksum();
    let mut raw = raw_member("demo-1.0/PKG-INFO", tar::EntryType::Regular, META.len() as u64, META, "");
    raw.extend(h.as_bytes());
    raw.extend(vec![b'a'; 1 << 20]);
    refused(read_bytes(&gz_bytes(&raw), SDIST), "GNU long name of 268435456 bytes");
}

#[test]
fn wheel_whose_end_record_undercounts_its_members_is_refused() {
    let f = wheel(&[
        ("demo/__init__.py", b""),
        ("demo-1.0.dist-info/METADATA", META),
        ("demo-1.0.dist-info/WHEEL", b"x"),
        ("demo-1.0.dist-info/RECORD", b""),
        ("zcount.pth", b"import os"),
    ]);
    let mut bytes = std::fs::read(f.path()).unwrap();
    let e = bytes.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
    let n = u16::from_le_bytes([bytes[e + 10], bytes[e + 11]]) - 1;
    bytes[e + 8..e + 10].copy_from_slice(&n.to_le_bytes());
    bytes[e + 10..e + 12].copy_from_slice(&n.to_le_bytes());
    refused(read_bytes(&bytes, WHL), "more members than its end record counts");
}

#[test]
fn wheel_that_is_not_a_zip_from_its_first_byte_is_refused() {
    let f = wheel(&[("demo-1.0.dist-info/METADATA", META), ("demo-1.0.dist-info/WHEEL", b"x"), ("demo-1.0.dist-info/RECORD", b"")]);
    let mut bytes = b"\x1f\x8b\x08\x00 a gzip stream in front".to_vec();
    bytes.extend(std::fs::read(f.path()).unwrap());
    refused(read_bytes(&bytes, WHL), "must start with a zip member header");
}
