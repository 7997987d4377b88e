//! Project names: validity and PEP 503 normalization.

use std::fmt;

/// A valid project name, remembering both the spelling it was given and its normalized form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProjectName {
    given: String,
    normalized: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("project name is empty")]
    Empty,
    #[error("project name {0:?} is too long (at most 200 characters)")]
    TooLong(String),
    #[error("project name {0:?} is not valid: use ASCII letters, digits, '.', '_' and '-', starting and ending with a letter or digit")]
    Invalid(String),
}

impl ProjectName {
    /// Validates `name` against the living spec's regular expression
    /// `^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$` (case-insensitive).
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > 200 {
            return Err(NameError::TooLong(name.chars().take(40).collect()));
        }
        let bytes = name.as_bytes();
        let edge_ok = |b: u8| b.is_ascii_alphanumeric();
        let inner_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if !edge_ok(bytes[0]) || !edge_ok(bytes[bytes.len() - 1]) || !bytes.iter().all(|&b| inner_ok(b)) {
            return Err(NameError::Invalid(name.to_string()));
        }
        Ok(Self { given: name.to_string(), normalized: normalize(name) })
    }

    /// The spelling the name was created with.
    pub fn as_given(&self) -> &str {
        &self.given
    }

    /// The PEP 503 form: lowercase, runs of `-`, `_`, `.` replaced by one `-`.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

/// PEP 503 normalization: `re.sub(r"[-_.]+", "-", name).lower()`. Works on any string; it does not
/// validate.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, ()>) {
        let got = ProjectName::new(input).map(|n| n.normalized().to_string()).map_err(|_| ());
        assert_eq!(got, expected.map(str::to_string), "input {input:?}");
    }

    #[test]
    fn normalizes_and_validates() {
        check("Django", Ok("django"));
        check("zope.interface", Ok("zope-interface"));
        check("Foo__Bar--.baz", Ok("foo-bar-baz"));
        check("a", Ok("a"));
        check("A1", Ok("a1"));
        check("", Err(()));
        check("-foo", Err(()));
        check("foo-", Err(()));
        check("foo bar", Err(()));
        check("foo/bar", Err(()));
        check("föö", Err(()));
        check("..", Err(()));
    }

    #[test]
    fn too_long_is_refused() {
        assert!(matches!(ProjectName::new(&"a".repeat(201)), Err(NameError::TooLong(_))));
    }
}
