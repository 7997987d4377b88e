//! Which names the mirror answers for. A name hosted here is this index's alone (never merged
//! with upstream, whatever version upstream has), unless the operator lists it in
//! `mirror.merge`; a reserved name is never looked up upstream, even before its first upload.

use crate::config::MirrorConfig;

/// Where a project's page comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// This index only (hosted, reserved, or no upstream configured).
    Local,
    /// The upstream only (not hosted here).
    Mirror,
    /// This index's files and the upstream's (`mirror.merge`).
    Merged,
}

/// Whether `normalized` is reserved (`mirror.reserved`; see [`MirrorConfig::reserves`]).
pub fn reserved(config: &MirrorConfig, normalized: &str) -> bool {
    config.reserves(normalized)
}

/// Whether `normalized` is a PEP 503 normalized project name: only such names are ever sent
/// upstream (a path segment like `http:%2F%2Fhost` must not become a URL).
pub fn valid(normalized: &str) -> bool {
    palisade_dist::ProjectName::new(normalized).is_ok() && palisade_dist::normalize(normalized) == normalized
}

/// Where the page of `normalized` comes from; `hosted` says whether a project of that name
/// exists here.
pub fn route(config: &MirrorConfig, normalized: &str, hosted: bool) -> Route {
    if !config.enabled() || !valid(normalized) {
        return Route::Local;
    }
    if config.merge.iter().any(|m| palisade_dist::normalize(m) == normalized) {
        return Route::Merged;
    }
    if hosted || reserved(config, normalized) { Route::Local } else { Route::Mirror }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamConfig;

    fn config() -> MirrorConfig {
        MirrorConfig {
            upstreams: vec![UpstreamConfig { name: "up".into(), url: "http://127.0.0.1:1/simple/".into(), file_hosts: vec![] }],
            reserved: vec!["Acme-*".into(), "corp*".into(), "Exact.Name".into()],
            merge: vec!["Shared_Lib".into()],
            ..MirrorConfig::default()
        }
    }

    #[test]
    fn reserved_prefixes_cover_the_stem_and_its_dashed_names() {
        let c = config();
        for name in ["acme", "acme-internal", "acme-a-b", "corp", "corporate", "exact-name"] {
            assert!(reserved(&c, name), "{name}");
        }
        for name in ["acmeinternal", "my-acme", "exact", "exact-name-2", "cor"] {
            assert!(!reserved(&c, name), "{name}");
        }
    }

    #[test]
    fn hosted_names_are_never_merged_unless_listed() {
        let c = config();
        assert_eq!(route(&c, "requests", false), Route::Mirror);
        assert_eq!(route(&c, "requests", true), Route::Local);
        assert_eq!(route(&c, "acme-internal", false), Route::Local);
        assert_eq!(route(&c, "shared-lib", true), Route::Merged);
        assert_eq!(route(&c, "shared-lib", false), Route::Merged);
        assert_eq!(route(&MirrorConfig::default(), "requests", false), Route::Local);
        for hostile in ["http://localhost:8080/admin", "//2852039166/x", "a/../b", "", "x y", "Requests"] {
            assert_eq!(route(&c, hostile, false), Route::Local, "{hostile}");
        }
    }
}
