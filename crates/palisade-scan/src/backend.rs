//! In-tree build backends (PEP 517 `backend-path`): code that pip imports to build an sdist.
//!
//! `[build-system] build-backend = "helpers"` with `backend-path = ["tests"]` makes pip import
//! `tests/helpers.py` before anything else, at install time. Judged by its folder it would weigh
//! as test code; it runs as `setup.py` does. The scanner keeps the sdist's `pyproject.toml` and,
//! once the walk is done, gives findings in the backend's module (or package) the install-time
//! weight.

use crate::Context;
use crate::report::Finding;

/// The largest `pyproject.toml` read for this.
pub(crate) const MAX_PYPROJECT_BYTES: usize = 256 << 10;

/// Whether `path` is the top-level `pyproject.toml` of an sdist.
pub(crate) fn is_pyproject(path: &str, is_sdist: bool) -> bool {
    is_sdist && !path.contains('!') && path.split('/').count() == 2 && path.ends_with("/pyproject.toml")
}

/// The member paths (prefixes, for a package) of the in-tree backend `pyproject` names, if any:
/// `{root}/{backend-path}/{module}.py` and `{root}/{backend-path}/{module}/`.
pub(crate) fn backend_paths(pyproject_path: &str, data: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(data) else { return Vec::new() };
    let Ok(doc) = text.parse::<toml::Table>() else { return Vec::new() };
    let Some(system) = doc.get("build-system").and_then(|v| v.as_table()) else { return Vec::new() };
    let Some(backend) = system.get("build-backend").and_then(|v| v.as_str()) else { return Vec::new() };
    let Some(dirs) = system.get("backend-path").and_then(|v| v.as_array()) else { return Vec::new() };
    let root = pyproject_path.rsplit_once('/').map(|(r, _)| r).unwrap_or("");
    let module = backend.split(':').next().unwrap_or("").trim().replace('.', "/");
    if module.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for dir in dirs.iter().filter_map(|d| d.as_str()) {
        let dir = dir.trim_start_matches("./").trim_end_matches('/');
        let base = if dir.is_empty() || dir == "." { root.to_string() } else { format!("{root}/{dir}") };
        out.push(format!("{base}/{module}.py"));
        out.push(format!("{base}/{module}/"));
    }
    out
}

/// Gives the findings of the backend's files the install-time weight, where that is more.
pub(crate) fn reweigh(findings: &mut [Finding], backend: &[String]) {
    if backend.is_empty() {
        return;
    }
    for f in findings.iter_mut() {
        let inside = backend.iter().any(|b| if b.ends_with('/') { f.path.starts_with(b.as_str()) } else { f.path == *b });
        if inside && f.context.weight() < Context::Install.weight() {
            f.context = Context::Install;
            f.weight = f.severity.points() * Context::Install.weight();
            f.message.push_str(" (in the in-tree build backend, which pip imports to build the sdist)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_paths_of_a_pyproject() {
        let py = b"[build-system]\nrequires = []\nbuild-backend = \"helpers:backend\"\nbackend-path = [\"tests\", \".\"]\n";
        assert_eq!(
            backend_paths("p-1.0/pyproject.toml", py),
            vec!["p-1.0/tests/helpers.py", "p-1.0/tests/helpers/", "p-1.0/helpers.py", "p-1.0/helpers/"]
        );
        // An ordinary backend from PyPI is not in the tree.
        assert!(backend_paths("p-1.0/pyproject.toml", b"[build-system]\nbuild-backend = \"setuptools.build_meta\"\n").is_empty());
        assert!(backend_paths("p-1.0/pyproject.toml", b"not toml [").is_empty());
    }
}
