//! Where a member of a distribution runs, which decides how much its behaviour weighs.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Context {
    /// Runs when the package is installed or at every interpreter start: `setup.py` of an
    /// sdist, `.pth` files; also used for findings about the archive itself.
    Install,
    /// Runs when the package is imported: top-level code of a package's `__init__.py`.
    Import,
    /// Ordinary library code: runs only when called.
    Module,
    /// Tests, documentation, examples, benchmarks: not run by users at all.
    TestOrDocs,
}

impl Context {
    pub fn weight(self) -> f64 {
        match self {
            Context::Install => 1.0,
            Context::Import => 1.0,
            Context::Module => 0.6,
            Context::TestOrDocs => 0.2,
        }
    }
}

/// Folders whose contents users never run: tests, documentation, examples, and the project's own
/// development tooling (CI configuration, maintenance scripts).
const TEST_DIRS: &[&str] = &[
    "test",
    "tests",
    "testing",
    "docs",
    "doc",
    "examples",
    "example",
    "benchmarks",
    "benchmark",
    "bench",
    "samples",
    "fixtures",
    "testdata",
    "test_data",
    "tools",
    "ci",
    ".github",
    ".circleci",
    ".gitlab",
    ".azure-pipelines",
    "devtools",
    "dev",
];

/// Folders at the top of an sdist (beside `setup.py`) that hold the project's build inputs and
/// tooling rather than the package: vendored third-party sources, maintenance scripts. Nothing
/// installs them; `setup.py` may import them, and the package-level analysis then weighs what it
/// reaches as install code. Inside the package the same names are installed code.
const SDIST_TOOLING_DIRS: &[&str] = &[
    "scripts",
    "script",
    "external",
    "extern",
    "third_party",
    "thirdparty",
    "3rdparty",
    "vendor",
    "build_tools",
    "buildtools",
    "build_scripts",
    "maint_tools",
    "maintenance",
    "misc",
    "utils_dev",
];

/// Whether a folder name reads as a test suite (`testsuite`, `unittests`, `integration_tests`,
/// `test_utils`, `testing_helpers`) beyond the exact names of [`TEST_DIRS`].
fn test_suite_name(dir: &str) -> bool {
    dir.starts_with("test") || dir.ends_with("tests") || dir.ends_with("_test") || dir.ends_with("_testing") || dir == "e2e"
}

/// Classifies a member path. In an sdist the first component is the `{name}-{version}` folder.
/// Members of nested archives (`outer/x.zip!inner/y.py`) take the test/docs status of the outer
/// path too: a fixture archive under `tests/` is a test fixture whatever it contains.
pub fn classify(path: &str, is_sdist: bool) -> Context {
    let outer = path.split('!').next().unwrap_or(path);
    let outer_dirs: Vec<&str> = outer.split('/').filter(|p| !p.is_empty()).collect();
    let outer_dirs = &outer_dirs[..outer_dirs.len().saturating_sub(1)];
    // Names that only look like a test suite are not trusted for the package's own folder (a
    // project may be called `testfixtures`): the sdist's root, a `src`/`lib` layout folder and
    // the top-level package are skipped.
    let mut own = usize::from(is_sdist);
    if outer_dirs.get(own).is_some_and(|d| matches!(*d, "src" | "lib" | "python")) {
        own += 1;
    }
    own += 1;
    let in_tests = path.split(['/', '!']).rev().skip(1).any(|d| TEST_DIRS.contains(&d.to_ascii_lowercase().as_str()))
        || outer_dirs.iter().skip(own).any(|d| test_suite_name(&d.to_ascii_lowercase()))
        || (is_sdist && outer_dirs.get(1).is_some_and(|d| SDIST_TOOLING_DIRS.contains(&d.to_ascii_lowercase().as_str())));
    let inner = path.rsplit('!').next().unwrap_or(path);
    let parts: Vec<&str> = inner.split('/').filter(|p| !p.is_empty()).collect();
    let Some(file) = parts.last() else { return Context::Module };
    let dirs = &parts[..parts.len() - 1];
    if in_tests || file.starts_with("test_") || file.ends_with("_test.py") || *file == "conftest.py" {
        return Context::TestOrDocs;
    }
    if file.ends_with(".pth") {
        return Context::Install;
    }
    // Prose: long descriptions and READMEs quote install commands such as `curl … | sh`.
    let lower = file.to_ascii_lowercase();
    if matches!(lower.as_str(), "pkg-info" | "metadata" | "license" | "copying" | "authors")
        || [".md", ".rst", ".txt", ".html", ".htm", ".ipynb"].iter().any(|e| lower.ends_with(e))
        || lower.starts_with("readme")
    {
        return Context::TestOrDocs;
    }
    let root_depth = usize::from(is_sdist);
    // On macOS and Windows, `SETUP.PY` is what `setup.py` opens.
    if file.eq_ignore_ascii_case("setup.py") && dirs.len() <= root_depth {
        return Context::Install;
    }
    if *file == "__init__.py" {
        return Context::Import;
    }
    Context::Module
}

pub fn is_python(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.ends_with(".py") || p.ends_with(".pyw")
}

pub fn is_pth(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".pth")
}

/// The kind of native executable `data` starts with, if any.
pub fn native_executable(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x7fELF") {
        return Some("ELF executable");
    }
    if data.starts_with(b"MZ") && data.len() > 0x40 {
        let off = u32::from_le_bytes([data[0x3c], data[0x3d], data[0x3e], data[0x3f]]) as usize;
        if data.get(off..off + 4) == Some(b"PE\0\0") {
            return Some("Windows PE executable");
        }
    }
    match data.get(..4) {
        Some([0xfe, 0xed, 0xfa, 0xce | 0xcf]) | Some([0xce | 0xcf, 0xfa, 0xed, 0xfe]) => Some("Mach-O executable"),
        Some([0xca, 0xfe, 0xba, 0xbe]) if data.get(4..8).is_some_and(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]) < 40) => {
            Some("Mach-O universal binary")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, sdist: bool, expected: Context) {
        assert_eq!(classify(path, sdist), expected, "{path}");
    }

    #[test]
    fn contexts() {
        check("demo-1.0/setup.py", true, Context::Install);
        check("demo-1.0/sub/setup.py", true, Context::Module);
        check("demo-1.0/SETUP.PY", true, Context::Install);
        check("demo/__init__.py", false, Context::Import);
        check("demo-1.0/demo/__init__.py", true, Context::Import);
        check("demo-1.0/tests/test_x.py", true, Context::TestOrDocs);
        check("demo-1.0/docs/conf.py", true, Context::TestOrDocs);
        check("demo/util.py", false, Context::Module);
        check("evil.pth", false, Context::Install);
        check("demo-1.0/demo/test_util.py", true, Context::TestOrDocs);
        check("demo-1.0/README.md", true, Context::TestOrDocs);
        check("demo-1.0.dist-info/METADATA", false, Context::TestOrDocs);
        check("demo-1.0/tests/data/bad.zip!../evil.py", true, Context::TestOrDocs);
        check("demo-1.0/tools/release.py", true, Context::TestOrDocs);
        // Test suites by other names, below the package's own folder.
        check("demo/testsuite/__init__.py", false, Context::TestOrDocs);
        check("demo-1.0/demo/integration_tests/helpers.py", true, Context::TestOrDocs);
        check("demo-1.0/src/demo/test_utils/__init__.py", true, Context::TestOrDocs);
        // ...but not the package itself.
        check("testfixtures/__init__.py", false, Context::Import);
        check("testfixtures-1.0/src/testfixtures/compare.py", true, Context::Module);
        // An sdist's tooling and vendored sources; a wheel's `scripts` package is installed code.
        check("duck-1.0/external/duck/scripts/gen.py", true, Context::TestOrDocs);
        check("demo-1.0/scripts/release.py", true, Context::TestOrDocs);
        check("demo/scripts/run.py", false, Context::Module);
        check("demo-1.0/demo/vendor/payload.py", true, Context::Module);
    }

    #[test]
    fn executables() {
        assert_eq!(native_executable(b"\x7fELF\x02\x01"), Some("ELF executable"));
        let mut pe = vec![0u8; 0x100];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3c] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        assert_eq!(native_executable(&pe), Some("Windows PE executable"));
        assert_eq!(native_executable(b"MZ is also how some text starts"), None);
        assert_eq!(native_executable(b"import os"), None);
    }
}
