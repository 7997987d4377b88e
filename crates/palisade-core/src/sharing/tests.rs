//! The decision every path asks (`Blocks::decide`) against a plain reading of what a record
//! means, and the index (`Blocks::hide`) against downloads: they never disagree.

use proptest::prelude::*;

use super::{BLOCKED, Blocks};

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
const VERSIONS: [&str; 4] = ["0.1", "1.0", "1.0.0", "2.0"];
const HASHES: [&str; 3] = [
    "1111111111111111111111111111111111111111111111111111111111111111",
    "2222222222222222222222222222222222222222222222222222222222222222",
    "3333333333333333333333333333333333333333333333333333333333333333",
];

#[derive(Clone, Debug)]
struct Rec {
    n: usize,
    name: usize,
    versions: Vec<usize>,
    whole: bool,
    hash: Option<usize>,
    withdrawn: bool,
    malicious: bool,
}

fn json(r: &Rec) -> String {
    let id = if r.malicious { format!("MAL-2026-{}", r.n) } else { format!("PYSEC-2026-{}", r.n) };
    let versions: Vec<&str> = r.versions.iter().map(|&v| VERSIONS[v]).collect();
    let mut affected = serde_json::json!({ "package": { "ecosystem": "PyPI", "name": NAMES[r.name] }, "versions": versions });
    if r.whole {
        affected["ranges"] = serde_json::json!([{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }] }]);
    }
    if let Some(h) = r.hash {
        affected["database_specific"] =
            serde_json::json!({ "indicators": { "package_integrity": [{ "filename": "x.whl", "hashes": { "sha256": HASHES[h] } }] } });
    }
    let mut v = serde_json::json!({ "schema_version": "1.7.5", "id": id, "modified": "2026-01-01T00:00:00Z", "affected": [affected] });
    if r.withdrawn {
        v["withdrawn"] = serde_json::json!("2026-01-02T00:00:00Z");
    }
    v.to_string()
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        0usize..1000,
        0..NAMES.len(),
        proptest::collection::vec(0..VERSIONS.len(), 0..3),
        any::<bool>(),
        proptest::option::of(0..HASHES.len()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(n, name, versions, whole, hash, withdrawn, malicious)| Rec {
            n,
            name,
            versions,
            whole,
            hash,
            withdrawn,
            malicious,
        })
}

/// The waivers as (project, record id): each generated pair names a record by its index.
fn waived(recs: &[Rec], waivers: &[(usize, usize)]) -> Vec<(String, String)> {
    waivers.iter().filter_map(|&(i, name)| recs.get(i).map(|r| (NAMES[name].to_string(), format!("MAL-2026-{}", r.n)))).collect()
}

/// Blocks as `Core::refresh_blocks` builds them: only malicious, not withdrawn records.
fn blocks(recs: &[Rec], waived: &[(String, String)]) -> Blocks {
    let advisories = recs
        .iter()
        .filter(|r| r.malicious && !r.withdrawn)
        .map(|r| (palisade_osv::parse(json(r).as_bytes()).expect("a generated record reads"), "feed".to_string()))
        .collect();
    Blocks::new(advisories, waived.iter().cloned(), 1)
}

/// What a record means, read plainly: it blocks a file when it is malicious, not withdrawn, not
/// waived for the project, and names the project's version (PEP 440 equality) or the whole
/// project, or lists the file's hash.
fn reference(recs: &[Rec], waived: &[(String, String)], name: usize, version: usize, hash: usize) -> bool {
    recs.iter().any(|r| {
        let waived = waived.iter().any(|(p, id)| p == NAMES[name] && *id == format!("MAL-2026-{}", r.n));
        let same = |a: &str, b: &str| palisade_dist::parse_version(a).ok() == palisade_dist::parse_version(b).ok();
        let names = r.name == name && (r.whole || r.versions.iter().any(|&v| same(VERSIONS[v], VERSIONS[version])));
        r.malicious && !r.withdrawn && !waived && (names || r.hash == Some(hash))
    })
}

fn file(name: usize, version: usize, hash: usize) -> palisade_store::FileRow {
    palisade_store::FileRow {
        id: 1,
        release_id: 1,
        project_id: 1,
        version: VERSIONS[version].into(),
        filename: format!("{}-{}-py3-none-any.whl", NAMES[name], VERSIONS[version]),
        packagetype: "bdist_wheel".into(),
        python_version: "py3".into(),
        size: 10,
        sha256: HASHES[hash].into(),
        blake2b_256: "cd".into(),
        md5: "ef".into(),
        upload_time: 1_700_000_000_123_456,
        requires_python: None,
        metadata_sha256: "12".into(),
        yanked: false,
        yanked_reason: None,
        project_status: "active".into(),
        status: "published".into(),
        project: NAMES[name].into(),
        has_provenance: false,
    }
}

proptest! {
    #[test]
    fn decide_means_what_the_records_say(recs in proptest::collection::vec(rec(), 0..6), waivers in proptest::collection::vec((0usize..6, 0..NAMES.len()), 0..3), name in 0..NAMES.len(), version in 0..VERSIONS.len(), hash in 0..HASHES.len()) {
        let waived = waived(&recs, &waivers);
        let b = blocks(&recs, &waived);
        prop_assert_eq!(b.decide(NAMES[name], VERSIONS[version], HASHES[hash]).is_some(), reference(&recs, &waived, name, version, hash));
        // The same records in another order decide the same way, naming the same record.
        let mut reversed = recs.clone();
        reversed.reverse();
        let r = blocks(&reversed, &waived);
        prop_assert_eq!(b.decide(NAMES[name], VERSIONS[version], HASHES[hash]), r.decide(NAMES[name], VERSIONS[version], HASHES[hash]));
    }

    #[test]
    fn the_index_and_downloads_never_disagree(recs in proptest::collection::vec(rec(), 0..6), files in proptest::collection::vec((0..NAMES.len(), 0..VERSIONS.len(), 0..HASHES.len()), 1..6)) {
        let b = blocks(&recs, &[]);
        let mut rows: Vec<_> = files.iter().map(|&(n, v, h)| file(n, v, h)).collect();
        let before = rows.clone();
        b.hide(&mut rows);
        for (shown, original) in rows.iter().zip(&before) {
            // Listed in the index exactly when a download is allowed (not blocked).
            prop_assert_eq!(shown.is_published(), b.decide_file(original).is_none());
            prop_assert!(shown.is_published() || shown.status == BLOCKED);
        }
    }
}

/// `pip install foo==1.0` takes `1.0+local` too: a record of 1.0 blocks it.
#[test]
fn a_local_version_is_blocked_by_its_public_version() {
    let recs = [Rec { n: 1, name: 0, versions: vec![1], whole: false, hash: None, withdrawn: false, malicious: true }];
    let b = blocks(&recs, &[]);
    assert!(b.decide("alpha", "1.0+corp.7", HASHES[0]).is_some());
    assert!(b.decide("alpha", "1.0", HASHES[0]).is_some());
    assert!(b.decide("alpha", "1.0.1+corp.7", HASHES[0]).is_none());
    assert!(b.decide("beta", "1.0+corp.7", HASHES[0]).is_none());
}
