//! The one decision every path shares (upload, download, the proxy): does a set of advisories
//! block this file, and which vulnerabilities does it show for a release.
//!
//! Malware advisories block; vulnerability advisories only inform. A withdrawn advisory never
//! blocks (withdrawal is how ossf/malicious-packages retracts a false positive), but it is still
//! shown among vulnerabilities so a user can see it was withdrawn.

use crate::read::Advisory;

/// The advisory that blocks file `sha256` of release `version` of `name`, if any: one that is
/// malicious, not withdrawn, and either affects the release or lists the file's digest.
///
/// When several match, the one with the smallest id (byte order) is returned, then the latest
/// `modified` and, for a byte-identical tie, the first seen; so two callers holding the same set
/// in different orders name the same advisory in their messages and logs.
pub fn blocking<'a, I>(advisories: I, name: &str, version: &str, sha256: &str) -> Option<&'a Advisory>
where
    I: IntoIterator<Item = &'a Advisory>,
{
    advisories
        .into_iter()
        .filter(|a| a.malicious && a.withdrawn.is_none())
        .filter(|a| a.affects(name, version) || a.lists_file(sha256))
        .reduce(|best, a| if order(a, best).is_lt() { a } else { best })
}

/// The vulnerability (non-malicious) advisories that affect release `version` of `name`,
/// withdrawn ones included (the caller shows `withdrawn`), sorted by id then latest `modified`
/// and without repeats of one id.
pub fn vulnerabilities<'a, I>(advisories: I, name: &str, version: &str) -> Vec<&'a Advisory>
where
    I: IntoIterator<Item = &'a Advisory>,
{
    let mut out: Vec<&Advisory> = advisories.into_iter().filter(|a| !a.malicious && a.affects(name, version)).collect();
    out.sort_by(|a, b| order(a, b));
    out.dedup_by(|a, b| a.id == b.id);
    out
}

/// Smallest id first; for one id, the newest `modified` first (compared as instants, falling back
/// to the text when a timestamp does not parse, which `parse` never lets through).
fn order(a: &Advisory, b: &Advisory) -> std::cmp::Ordering {
    let when = |x: &Advisory| crate::parse_timestamp(&x.modified);
    a.id.cmp(&b.id).then_with(|| when(b).cmp(&when(a))).then_with(|| b.modified.cmp(&a.modified))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn advisory(id: &str, malicious: bool, withdrawn: bool, versions: &[&str]) -> Advisory {
        let record = serde_json::json!({
            "id": id,
            "modified": "2024-01-01T00:00:00Z",
            "withdrawn": if withdrawn { Some("2024-02-01T00:00:00Z") } else { None },
            "database_specific": if malicious { serde_json::json!({"malicious-packages-origins": []}) } else { serde_json::json!({}) },
            "affected": [{"package": {"ecosystem": "PyPI", "name": "demo"}, "versions": versions}],
        });
        crate::parse(record.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn only_live_malware_blocks_and_vulnerabilities_only_inform() {
        let set = [
            advisory("PYSEC-1", false, false, &["1.0"]),
            advisory("x_LOCAL-9", true, true, &["1.0"]),
            advisory("PYSEC-0", false, true, &["1.0"]),
        ];
        assert_eq!(blocking(&set, "demo", "1.0", ""), None);
        let ids: Vec<&str> = vulnerabilities(&set, "Demo", "1.0").iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["PYSEC-0", "PYSEC-1"]);
        assert!(vulnerabilities(&set, "demo", "2.0").is_empty());
    }

    proptest! {
        /// Whatever order the advisories come in, the same one blocks.
        #[test]
        fn blocking_is_order_independent(order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle()) {
            let set = [
                advisory("x_B-1", true, false, &["1.0"]),
                advisory("MAL-2024-2", true, false, &["1.0"]),
                advisory("MAL-2024-10", true, false, &["1.0"]),
                advisory("MAL-2024-1", true, true, &["1.0"]),
                advisory("MAL-2024-0", true, false, &["2.0"]),
                advisory("GHSA-0000", false, false, &["1.0"]),
            ];
            let shuffled: Vec<&Advisory> = order.iter().map(|&i| &set[i]).collect();
            let got = blocking(shuffled.iter().copied(), "demo", "1.0", "").map(|a| a.id.as_str());
            prop_assert_eq!(got, Some("MAL-2024-10"));
        }
    }
}
