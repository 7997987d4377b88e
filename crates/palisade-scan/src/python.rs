//! Python-aware heuristics over a real syntax tree (tree-sitter, which also parses Python 2 and
//! broken code into a partial tree, as malware often is).
//!
//! The analysis resolves imports and aliases (`import base64 as b`, `from os import system as
//! s`, `__import__('base64')`), classifies every call into capabilities, follows values from
//! decoders and network reads into `exec`/`eval`/`compile` (also through variables and lambda
//! decoders), and turns combinations into findings weighted by where the file runs.

use std::collections::{HashMap, HashSet};

use tree_sitter::{Node, Parser};

use crate::Context;
use crate::report::{Finding, Severity};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cap {
    Process,
    Network,
    DynamicExec,
    Decode,
    HostInfo,
    EnvAccess,
    FileWrite,
}

/// What one file does, and the findings drawn from it.
pub struct Facts {
    caps: HashMap<Cap, (u32, String)>,
    pub findings: Vec<Finding>,
}

impl Facts {
    pub fn has_network(&self) -> bool {
        self.caps.contains_key(&Cap::Network)
    }
}

/// Files larger than this are only scanned with rules, not parsed.
const MAX_PARSE_BYTES: usize = 2 << 20;
/// Tokens without which a file cannot show any capability we look for; files lacking all of
/// them skip the parse.
const TRIGGERS: &[&[u8]] = &[
    b"exec",
    b"eval",
    b"compile",
    b"system",
    b"popen",
    b"Popen",
    b"subprocess",
    b"urlopen",
    b"urlretrieve",
    b"request",
    b"socket",
    b"http",
    b"decode",
    b"decompress",
    b"marshal",
    b"__import__",
    b"fromhex",
    b"unhexlify",
    b"b64",
    b"environ",
    b"getenv",
    b"gethostname",
    b"getuser",
    b"spawn",
    b"startfile",
    b"open(",
];

pub fn analyze(path: &str, data: &[u8], ctx: Context, is_pth: bool) -> Facts {
    let mut facts = Facts { caps: HashMap::new(), findings: Vec::new() };
    text_checks(path, data, ctx, &mut facts);
    if is_pth {
        pth_checks(path, data, &mut facts);
    }
    let interesting = TRIGGERS.iter().any(|t| memchr::memmem::find(data, t).is_some());
    if data.len() <= MAX_PARSE_BYTES && interesting {
        let source: Vec<u8> = if is_pth {
            // Only lines starting with `import` are executed by site.py.
            data.split(|b| *b == b'\n')
                .filter(|l| l.starts_with(b"import ") || l.starts_with(b"import\t"))
                .flat_map(|l| l.iter().copied().chain([b'\n']))
                .collect()
        } else {
            data.to_vec()
        };
        let mut a = Analyzer::new(&source);
        a.run();
        facts.caps = a.caps.clone();
        combine(path, ctx, a, &mut facts);
    }
    facts
}

/// Lines that hide code: far off-screen after whitespace, or enormous single lines.
fn text_checks(path: &str, data: &[u8], ctx: Context, facts: &mut Facts) {
    let mut long_reported = false;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
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
}

struct Analyzer<'s> {
    src: &'s [u8],
    aliases: HashMap<String, String>,
    /// Variables holding decoded or downloaded data, and lambdas/functions that decode.
    tainted: HashMap<String, Cap>,
    decoder_fns: HashSet<String>,
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

impl<'s> Analyzer<'s> {
    fn new(src: &'s [u8]) -> Self {
        Self {
            src,
            aliases: HashMap::new(),
            tainted: HashMap::new(),
            decoder_fns: HashSet::new(),
            calls: Vec::new(),
            caps: HashMap::new(),
            chains: Vec::new(),
            has_env_attr: None,
            dynamic_exec: None,
            hidden_endpoint: None,
            hostinfo_flow: None,
            hidden_command: None,
            pip_install: None,
        }
    }

    fn text(&self, n: Node) -> &'s str {
        std::str::from_utf8(&self.src[n.byte_range()]).unwrap_or("")
    }

    fn line_text(&self, line: u32) -> String {
        let l = self.src.split(|b| *b == b'\n').nth(line.saturating_sub(1) as usize).unwrap_or(b"");
        String::from_utf8_lossy(l).into_owned()
    }

    fn run(&mut self) {
        let mut parser = Parser::new();
        if parser.set_language(&tree_sitter_python::LANGUAGE.into()).is_err() {
            return;
        }
        let Some(tree) = parser.parse(self.src, None) else { return };
        let root = tree.root_node();
        // Pass 1: imports and assignments (flow-insensitive), twice so taint crosses one hop.
        for _ in 0..2 {
            self.visit(root, Pass::Bindings);
        }
        // Pass 2: calls.
        self.visit(root, Pass::Calls);
    }

    fn visit(&mut self, root: Node, pass: Pass) {
        let mut stack = vec![(root, true)];
        while let Some((node, top)) = stack.pop() {
            let kind = node.kind();
            let child_top = top && !matches!(kind, "function_definition" | "lambda" | "class_definition");
            match (pass, kind) {
                (Pass::Bindings, "import_statement") => self.import(node),
                (Pass::Bindings, "import_from_statement") => self.import_from(node),
                (Pass::Bindings, "assignment") => self.assignment(node),
                (Pass::Bindings, "function_definition") => {
                    if let (Some(name), Some(body)) = (node.child_by_field_name("name"), node.child_by_field_name("body"))
                        && self.subtree_has(body, Cap::Decode)
                        && self.text(body).contains("return")
                    {
                        self.decoder_fns.insert(self.text(name).to_string());
                    }
                }
                (Pass::Calls, "call") => self.call(node, top),
                (Pass::Calls, "attribute") if self.dotted(node).as_deref() == Some("os.environ") && self.has_env_attr.is_none() => {
                    self.has_env_attr = Some(node.start_position().row as u32 + 1);
                }
                _ => {}
            }
            let mut cursor = node.walk();
            for child in node.children(&mut cursor) {
                stack.push((child, child_top));
            }
        }
    }

    fn import(&mut self, node: Node) {
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            match child.kind() {
                "dotted_name" => {
                    let full = self.text(child).to_string();
                    let first = full.split('.').next().unwrap_or("").to_string();
                    self.aliases.insert(first.clone(), first);
                }
                "aliased_import" => {
                    if let (Some(n), Some(a)) = (child.child_by_field_name("name"), child.child_by_field_name("alias")) {
                        self.aliases.insert(self.text(a).to_string(), self.text(n).to_string());
                    }
                }
                _ => {}
            }
        }
    }

    fn import_from(&mut self, node: Node) {
        let Some(module) = node.child_by_field_name("module_name") else { return };
        let module = self.text(module).trim_start_matches('.').to_string();
        let mut cursor = node.walk();
        for child in node.children_by_field_name("name", &mut cursor) {
            match child.kind() {
                "dotted_name" => {
                    let n = self.text(child).to_string();
                    self.aliases.insert(n.clone(), format!("{module}.{n}"));
                }
                "aliased_import" => {
                    if let (Some(n), Some(a)) = (child.child_by_field_name("name"), child.child_by_field_name("alias")) {
                        self.aliases.insert(self.text(a).to_string(), format!("{module}.{}", self.text(n)));
                    }
                }
                _ => {}
            }
        }
    }

    fn assignment(&mut self, node: Node) {
        let (Some(left), Some(right)) = (node.child_by_field_name("left"), node.child_by_field_name("right")) else { return };
        if left.kind() != "identifier" {
            return;
        }
        let name = self.text(left).to_string();
        if right.kind() == "lambda" {
            if let Some(body) = right.child_by_field_name("body")
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
        if self.subtree_has(right, Cap::Network) {
            self.tainted.insert(name, Cap::Network);
        } else if self.subtree_has(right, Cap::Decode) {
            self.tainted.insert(name, Cap::Decode);
        } else if self.subtree_has(right, Cap::HostInfo) {
            self.tainted.insert(name, Cap::HostInfo);
        }
    }

    /// Whether a call of this capability occurs in the subtree, or a tainted variable flows in.
    fn subtree_has(&self, node: Node, cap: Cap) -> bool {
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            match n.kind() {
                "call" => {
                    if let Some(f) = n.child_by_field_name("function") {
                        if let Some(name) = self.dotted(f)
                            && (classify(&name).contains(&cap) || (cap == Cap::Decode && self.decoder_fns.contains(&name)))
                        {
                            return true;
                        }
                        // `x.decode("base64")`, `codecs.decode(x, "rot13")`, `"...".decode("hex")`.
                        if cap == Cap::Decode && f.kind() == "attribute" {
                            let attr = f.child_by_field_name("attribute").map(|a| self.text(a)).unwrap_or("");
                            let args = n.child_by_field_name("arguments").map(|a| self.text(a)).unwrap_or("");
                            if attr == "decode" && ["base64", "hex", "rot13", "rot_13", "zlib", "bz2"].iter().any(|c| args.contains(c)) {
                                return true;
                            }
                        }
                    }
                }
                "identifier" if self.tainted.get(self.text(n)) == Some(&cap) => {
                    return true;
                }
                _ => {}
            }
            let mut cursor = n.walk();
            stack.extend(n.children(&mut cursor));
        }
        false
    }

    /// The dotted name an expression refers to, with imports and aliases resolved.
    fn dotted(&self, node: Node) -> Option<String> {
        match node.kind() {
            "identifier" => {
                let t = self.text(node);
                Some(self.aliases.get(t).cloned().unwrap_or_else(|| t.to_string()))
            }
            "attribute" => {
                let object = node.child_by_field_name("object")?;
                let obj = match self.dotted(object) {
                    Some(o) => o,
                    // `Fernet(key).decrypt`, `AES.new(k).decrypt`: a method of a call's result.
                    None if object.kind() == "call" => format!("{}()", self.dotted(object.child_by_field_name("function")?)?),
                    None => return None,
                };
                let attr = self.text(node.child_by_field_name("attribute")?);
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
                let f = self.dotted(node.child_by_field_name("function")?)?;
                if f == "__import__" || f == "importlib.import_module" {
                    let args = node.child_by_field_name("arguments")?;
                    let first = args.named_child(0)?;
                    return string_value(self.text(first));
                }
                None
            }
            "parenthesized_expression" => self.dotted(node.named_child(0)?),
            _ => None,
        }
    }

    fn call(&mut self, node: Node, top: bool) {
        let Some(func) = node.child_by_field_name("function") else { return };
        let Some(name) = self.dotted(func) else { return };
        let line = node.start_position().row as u32 + 1;
        let mut caps = classify(&name);
        if self.decoder_fns.contains(&name) {
            caps.push(Cap::Decode);
        }
        if name == "open" && is_write_open(self.text(node)) {
            caps.push(Cap::FileWrite);
        }
        let args = node.child_by_field_name("arguments");
        if caps.contains(&Cap::Process)
            && let Some(args) = args
        {
            let lower = self.text(args).to_ascii_lowercase();
            // A shell command that fetches something is network use, whatever runs it.
            if DOWNLOAD_TOOLS.iter().any(|t| lower.contains(t)) {
                caps.push(Cap::Network);
            }
            if lower.contains("pip install") || lower.contains("-m pip") {
                self.pip_install.get_or_insert(line);
            }
            if self.subtree_has(args, Cap::Decode) {
                self.hidden_command.get_or_insert(line);
            }
        }
        if matches!(name.as_str(), "exec" | "eval" | "compile" | "execfile")
            && let Some(args) = args
        {
            let arg_text = self.text(args);
            if self.subtree_has(args, Cap::Network) {
                self.chains.push((Cap::Network, line, self.line_text(line), top));
            } else if self.subtree_has(args, Cap::Decode) {
                self.chains.push((Cap::Decode, line, self.line_text(line), top));
            } else if arg_text.contains("open(") || is_plain_literal(arg_text) {
                // exec(open("version.py").read()) and exec("x = 1") are ordinary.
                caps.retain(|c| *c != Cap::DynamicExec);
            } else {
                self.dynamic_exec.get_or_insert(line);
            }
        }
        if caps.contains(&Cap::Network)
            && let Some(args) = args
        {
            // Only a decoder written straight into the call's arguments counts: libraries
            // legitimately send data they decoded earlier (keys, tokens).
            if self.hidden_endpoint.is_none() && has_direct_decoder(self, args) {
                self.hidden_endpoint = Some(line);
            }
            if self.hostinfo_flow.is_none() && self.subtree_has(args, Cap::HostInfo) {
                self.hostinfo_flow = Some(line);
            }
        }
        for cap in &caps {
            self.caps.entry(*cap).or_insert_with(|| (line, String::new()));
        }
        if !caps.is_empty() {
            self.calls.push(Call { line, top_level: top, caps });
        }
    }
}

/// Whether a decoding call sits directly in `args` (not through a variable).
fn has_direct_decoder(a: &Analyzer, args: Node) -> bool {
    let mut stack = vec![args];
    while let Some(n) = stack.pop() {
        if n.kind() == "call"
            && let Some(f) = n.child_by_field_name("function")
            && let Some(name) = a.dotted(f)
            && classify(&name).contains(&Cap::Decode)
        {
            return true;
        }
        let mut cursor = n.walk();
        stack.extend(n.children(&mut cursor));
    }
    false
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Bindings,
    Calls,
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
    ["'w'", "\"w\"", "'wb'", "\"wb\"", "'a'", "\"a\"", "'ab'", "\"ab\"", "'w+'", "\"w+\"", "'wb+'", "\"wb+\""]
        .iter()
        .any(|m| call.contains(m))
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
        || n == "win32api.ShellExecute";
    if process {
        caps.push(Cap::Process);
    }
    let network = !host
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
            || first == "websocket");
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
    if decode {
        caps.push(Cap::Decode);
    }
    caps
}

/// Turns what one file does into findings, by context.
fn combine(path: &str, ctx: Context, a: Analyzer, facts: &mut Facts) {
    let first = |cap: Cap| a.calls.iter().find(|c| c.caps.contains(&cap));
    let line = |c: Option<&Call>| c.map(|c| c.line);
    let excerpt = |c: Option<&Call>| c.map(|c| a.line_text(c.line)).unwrap_or_default();
    // Code runs at install for the whole of setup.py; at import only at the top of __init__.
    let runs_now = |c: &Call| ctx == Context::Install || (ctx == Context::Import && c.top_level);
    let now = |cap: Cap| a.calls.iter().find(|c| c.caps.contains(&cap) && runs_now(c));

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

    let net = now(Cap::Network);
    let run = now(Cap::Process).or_else(|| now(Cap::DynamicExec));
    let host = now(Cap::HostInfo).or_else(|| now(Cap::EnvAccess)).is_some() || (ctx == Context::Install && a.has_env_attr.is_some());
    if ctx == Context::Install || ctx == Context::Import {
        let install = ctx == Context::Install;
        let tag = if install { "py-install" } else { "py-import" };
        match (net, run, host) {
            (Some(n), Some(_), _) => facts.findings.push(Finding::new(
                &format!("{tag}-download-exec"),
                if install { Severity::Critical } else { Severity::High },
                ctx,
                path,
                Some(n.line),
                &a.line_text(n.line),
                if install { "setup.py uses the network and runs programs or dynamic code while the package installs" } else { "importing the package uses the network and runs programs or dynamic code" },
            )),
            (Some(n), None, true) => facts.findings.push(Finding::new(
                &format!("{tag}-exfil-hostinfo"),
                Severity::High,
                ctx,
                path,
                Some(n.line),
                &a.line_text(n.line),
                "collects host or user information (host name, user, working directory, environment) and sends it over the network while the package installs or is imported",
            )),
            (Some(n), None, false) => facts.findings.push(Finding::new(
                &format!("{tag}-network"),
                // setup.py has no business on the network; import-time update checks exist.
                if install { Severity::High } else { Severity::Medium },
                ctx,
                path,
                Some(n.line),
                &a.line_text(n.line),
                "uses the network while the package installs or is imported",
            )),
            (None, Some(r), _) if install && r.caps.contains(&Cap::Process) => facts.findings.push(Finding::new(
                "py-install-process",
                Severity::Low,
                ctx,
                path,
                Some(r.line),
                &a.line_text(r.line),
                "runs an external program while the package installs (common for builds; weighs more with network use)",
            )),
            _ => {}
        }
    }
    let eager_ctx = ctx == Context::Install || ctx == Context::Import;
    // Executing run-time-built code in a file that also carries packed, enormous lines.
    if let (Some(l), true) = (a.dynamic_exec, facts.findings.iter().any(|f| f.rule == "py-long-line")) {
        facts.findings.push(Finding::new(
            "py-packed-exec",
            if eager_ctx { Severity::Critical } else { Severity::High },
            ctx,
            path,
            Some(l),
            &a.line_text(l),
            "executes run-time-built code in a file with packed lines of thousands of characters: an obfuscated payload",
        ));
    }
    if let Some(l) = a.dynamic_exec.filter(|_| ctx == Context::Install) {
        facts.findings.push(Finding::new(
            "py-install-dynamic-exec",
            Severity::Low,
            ctx,
            path,
            Some(l),
            &a.line_text(l),
            "setup.py executes code built at run time with exec/eval (not a literal, not a file of the package)",
        ));
    }
    if let Some(l) = a.hidden_endpoint {
        facts.findings.push(Finding::new(
            "py-hidden-endpoint",
            Severity::High,
            ctx,
            path,
            Some(l),
            &a.line_text(l),
            "a network request whose address or data is decoded at run time: an endpoint hidden from reviewers",
        ));
    }
    if let Some(l) = a.hidden_command {
        facts.findings.push(Finding::new(
            "py-hidden-command",
            if eager_ctx { Severity::Critical } else { Severity::High },
            ctx,
            path,
            Some(l),
            &a.line_text(l),
            "runs a program whose command line is decoded at run time",
        ));
    }
    if let Some(l) = a.pip_install.filter(|_| eager_ctx) {
        facts.findings.push(Finding::new(
            "py-install-pip-install",
            Severity::Medium,
            ctx,
            path,
            Some(l),
            &a.line_text(l),
            "installs further packages with pip while this package installs or is imported, outside the resolver's view",
        ));
    }
    // Host details sent out from ordinary code (install and import time are covered above): only
    // when they flow into the request, since clients routinely send a user agent with the OS.
    if !eager_ctx && let Some(l) = a.hostinfo_flow {
        facts.findings.push(Finding::new(
            "py-exfil-hostinfo",
            Severity::High,
            ctx,
            path,
            Some(l),
            &a.line_text(l),
            "host or user details (host name, user name, MAC address) flow into a network request",
        ));
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
