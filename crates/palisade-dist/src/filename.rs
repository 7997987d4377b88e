//! Distribution filenames: wheels (PEP 427 and the binary distribution format spec) and source
//! distributions (PEP 625). Anything else, eggs and legacy sdist formats included, is refused here
//! because PyPI refuses it too (PEP 715).

use crate::name::normalize;
use pep440_rs::Version;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistKind {
    Wheel,
    Sdist,
}

impl DistKind {
    /// The legacy upload API's `filetype` value.
    pub fn filetype(self) -> &'static str {
        match self {
            DistKind::Wheel => "bdist_wheel",
            DistKind::Sdist => "sdist",
        }
    }
}

/// A parsed distribution filename.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistFilename {
    pub kind: DistKind,
    /// The name as spelled in the filename (for wheels, with `_` for `-`).
    pub name: String,
    /// PEP 503 normalized name.
    pub normalized_name: String,
    pub version: Version,
    /// Wheel tags: `python-abi-platform` (`None` for sdists).
    pub python_tag: Option<String>,
    pub abi_tag: Option<String>,
    pub platform_tag: Option<String>,
    pub build_tag: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilenameError {
    #[error("invalid filename {0:?}: only wheels (.whl) and source distributions (.tar.gz) are accepted")]
    Extension(String),
    #[error("invalid filename {0:?}: {1}")]
    Grammar(String, &'static str),
    #[error("invalid filename {0:?}: PEP 625 wants the normalized project name with underscores, here {1:?}")]
    Sdist(String, String),
    #[error("invalid filename {0:?}: version {1:?} is not a valid PEP 440 version")]
    Version(String, String),
}

const MAX_FILENAME_LEN: usize = 255;

impl DistFilename {
    pub fn parse(filename: &str) -> Result<Self, FilenameError> {
        let err = |why| FilenameError::Grammar(filename.to_string(), why);
        if filename.len() > MAX_FILENAME_LEN {
            return Err(err("longer than 255 characters"));
        }
        if !filename.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'!')) {
            return Err(err("it contains characters other than letters, digits, '.', '_', '-', '+', '!'"));
        }
        if let Some(stem) = filename.strip_suffix(".whl") {
            Self::parse_wheel(filename, stem)
        } else if let Some(stem) = filename.strip_suffix(".tar.gz") {
            Self::parse_sdist(filename, stem)
        } else {
            Err(FilenameError::Extension(filename.to_string()))
        }
    }

    fn parse_wheel(filename: &str, stem: &str) -> Result<Self, FilenameError> {
        let err = |why| FilenameError::Grammar(filename.to_string(), why);
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, py, abi, plat) = match parts.as_slice() {
            [n, v, p, a, pl] => (*n, *v, None, *p, *a, *pl),
            [n, v, b, p, a, pl] => (*n, *v, Some(*b), *p, *a, *pl),
            _ => return Err(err("a wheel name is {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl")),
        };
        if [name, version, py, abi, plat].iter().any(|p| p.is_empty()) {
            return Err(err("a wheel filename has an empty component"));
        }
        check_name(filename, name)?;
        if let Some(b) = build
            && !b.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(err("the wheel build tag must start with a digit"));
        }
        for tag in [py, abi, plat] {
            if !tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_')) {
                return Err(err("wheel tags contain only letters, digits, '.' and '_'"));
            }
        }
        Ok(Self {
            kind: DistKind::Wheel,
            name: name.to_string(),
            normalized_name: normalize(name),
            version: parse_version(filename, version)?,
            python_tag: Some(py.to_string()),
            abi_tag: Some(abi.to_string()),
            platform_tag: Some(plat.to_string()),
            build_tag: build.map(str::to_string),
        })
    }

    fn parse_sdist(filename: &str, stem: &str) -> Result<Self, FilenameError> {
        let err = |why| FilenameError::Grammar(filename.to_string(), why);
        // PEP 625 wants exactly one '-', but sdists made before it spelled names with '-', so split
        // at the last '-' (a version never contains one) and check the name part separately.
        let Some((name, version)) = stem.rsplit_once('-') else {
            return Err(err("an sdist name is {name}-{version}.tar.gz"));
        };
        if name.is_empty() || version.is_empty() {
            return Err(err("an sdist name is {name}-{version}.tar.gz"));
        }
        check_name(filename, name)?;
        let expected = normalize(name).replace('-', "_");
        if name != expected {
            return Err(FilenameError::Sdist(filename.to_string(), format!("{expected}-{version}.tar.gz")));
        }
        Ok(Self {
            kind: DistKind::Sdist,
            name: name.to_string(),
            normalized_name: normalize(name),
            version: parse_version(filename, version)?,
            python_tag: None,
            abi_tag: None,
            platform_tag: None,
            build_tag: None,
        })
    }

    /// The legacy upload API's `pyversion` for this file (`source` for sdists).
    pub fn pyversion(&self) -> &str {
        self.python_tag.as_deref().unwrap_or("source")
    }

    /// What an installer takes this file to be, as one string: two filenames with the same
    /// identity are the same file to pip and uv, however they are spelled. An index reserves
    /// identities, not spellings, so that no other spelling can replace or revive a file.
    ///
    /// - sdist: `{normalized name} {canonical version} sdist`;
    /// - wheel: `{normalized name} {canonical version} wheel {build} {pythons}-{abis}-{platforms}`,
    ///   where the build tag is `-` when absent, else its number without leading zeros and its
    ///   suffix, lowercased; each tag set is lowercased, de-duplicated and sorted, and the legacy
    ///   manylinux platform names are replaced by their PEP 600 equivalents (`manylinux1_x86_64` is
    ///   `manylinux_2_5_x86_64`, `manylinux2010_*` is `manylinux_2_12_*`, `manylinux2014_*` is
    ///   `manylinux_2_17_*`).
    ///
    /// Wheels whose tag sets differ only partly (`py2.py3` and `py3`) have different identities:
    /// they are different files, and an installer picks between them as it does on PyPI.
    pub fn identity(&self) -> String {
        let version = crate::canonical_version(&self.version);
        match self.kind {
            DistKind::Sdist => format!("{} {version} sdist", self.normalized_name),
            DistKind::Wheel => {
                let build = self.build_tag.as_deref().map_or_else(|| "-".to_string(), canonical_build_tag);
                let set = |tag: &Option<String>, alias: fn(&str) -> String| {
                    let mut parts: Vec<String> = tag.as_deref().unwrap_or("").split('.').map(|t| alias(&t.to_ascii_lowercase())).collect();
                    parts.sort();
                    parts.dedup();
                    parts.join(".")
                };
                let same = |t: &str| t.to_string();
                format!(
                    "{} {version} wheel {build} {}-{}-{}",
                    self.normalized_name,
                    set(&self.python_tag, same),
                    set(&self.abi_tag, same),
                    set(&self.platform_tag, pep600_platform)
                )
            }
        }
    }
}

/// A build tag as installers compare it: `(int(digits), rest)`, so leading zeros do not count.
fn canonical_build_tag(tag: &str) -> String {
    let digits = tag.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = tag.split_at(digits);
    let number = number.trim_start_matches('0');
    format!("{}{}", if number.is_empty() { "0" } else { number }, rest.to_ascii_lowercase())
}

/// The PEP 600 name of a legacy manylinux platform tag (PEP 513, 571, 599); other tags unchanged.
fn pep600_platform(tag: &str) -> String {
    for (legacy, glibc) in [("manylinux1_", "2_5"), ("manylinux2010_", "2_12"), ("manylinux2014_", "2_17")] {
        if let Some(arch) = tag.strip_prefix(legacy) {
            return format!("manylinux_{glibc}_{arch}");
        }
    }
    tag.to_string()
}

fn check_name(filename: &str, name: &str) -> Result<(), FilenameError> {
    crate::ProjectName::new(name)
        .map(|_| ())
        .map_err(|_| FilenameError::Grammar(filename.to_string(), "the project name part is not a valid name"))
}

fn parse_version(filename: &str, version: &str) -> Result<Version, FilenameError> {
    version.parse::<Version>().map_err(|_| FilenameError::Version(filename.to_string(), version.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(&str, &str, DistKind), ()>) {
        let got = DistFilename::parse(input).map(|f| (f.normalized_name.clone(), f.version.to_string(), f.kind)).map_err(|_| ());
        let expected = expected.map(|(n, v, k)| (n.to_string(), v.to_string(), k));
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn wheels() {
        use DistKind::Wheel;
        check("demo-1.0-py3-none-any.whl", Ok(("demo", "1.0", Wheel)));
        check("my_pkg-2.0.post1-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", Ok(("my-pkg", "2.0.post1", Wheel)));
        check("Foo.Bar-1.0+local.1-py2.py3-none-any.whl", Ok(("foo-bar", "1.0+local.1", Wheel)));
        check("demo-1.0-x-py3-none-any.whl", Err(()));
        check("demo-1.0-py3-none.whl", Err(()));
        check("demo-notaversion-py3-none-any.whl", Err(()));
        check("bad-wheel.whl", Err(()));
        check("demo-1.0--none-any.whl", Err(()));
    }

    #[test]
    fn sdists() {
        use DistKind::Sdist;
        check("demo-1.0.tar.gz", Ok(("demo", "1.0", Sdist)));
        check("pypi_attestations-0.0.19.tar.gz", Ok(("pypi-attestations", "0.0.19", Sdist)));
        check("pypi-attestations-0.0.19.tar.gz", Err(()));
        check("Demo-1.0.tar.gz", Err(()));
        check("zope_interface-5.0.tar.gz", Ok(("zope-interface", "5.0", Sdist)));
        check("demo.tar.gz", Err(()));
        check("demo-.tar.gz", Err(()));
        check("-1.0.tar.gz", Err(()));
    }

    #[test]
    fn other_formats_are_refused() {
        for name in [
            "demo-1.0.zip",
            "demo-1.0-py3.7.egg",
            "demo-1.0.tar.bz2",
            "demo-1.0-py3-none-any.zip",
            "foo.whl.exe",
            "../x-1.0.tar.gz",
            "demo-1.0.tar.gz\0",
        ] {
            assert!(DistFilename::parse(name).is_err(), "{name}");
        }
    }

    fn identity(filename: &str) -> String {
        DistFilename::parse(filename).unwrap_or_else(|e| panic!("{filename}: {e}")).identity()
    }

    /// Each row: spellings that are one file to an installer, then its identity.
    #[test]
    fn identities_of_equivalent_spellings() {
        let check = |spellings: &[&str], expected: &str| {
            for s in spellings {
                assert_eq!(identity(s), expected, "{s}");
            }
        };
        check(
            &[
                "tapir_index-1.0-py3-none-any.whl",
                "tapir_index-1.0.0-py3-none-any.whl",
                "Tapir_Index-1.0-py3-none-any.whl",
                "tapir.index-1-PY3-None-ANY.whl",
                "tapir__index-1.0-py3.py3-none-any.whl",
            ],
            "tapir-index 1 wheel - py3-none-any",
        );
        check(&["zephyrine_tools-40.0.tar.gz", "zephyrine_tools-40.0.0.tar.gz", "zephyrine_tools-v40.tar.gz"], "zephyrine-tools 40 sdist");
        check(
            &["demo-1.0-py3.py2-none-any.whl", "demo-1.0-py2.py3-none-any.whl", "demo-1.0.0-py3.py2.py3-none-any.whl"],
            "demo 1 wheel - py2.py3-none-any",
        );
        check(
            &[
                "np-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "np-2.0-cp311-cp311-manylinux2014_x86_64.whl",
                "np-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            ],
            "np 2 wheel - cp311-cp311-manylinux_2_17_x86_64",
        );
        check(
            &["np-2.0-cp39-cp39-manylinux1_i686.whl", "np-2-cp39-cp39-manylinux_2_5_i686.whl"],
            "np 2 wheel - cp39-cp39-manylinux_2_5_i686",
        );
        check(&["np-2.0-cp39-cp39-manylinux2010_x86_64.whl"], "np 2 wheel - cp39-cp39-manylinux_2_12_x86_64");
        check(&["demo-1.0-01-py3-none-any.whl", "demo-1.0-1-py3-none-any.whl"], "demo 1 wheel 1 py3-none-any");
        check(&["demo-1.0-007Beta-py3-none-any.whl", "demo-1.0-7beta-py3-none-any.whl"], "demo 1 wheel 7beta py3-none-any");
        check(&["demo-1.0-000-py3-none-any.whl"], "demo 1 wheel 0 py3-none-any");
        check(
            &["demo-1.0.post0-py3-none-any.whl", "demo-1.0_post0-py3-none-any.whl", "demo-1.0.0post-py3-none-any.whl"],
            "demo 1.post0 wheel - py3-none-any",
        );
        check(&["demo-1.0+Local.1-py3-none-any.whl", "demo-1.0.0+local_1-py3-none-any.whl"], "demo 1+local.1 wheel - py3-none-any");
        check(&["demo-1!2.0rc1-py3-none-any.whl", "demo-1!2.0.0RC1-py3-none-any.whl"], "demo 1!2rc1 wheel - py3-none-any");
    }

    /// Files an installer tells apart keep apart.
    #[test]
    fn identities_of_different_files() {
        let distinct = [
            "demo-1.0-py3-none-any.whl",
            "demo-1.0-py2.py3-none-any.whl",
            "demo-1.0-1-py3-none-any.whl",
            "demo-1.0-2-py3-none-any.whl",
            "demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl",
            "demo-1.0-cp311-abi3-manylinux_2_28_x86_64.whl",
            "demo-1.0-cp311-abi3-linux_x86_64.whl",
            "demo-1.0.post1-py3-none-any.whl",
            "demo-1.0+local-py3-none-any.whl",
            "demo-1.1-py3-none-any.whl",
            "demo2-1.0-py3-none-any.whl",
            "demo-1.0.tar.gz",
            "demo-1.1.tar.gz",
        ];
        let ids: std::collections::HashSet<String> = distinct.iter().map(|f| identity(f)).collect();
        assert_eq!(ids.len(), distinct.len(), "{ids:?}");
    }

    #[test]
    fn pyversion() {
        assert_eq!(DistFilename::parse("demo-1.0.tar.gz").unwrap().pyversion(), "source");
        assert_eq!(DistFilename::parse("demo-1.0-py3-none-any.whl").unwrap().pyversion(), "py3");
    }
}
