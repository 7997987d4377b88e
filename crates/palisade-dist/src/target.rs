//! The environment an installer installs for (a Python version and implementation on an
//! operating system and machine), and what that environment takes: the wheels it can install
//! (PEP 425 compatibility tags, PEP 600 and PEP 656 platform tags), the `Requires-Python` it
//! satisfies, and the requirements (PEP 508, markers evaluated without extras) that apply to it.
//!
//! This is an installer's choice made ahead of the installer, to guess which files it will ask
//! for; it errs towards "compatible" where it cannot tell (a macOS version), never towards
//! refusing something.

use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, Requirement, VersionOrUrl};

/// A C library and its version (`glibc 2.36`, `musl 1.2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Libc {
    Glibc(u32, u32),
    Musl(u32, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Linux,
    Darwin,
    Windows,
    Other,
}

/// A Python environment, as an installer describes it.
#[derive(Clone, Debug)]
pub struct Target {
    python: Version,
    /// `(3, 11)`.
    minor: (u64, u64),
    cpython: bool,
    system: System,
    /// `x86_64`, `aarch64`, `AMD64`.
    machine: String,
    libc: Option<Libc>,
    markers: MarkerEnvironment,
}

/// A requirement that applies to a target: the project and the versions it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// PEP 503 normalized.
    pub name: String,
    pub versions: VersionSpecifiers,
}

impl Target {
    /// `python` is the full version (`3.11.7`), `implementation` its name (`CPython`, `PyPy`),
    /// `system` as Python's `platform.system()` gives it (`Linux`, `Darwin`, `Windows`), `machine`
    /// as `platform.machine()` does. `None` when the Python version is not one.
    pub fn new(python: &str, implementation: &str, system: &str, machine: &str, libc: Option<Libc>) -> Option<Self> {
        let version = Version::from_str(python).ok()?;
        let release = version.release();
        let minor = (*release.first()?, release.get(1).copied().unwrap_or(0));
        let cpython = implementation.eq_ignore_ascii_case("cpython");
        let system_kind = match system {
            "Linux" => System::Linux,
            "Darwin" => System::Darwin,
            "Windows" => System::Windows,
            _ => System::Other,
        };
        let (os_name, sys_platform) = match system_kind {
            System::Windows => ("nt", "win32"),
            System::Darwin => ("posix", "darwin"),
            System::Linux => ("posix", "linux"),
            System::Other => ("posix", ""),
        };
        let python_version = format!("{}.{}", minor.0, minor.1);
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: &implementation.to_ascii_lowercase(),
            implementation_version: python,
            os_name,
            platform_machine: machine,
            platform_python_implementation: implementation,
            platform_release: "",
            platform_system: system,
            platform_version: "",
            python_full_version: python,
            python_version: &python_version,
            sys_platform,
        })
        .ok()?;
        Some(Self { python: version, minor, cpython, system: system_kind, machine: machine.to_string(), libc, markers })
    }

    /// Whether a file with this `Requires-Python` installs here (an unreadable one does, as pip
    /// takes it).
    pub fn python_ok(&self, requires_python: Option<&str>) -> bool {
        match requires_python.map(str::trim).filter(|s| !s.is_empty()) {
            None => true,
            Some(text) => VersionSpecifiers::from_str(text).map_or(true, |s| s.contains(&self.python)),
        }
    }

    /// How well a wheel with these (possibly compressed, `py2.py3`) tags fits: `None` when it
    /// does not install here, otherwise higher for a more specific build (a CPython build for
    /// this version over the stable ABI over pure Python), as installers prefer.
    pub fn wheel_rank(&self, python_tags: &str, abi_tags: &str, platform_tags: &str) -> Option<u32> {
        // The most specific platform tag that fits (a newer glibc baseline over an older one).
        let platform = platform_tags.split('.').filter_map(|p| self.platform_score(p)).max()?;
        let specific = platform_tags != "any";
        let (major, minor) = self.minor;
        let mut best = None;
        for py in python_tags.split('.') {
            for abi in abi_tags.split('.') {
                let rank = if let Some(n) = py.strip_prefix(&format!("cp{major}")).filter(|_| self.cpython) {
                    match n.parse::<u64>() {
                        Ok(n) if n == minor && (abi == format!("cp{major}{minor}") || abi == "abi3" || abi == "none") => {
                            Some(if abi == "abi3" { 2 } else { 3 })
                        }
                        Ok(n) if n < minor && abi == "abi3" => Some(2),
                        _ => None,
                    }
                } else if let Some(n) = py.strip_prefix(&format!("py{major}")) {
                    let fits = n.is_empty() || n.parse::<u64>().is_ok_and(|n| n <= minor);
                    (fits && abi == "none").then_some(1)
                } else {
                    None
                };
                // A platform build of the same kind beats a pure one; then the platform decides.
                best = best.max(rank.map(|r| (r * 2 + u32::from(specific)) * 100_000 + platform));
            }
        }
        best
    }

    /// Whether a platform tag fits, and how specifically: 0 for `any`, a manylinux or musllinux
    /// tag by its libc baseline (`2_28` over `2_17`), 1 for the rest.
    fn platform_score(&self, tag: &str) -> Option<u32> {
        if tag == "any" {
            return Some(0);
        }
        let machine = self.machine.as_str();
        let fits = |ok: bool, score: u32| ok.then_some(score);
        match self.system {
            System::Linux => {
                let versioned = |rest: &str, prefix: &str| -> Option<(u32, u32)> {
                    // `manylinux_2_17_x86_64`: the machine may itself contain `_`.
                    let rest = rest.strip_prefix(prefix)?;
                    let (major, rest) = rest.split_once('_')?;
                    let (minor, arch) = rest.split_once('_')?;
                    (arch == machine).then_some((major.parse().ok()?, minor.parse().ok()?))
                };
                // Below 100 000, so that the platform never outweighs the ABI (see wheel_rank).
                let score = |(a, b): (u32, u32)| a.min(99) * 1000 + b.min(999);
                let glibc = |need: (u32, u32)| matches!(self.libc, Some(Libc::Glibc(a, b)) if (a, b) >= need).then(|| score(need));
                if tag == format!("linux_{machine}") {
                    return Some(1);
                }
                for (legacy, baseline) in [("manylinux1_", (2, 5)), ("manylinux2010_", (2, 12)), ("manylinux2014_", (2, 17))] {
                    if let Some(arch) = tag.strip_prefix(legacy) {
                        return if arch == machine { glibc(baseline) } else { None };
                    }
                }
                if let Some(need) = versioned(tag, "manylinux_") {
                    return glibc(need);
                }
                let need = versioned(tag, "musllinux_")?;
                matches!(self.libc, Some(Libc::Musl(a, b)) if (a, b) >= need).then(|| score(need))
            }
            // The macOS version is not known here: any deployment target fits.
            System::Darwin => fits(
                tag.starts_with("macosx_")
                    && (tag.ends_with(&format!("_{machine}"))
                        || tag.ends_with("_universal2")
                        || (machine == "x86_64" && (tag.ends_with("_intel") || tag.ends_with("_universal")))),
                1,
            ),
            System::Windows => fits(
                match tag {
                    "win_amd64" => matches!(machine, "AMD64" | "x86_64"),
                    "win32" => matches!(machine, "x86" | "i686"),
                    "win_arm64" => matches!(machine, "ARM64" | "aarch64"),
                    _ => false,
                },
                1,
            ),
            System::Other => None,
        }
    }

    /// The requirement a `Requires-Dist` line states, if it applies here: its markers hold
    /// without extras, and it names versions rather than a URL.
    pub fn dependency(&self, line: &str) -> Option<Dependency> {
        let requirement = Requirement::<pep508_rs::VerbatimUrl>::from_str(line).ok()?;
        if !requirement.marker.evaluate(&self.markers, &[]) {
            return None;
        }
        let versions = match requirement.version_or_url {
            None => VersionSpecifiers::empty(),
            Some(VersionOrUrl::VersionSpecifier(v)) => v,
            Some(VersionOrUrl::Url(_)) => return None,
        };
        Some(Dependency { name: requirement.name.to_string(), versions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux() -> Target {
        Target::new("3.11.7", "CPython", "Linux", "x86_64", Some(Libc::Glibc(2, 36))).unwrap()
    }

    #[test]
    fn wheels_that_install_on_linux_rank_by_specificity() {
        let t = linux();
        let rank = |py, abi, platform| t.wheel_rank(py, abi, platform);
        let pure = rank("py3", "none", "any").unwrap();
        assert_eq!(rank("py2.py3", "none", "any"), Some(pure));
        let cp311 = rank("cp311", "cp311", "manylinux_2_17_x86_64.manylinux2014_x86_64").unwrap();
        let abi3 = rank("cp38", "abi3", "manylinux_2_28_x86_64").unwrap();
        // As pip prefers: this CPython's ABI, then the stable ABI, then pure Python; within
        // one, the newer glibc baseline.
        assert!(cp311 > abi3 && abi3 > pure);
        assert!(rank("cp311", "cp311", "manylinux_2_28_x86_64").unwrap() > cp311);
        assert!(rank("cp311", "cp311", "manylinux1_x86_64").unwrap() < cp311);
        assert!(rank("py3", "none", "manylinux_2_17_x86_64").unwrap() > pure);
        // Not here: another Python, machine, libc, newer glibc, another system.
        assert_eq!(rank("cp312", "cp312", "manylinux_2_17_x86_64"), None);
        assert_eq!(rank("cp311", "cp311", "manylinux_2_17_aarch64"), None);
        assert_eq!(rank("cp311", "cp311", "manylinux2014_aarch64"), None);
        assert_eq!(rank("cp311", "cp311", "musllinux_1_1_x86_64"), None);
        assert_eq!(rank("cp311", "cp311", "manylinux_2_39_x86_64"), None);
        assert_eq!(rank("cp311", "cp311", "win_amd64"), None);
        assert_eq!(rank("py2", "none", "any"), None);
        assert_eq!(rank("py312", "none", "any"), None);
        assert_eq!(rank("cp312", "abi3", "manylinux_2_17_x86_64"), None);
        // Absurd baselines neither overflow nor outweigh the ABI.
        assert_eq!(rank("cp311", "cp311", "musllinux_4000000000_0_x86_64"), None);
        let huge = Target::new("3.11.7", "CPython", "Linux", "x86_64", Some(Libc::Glibc(u32::MAX, u32::MAX))).unwrap();
        assert!(
            huge.wheel_rank("cp38", "abi3", "manylinux_4000000000_4000000000_x86_64").unwrap()
                < huge.wheel_rank("cp311", "cp311", "manylinux_2_17_x86_64").unwrap()
        );
        let musl = Target::new("3.11.7", "CPython", "Linux", "x86_64", Some(Libc::Musl(1, 2))).unwrap();
        assert!(musl.wheel_rank("cp311", "cp311", "musllinux_1_1_x86_64").is_some());
        assert!(musl.wheel_rank("cp311", "cp311", "manylinux_2_17_x86_64").is_none());
    }

    #[test]
    fn other_systems_and_implementations() {
        let mac = Target::new("3.12.1", "CPython", "Darwin", "arm64", None).unwrap();
        assert!(mac.wheel_rank("cp312", "cp312", "macosx_11_0_arm64").is_some());
        assert!(mac.wheel_rank("cp312", "cp312", "macosx_10_9_universal2").is_some());
        assert!(mac.wheel_rank("cp312", "cp312", "macosx_10_9_x86_64").is_none());
        let win = Target::new("3.12.1", "CPython", "Windows", "AMD64", None).unwrap();
        assert!(win.wheel_rank("cp312", "cp312", "win_amd64").is_some());
        assert!(win.wheel_rank("cp312", "cp312", "manylinux_2_17_x86_64").is_none());
        let pypy = Target::new("3.10.14", "PyPy", "Linux", "x86_64", Some(Libc::Glibc(2, 36))).unwrap();
        assert!(pypy.wheel_rank("cp310", "cp310", "manylinux_2_17_x86_64").is_none());
        assert!(pypy.wheel_rank("py3", "none", "any").is_some());
        assert!(Target::new("three", "CPython", "Linux", "x86_64", None).is_none());
    }

    #[test]
    fn requires_python() {
        let t = linux();
        assert!(t.python_ok(None));
        assert!(t.python_ok(Some(">=3.8")));
        assert!(!t.python_ok(Some(">=3.12")));
        assert!(!t.python_ok(Some("<3")));
        assert!(t.python_ok(Some("not a specifier")));
    }

    #[test]
    fn dependencies_apply_by_markers_without_extras() {
        let t = linux();
        let d = t.dependency("urllib3 (<3,>=1.21.1)").unwrap();
        assert_eq!(d.name, "urllib3");
        assert!(d.versions.contains(&Version::from_str("2.2.0").unwrap()));
        assert!(!d.versions.contains(&Version::from_str("3.0").unwrap()));
        assert_eq!(t.dependency("Charset_Normalizer<4,>=2").unwrap().name, "charset-normalizer");
        assert_eq!(t.dependency("idna").unwrap().versions, VersionSpecifiers::empty());
        assert!(t.dependency("PySocks!=1.5.7,>=1.5.6; extra == \"socks\"").is_none());
        assert!(t.dependency("colorama; sys_platform == \"win32\"").is_none());
        assert!(t.dependency("tomli>=1.1.0; python_version < \"3.11\"").is_none());
        assert!(t.dependency("exceptiongroup; python_version < \"3.12\"").is_some());
        assert!(t.dependency("pkg @ https://example.com/pkg-1.0.tar.gz").is_none());
        assert!(t.dependency("not a requirement (").is_none());
    }
}
