//! The archive readers on arbitrary bytes, as each format: the walker never panics, stays
//! within its limits, and the upload's metadata reader never panics either. The first byte
//! picks how the rest is presented (raw, or wrapped in gzip or bzip2), so the fuzzer reaches
//! the tar reader behind the decompressors.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use palisade_archive::{Limits, WalkLimits, walk_bytes};
use palisade_dist::DistFilename;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (bytes, name) = match mode % 4 {
        0 => (rest.to_vec(), "demo-1.0-py3-none-any.whl"),
        1 => {
            let mut gz = flate2_like_gzip(rest);
            gz.shrink_to_fit();
            (gz, "demo-1.0.tar.gz")
        }
        2 => (rest.to_vec(), "demo-1.0.tar.gz"),
        _ => (rest.to_vec(), "demo-1.0.tar"),
    };
    let limits = WalkLimits { max_total_uncompressed: 64 << 20, ratio_floor: 1 << 20, ..WalkLimits::default() };
    let mut seen = 0u64;
    let walk = walk_bytes(&bytes, name, &limits, &mut |m| {
        assert!(m.data.len() as u64 <= limits.max_member_bytes);
        seen += m.data.len() as u64;
    });
    assert!(walk.entries <= limits.max_entries + 1);
    assert!(seen <= limits.max_total_uncompressed + limits.max_member_bytes * 2 * (u64::from(limits.max_depth) + 1));
    // The upload's reader, on the same bytes as a file.
    let Ok(mut f) = tempfile::NamedTempFile::new() else { return };
    if f.write_all(&bytes).is_err() {
        return;
    }
    let filename = DistFilename::parse(if name.ends_with(".whl") { name } else { "demo-1.0.tar.gz" }).expect("valid test name");
    let limits = Limits { max_total_uncompressed: 64 << 20, ratio_floor: 1 << 20, ..Limits::default() };
    let _ = palisade_archive::read_core_metadata(f.path(), &filename, name, &limits);
});

/// A gzip stream around `data` (stored blocks: no compressor needed).
fn flate2_like_gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(65535).peekable();
    if chunks.peek().is_none() {
        out.extend([1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let n = c.len() as u16;
        out.extend(n.to_le_bytes());
        out.extend((!n).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
