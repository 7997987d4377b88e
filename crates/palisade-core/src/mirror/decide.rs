//! The one decision about each upstream file: listed and downloadable, or not and why. The index
//! pages and downloads both take it from [`decide`], so a file is listed exactly when it can be
//! downloaded.
//!
//! A release (files sharing a canonical version) is decided whole: blocked when any of its files
//! is (the scanner's verdict on any file ever fetched of it, even one upstream has since dropped;
//! an OSV record), held while any is held for review, too new while its earliest file's upstream
//! upload time is younger than `mirror.min_age` (a release without any upload time counts as too
//! new), unless the project is exempt. A file added later to an old release waits out the
//! cooldown itself too (a stolen token adding a wheel to a release of years ago). A file larger
//! than this instance fetches is refused alone.

use std::collections::HashMap;

use super::page::Page;

/// Why a file is not served, or that it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Listed,
    /// Younger than the cooldown; listed from `until` (`None`: no upload time to tell).
    TooNew {
        until: Option<i64>,
    },
    /// Held for review (the scanner found it suspicious).
    Held(String),
    /// Blocked (the scanner's verdict, an OSV record, upstream's quarantine).
    Blocked(String),
    /// Larger than `max_upload_bytes`: never fetched.
    TooLarge {
        size: u64,
        max: u64,
    },
}

impl Decision {
    /// The sentence a refused download answers with.
    pub fn message(&self, filename: &str, min_age: &str) -> Option<String> {
        match self {
            Decision::Listed => None,
            Decision::TooNew { until: Some(t) } => Some(format!(
                "{filename} is in its cooldown (mirror.min_age = {min_age}): its release is served from {}",
                crate::timestamp(*t)
            )),
            Decision::TooNew { until: None } => {
                Some(format!("{filename} is in its cooldown (mirror.min_age = {min_age}): upstream gives its release no upload time"))
            }
            Decision::Held(why) => Some(format!("{filename} is held for review: {why}")),
            Decision::Blocked(why) => Some(format!("{filename} is blocked: {why}")),
            Decision::TooLarge { size, max } => {
                Some(format!("{filename} is {size} bytes, more than this instance fetches from upstream (max_upload_bytes = {max})"))
            }
        }
    }
}

/// What the decision reads besides the page.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Now, in microseconds.
    pub now: i64,
    /// `mirror.min_age` in microseconds (0: none).
    pub min_age: i64,
    /// Whether an unexpired exemption covers the project.
    pub exempt: bool,
    /// Verdicts on the files already fetched, by release (canonical version): a release with a
    /// `malicious` or `quarantined` file → (status, reason). Every fetched file counts, listed on
    /// the page or not.
    pub verdicts: HashMap<String, (String, String)>,
    /// The largest file fetched (`max_upload_bytes`); 0: no limit.
    pub max_bytes: u64,
    /// Files an OSV record blocks: filename → the record's sentence.
    pub osv: HashMap<String, String>,
}

/// The decision for every file of `page`, in its order.
pub fn decide(page: &Page, inputs: &Inputs) -> Vec<Decision> {
    if page.status == "quarantined" {
        let why =
            format!("upstream quarantined the project{}", page.status_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default());
        return page.files.iter().map(|_| Decision::Blocked(why.clone())).collect();
    }
    let mut releases: HashMap<&str, Decision> = HashMap::new();
    let mut earliest: HashMap<&str, Option<i64>> = HashMap::new();
    for f in &page.files {
        let e = earliest.entry(&f.release).or_insert(None);
        if let Some(t) = f.upload_time {
            *e = Some(e.map_or(t, |e: i64| e.min(t)));
        }
        let own = match (inputs.osv.get(&f.filename), inputs.verdicts.get(&f.release)) {
            (Some(record), _) => Some(Decision::Blocked(record.clone())),
            (None, Some((status, reason))) if status == "quarantined" => Some(Decision::Held(reason.clone())),
            (None, Some((_, reason))) => Some(Decision::Blocked(reason.clone())),
            _ => None,
        };
        if let Some(d) = own {
            let slot = releases.entry(&f.release).or_insert(Decision::Listed);
            // A block outranks a hold.
            if !matches!(slot, Decision::Blocked(_)) {
                *slot = d;
            }
        }
    }
    page.files
        .iter()
        .map(|f| {
            if let Some(d) = releases.get(f.release.as_str()) {
                return d.clone();
            }
            if inputs.min_age > 0 && !inputs.exempt {
                match earliest.get(f.release.as_str()).copied().flatten() {
                    None => return Decision::TooNew { until: None },
                    Some(t) if t.saturating_add(inputs.min_age) > inputs.now => {
                        return Decision::TooNew { until: Some(t.saturating_add(inputs.min_age)) };
                    }
                    Some(_) => {}
                }
                if let Some(t) = f.upload_time
                    && t.saturating_add(inputs.min_age) > inputs.now
                {
                    return Decision::TooNew { until: Some(t.saturating_add(inputs.min_age)) };
                }
            }
            if inputs.max_bytes > 0
                && let Some(size) = f.size.filter(|s| *s > inputs.max_bytes)
            {
                return Decision::TooLarge { size, max: inputs.max_bytes };
            }
            Decision::Listed
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::mirror::page::File;

    const DAY: i64 = 86_400_000_000;

    fn file(filename: &str, release: &str, upload_time: Option<i64>) -> File {
        File {
            filename: filename.into(),
            version: release.into(),
            release: release.into(),
            url: format!("https://up.example/{filename}"),
            sha256: "a".repeat(64),
            size: Some(1),
            upload_time,
            requires_python: None,
            yanked: None,
            metadata_sha256: None,
            provenance: None,
        }
    }

    fn page(files: Vec<File>) -> Page {
        Page { name: "demo".into(), status: "active".into(), files, ..Page::default() }
    }

    #[test]
    fn a_release_is_as_old_as_its_earliest_file() {
        let p =
            page(vec![file("a-1-py3-none-any.whl", "1", Some(10 * DAY)), file("a-1.tar.gz", "1", Some(1)), file("a-2.tar.gz", "2", None)]);
        let inputs = Inputs { now: 20 * DAY, min_age: 3 * DAY, ..Inputs::default() };
        let d = decide(&p, &inputs);
        assert_eq!(d[0], Decision::Listed);
        assert_eq!(d[1], Decision::Listed);
        assert_eq!(d[2], Decision::TooNew { until: None });
        let younger = Inputs { now: 2 * DAY, ..inputs.clone() };
        assert_eq!(decide(&p, &younger)[0], Decision::TooNew { until: Some(3 * DAY + 1) });
        assert!(decide(&p, &Inputs { exempt: true, ..younger.clone() }).iter().all(|d| *d == Decision::Listed));
        // A wheel added today to the old release 1 waits out the cooldown alone.
        let mut added = p.clone();
        added.files.push(file("a-1-cp313-cp313-linux_x86_64.whl", "1", Some(19 * DAY)));
        let d = decide(&added, &inputs);
        assert_eq!((&d[0], &d[3]), (&Decision::Listed, &Decision::TooNew { until: Some(22 * DAY) }));
        // Too large to fetch: that file only.
        let big = decide(&p, &Inputs { max_bytes: 0, ..inputs.clone() });
        assert_eq!(big[0], Decision::Listed);
        let mut large = p.clone();
        large.files[0].size = Some(10);
        assert_eq!(decide(&large, &Inputs { max_bytes: 5, ..inputs })[0], Decision::TooLarge { size: 10, max: 5 });
    }

    #[test]
    fn one_blocked_file_hides_its_release() {
        let p = page(vec![file("a-1-py3-none-any.whl", "1", Some(1)), file("a-1.tar.gz", "1", Some(1)), file("a-2.tar.gz", "2", Some(1))]);
        let mut inputs = Inputs::default();
        inputs.verdicts.insert("1".into(), ("malicious".into(), "py-install-exec".into()));
        let d = decide(&p, &inputs);
        assert_eq!(d[0], Decision::Blocked("py-install-exec".into()));
        assert_eq!(d[1], d[0]);
        assert_eq!(d[2], Decision::Listed);
        inputs.osv.insert("a-2.tar.gz".into(), "blocked by MAL-1".into());
        assert_eq!(decide(&p, &inputs)[2], Decision::Blocked("blocked by MAL-1".into()));
        // The blocked file dropped from upstream's page: its release stays blocked.
        let dropped = page(vec![file("a-1-py3-none-any.whl", "1", Some(1))]);
        assert_eq!(decide(&dropped, &inputs)[0], Decision::Blocked("py-install-exec".into()));
        let quarantined = Page { status: "quarantined".into(), ..p };
        assert!(decide(&quarantined, &Inputs::default()).iter().all(|d| matches!(d, Decision::Blocked(_))));
    }

    fn arb_page() -> impl Strategy<Value = (Page, Inputs)> {
        let files = prop::collection::vec((0u8..4, 0u8..3, prop::option::of(0i64..10)), 0..12);
        (files, 0i64..12, 0i64..5, any::<bool>(), prop::collection::vec((0usize..12, 0u8..3), 0..4)).prop_map(
            |(files, now, min_age, exempt, marks)| {
                let files: Vec<File> = files
                    .iter()
                    .enumerate()
                    .map(|(i, (release, kind, t))| {
                        let name = if *kind == 0 { format!("a-{release}.tar.gz") } else { format!("a-{release}-{i}-py3-none-any.whl") };
                        file(&name, &release.to_string(), t.map(|t| t * DAY))
                    })
                    .collect();
                let mut inputs = Inputs { now: now * DAY, min_age: min_age * DAY, exempt, ..Inputs::default() };
                for (i, mark) in marks {
                    if let Some(f) = files.get(i) {
                        match mark {
                            0 => drop(inputs.verdicts.insert(f.release.clone(), ("malicious".into(), "bad".into()))),
                            1 => drop(inputs.verdicts.insert(f.release.clone(), ("quarantined".into(), "odd".into()))),
                            _ => drop(inputs.osv.insert(f.filename.clone(), "MAL".into())),
                        }
                    }
                }
                (page(files), inputs)
            },
        )
    }

    proptest! {
        /// The listing and a download ask the same question and get the same answer; a release
        /// is listed whole or not at all; nothing younger than the cooldown is listed unless
        /// exempt; nothing blocked or held is ever listed.
        #[test]
        fn listing_and_download_agree((p, inputs) in arb_page()) {
            let all = decide(&p, &inputs);
            for (i, f) in p.files.iter().enumerate() {
                // A download decides about one file: the same function, the same page.
                let one = decide(&p, &inputs).into_iter().nth(i).unwrap();
                prop_assert_eq!(&one, &all[i]);
                let same_release: Vec<&Decision> = p.files.iter().zip(&all).filter(|(g, _)| g.release == f.release).map(|(_, d)| d).collect();
                // A release is blocked or held whole.
                if matches!(all[i], Decision::Blocked(_) | Decision::Held(_)) {
                    prop_assert!(same_release.iter().all(|d| **d == all[i]), "a release is blocked or held whole");
                }
                if all[i] == Decision::Listed {
                    prop_assert!(!p.files.iter().any(|g| g.release == f.release && inputs.osv.contains_key(&g.filename)));
                    prop_assert!(!inputs.verdicts.contains_key(&f.release));
                    if inputs.min_age > 0 && !inputs.exempt {
                        let earliest = p.files.iter().filter(|g| g.release == f.release).filter_map(|g| g.upload_time).min();
                        prop_assert!(earliest.is_some_and(|t| t + inputs.min_age <= inputs.now));
                        prop_assert!(f.upload_time.is_none_or(|t| t + inputs.min_age <= inputs.now));
                    }
                }
            }
        }
    }
}
