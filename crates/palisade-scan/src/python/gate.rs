//! Which files are worth a parse: a lexical pass over the bytes, no syntax tree.
//!
//! Parsing is most of a scan's time, and most of an honest package's files cannot show any
//! behaviour. Every finding of the Python analysis needs a name that acts (runs a program, uses
//! the network or executes code) in code: [`super::classify`] gives `Process`, `Network` and
//! `DynamicExec` only to names built from the tokens below, and aliases keep the module's name
//! in their import. Words in comments and docstrings never become such names, so they are not
//! read here; every other string still is, since `__import__("subprocess")` names a module and
//! a payload string may be executed elsewhere.

/// Tokens of the host and environment details (`socket.gethostname`, `platform.node`,
/// `os.environ`, ...) that [`super::classify`] recognises. Collecting them is no behaviour on
/// its own, but another module of the package may send what a function of this one collects,
/// so the package-level analysis needs the function summaries of files that name them.
const HOST_TOKENS: &[&[u8]] =
    &[b"gethostname", b"getuser", b"getlogin", b"uname", b"getcwd", b"getnode", b"getfqdn", b"platform", b"getenv", b"environ"];

/// Whether a file names anything that acts, in code or in a string that is not a docstring.
/// A package in which no file has one cannot show behaviour, so its files skip the parse.
pub fn has_sink(data: &[u8]) -> bool {
    any_code_token(data, false)
}

/// Whether a code token of `data` is a sink or, with `host`, a host detail: one pass.
fn any_code_token(data: &[u8], host: bool) -> bool {
    // `import os as platform` would make `platform.system` a sink after all, and an alias of
    // `builtins` would make `b.exec` one.
    let platform_alias = memchr::memmem::find(data, b"as platform").is_some();
    let builtins_named = memchr::memmem::find(data, b"builtin").is_some();
    !code_tokens(data, |t, before, after| {
        !(is_sink_token(t, before, after, platform_alias, builtins_named) || (host && HOST_TOKENS.contains(&t)))
    })
}

/// What a sink does, for the inventory of a release's capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Process,
    Network,
    DynamicCode,
}

/// The kinds of sink a file names in code (as [`has_sink`] reads it), each with the byte
/// offset of its first token: one pass, stopping once all three are found.
pub fn sink_kinds(data: &[u8]) -> Vec<(SinkKind, usize)> {
    let platform_alias = memchr::memmem::find(data, b"as platform").is_some();
    let builtins_named = memchr::memmem::find(data, b"builtin").is_some();
    let mut found: Vec<(SinkKind, usize)> = Vec::new();
    code_tokens(data, |t, before, after| {
        if is_sink_token(t, before, after, platform_alias, builtins_named) {
            let kind = sink_kind(t);
            if !found.iter().any(|(k, _)| *k == kind) {
                found.push((kind, before.len()));
            }
        }
        found.len() < 3
    });
    found
}

/// The kind of a token [`is_sink_token`] accepted.
fn sink_kind(t: &[u8]) -> SinkKind {
    match t {
        b"exec" | b"eval" | b"execfile" | b"compile" | b"FunctionType" | b"CodeType" => SinkKind::DynamicCode,
        b"http" | b"urllib" | b"socket" | b"requests" | b"httpx" | b"aiohttp" | b"urllib2" | b"urllib3" | b"pycurl" | b"ftplib"
        | b"smtplib" | b"telnetlib" | b"paramiko" | b"httplib" | b"dns" | b"websocket" | b"wget" | b"telebot" | b"dropbox" | b"urlopen"
        | b"urlretrieve" | b"clone_from" => SinkKind::Network,
        _ => SinkKind::Process,
    }
}

/// Whether a file is worth parsing: it can act ([`has_sink`]), so its own findings and its
/// functions' capabilities may matter, or it names host details in code, which a sink in
/// another module may send. Decoding, file writes and the like only count together with a sink
/// in the same file.
pub fn worth_parsing(data: &[u8]) -> bool {
    any_code_token(data, true)
}

/// Whether any identifier-like word of `data` (comments and strings included) satisfies `f`:
/// one pass over the bytes, however many words are asked about.
pub fn any_word(data: &[u8], mut f: impl FnMut(&[u8]) -> bool) -> bool {
    data.split(|b| !is_ident_byte(*b)).any(|w| !w.is_empty() && f(w))
}

/// Calls `keep_going(token, bytes before, bytes after)` for every identifier-like token of the
/// file outside comments and docstrings, until it returns false; returns whether it never did.
///
/// A small Python lexer: comments run to the end of the line; strings take any prefix (`r`,
/// `b`, `u`, `f` and pairs), one or three quotes, and backslash escapes (which also separate
/// words: `"\nexec("` holds `exec`). A docstring is a string that makes up a whole logical line
/// on its own, outside brackets; f-strings never are, since their fields are code.
fn code_tokens(data: &[u8], mut keep_going: impl FnMut(&[u8], &[u8], &[u8]) -> bool) -> bool {
    let mut i = 0;
    let mut depth = 0usize;
    // Whether only whitespace (or a finished docstring-like string) stands before `i` on this
    // logical line.
    let mut line_start = true;
    while i < data.len() {
        let b = data[i];
        match b {
            b'#' => {
                i = memchr::memchr(b'\n', &data[i..]).map_or(data.len(), |p| i + p);
            }
            b'\n' => {
                if depth == 0 {
                    line_start = true;
                }
                i += 1;
            }
            b'\\' => {
                // A line continuation (or a stray backslash): the logical line goes on.
                i += 2;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                line_start = false;
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                line_start = false;
                i += 1;
            }
            b'"' | b'\'' => {
                let (end, ok) = string_at(data, i, false, line_start && depth == 0, &mut keep_going);
                if !ok {
                    return false;
                }
                line_start = false;
                i = end;
            }
            _ if is_ident_byte(b) => {
                let start = i;
                while i < data.len() && is_ident_byte(data[i]) {
                    i += 1;
                }
                // A string prefix: the token is not a name but opens the string after it.
                if i < data.len() && matches!(data[i], b'"' | b'\'') && is_string_prefix(&data[start..i]) {
                    let f = data[start..i].iter().any(|c| c.eq_ignore_ascii_case(&b'f'));
                    let (end, ok) = string_at(data, i, f, line_start && depth == 0, &mut keep_going);
                    if !ok {
                        return false;
                    }
                    line_start = false;
                    i = end;
                    continue;
                }
                line_start = false;
                if !keep_going(&data[start..i], &data[..start], &data[i..]) {
                    return false;
                }
            }
            _ => {
                if !b.is_ascii_whitespace() {
                    line_start = false;
                }
                i += 1;
            }
        }
    }
    true
}

fn is_string_prefix(t: &[u8]) -> bool {
    t.len() <= 2 && t.iter().all(|c| matches!(c.to_ascii_lowercase(), b'r' | b'b' | b'u' | b'f'))
}

/// Lexes the string whose (first) quote is at `quote`: returns where
/// it ends, and false if `keep_going` stopped on a token inside it. A string that may be a
/// docstring (`statement_start`) is read only if something other than the end of the statement
/// follows it (`"..." .join(x)`, `"a" "b"`).
fn string_at(
    data: &[u8],
    quote: usize,
    f_string: bool,
    statement_start: bool,
    keep_going: &mut impl FnMut(&[u8], &[u8], &[u8]) -> bool,
) -> (usize, bool) {
    let q = data[quote];
    let triple = data.len() >= quote + 3 && data[quote + 1] == q && data[quote + 2] == q;
    let open = if triple { 3 } else { 1 };
    let body_start = quote + open;
    let mut i = body_start;
    let body_end = loop {
        if i >= data.len() {
            break data.len();
        }
        match data[i] {
            b'\\' => i += 2,
            b'\n' if !triple => break i,
            c if c == q && (!triple || data[i + 1..].starts_with(&[q, q])) => break i,
            _ => i += 1,
        }
    };
    let end = if body_end < data.len() && data[body_end] == q { body_end + open } else { body_end };
    let end = end.min(data.len());
    if statement_start && !f_string && ends_statement(&data[end..]) {
        return (end, true);
    }
    let body = &data[body_start.min(body_end)..body_end];
    let mut j = 0;
    while j < body.len() {
        if body[j] == b'\\' {
            j += 2;
            continue;
        }
        if !is_ident_byte(body[j]) {
            j += 1;
            continue;
        }
        let s = j;
        while j < body.len() && is_ident_byte(body[j]) {
            j += 1;
        }
        let at = body_start + s;
        if !keep_going(&body[s..j], &data[..at], &data[body_start + j..]) {
            return (end, false);
        }
    }
    (end, true)
}

/// Whether only whitespace and then a newline, a comment, a `;` or the end of the file follow.
fn ends_statement(rest: &[u8]) -> bool {
    let rest = trim_spaces(rest);
    rest.is_empty() || matches!(rest[0], b'\n' | b'\r' | b'#' | b';')
}

/// `s` without the spaces and tabs it starts with (newlines kept: they end statements).
fn trim_spaces(s: &[u8]) -> &[u8] {
    &s[s.iter().take_while(|b| matches!(b, b' ' | b'\t' | b'\x0c')).count()..]
}

/// Whether a token is used as a module name: imported, or followed by an attribute, or a
/// whole string literal.
fn names_module(before: &[u8], after: &[u8]) -> bool {
    let before = before.trim_ascii_end();
    let after = after.trim_ascii_start();
    before.ends_with(b"import")
        || before.ends_with(b"from")
        || before.ends_with(b",")
        || after.starts_with(b".") && !after.starts_with(b"..")
        || (before.ends_with(b"\"") || before.ends_with(b"'")) && (after.starts_with(b"\"") || after.starts_with(b"'"))
}

pub(super) fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `before` and `after` are the bytes around the token, for the names that are sinks only in
/// some spellings: `os.system` but not `platform.system` (unless the file names something else
/// `platform`), the builtins `exec`/`eval`/`compile` but not a method of that name such as
/// `re.compile` or `model.eval` (unless the file names `builtins`, which an alias could reach),
/// `http` as a module but not in a URL, `urllib` but not its parsing modules, and `socket` where
/// it connects or may be aliased, not for `socket.timeout`.
/// `__import__` and `import_module` are not sinks: a module imported by name needs one of its
/// sinks named to act.
fn is_sink_token(t: &[u8], before: &[u8], after: &[u8], platform_alias: bool, builtins_named: bool) -> bool {
    let method = before.trim_ascii_end().ends_with(b".") && !before.trim_ascii_end().ends_with(b"..");
    match t {
        b"exec" | b"eval" | b"execfile" | b"compile" => !method || builtins_named,
        b"FunctionType" | b"CodeType" => true,
        b"execl" | b"execle" | b"execlp" | b"execlpe" | b"execv" | b"execve" | b"execvp" | b"execvpe" => true,
        b"system" => platform_alias || !before.ends_with(b"platform."),
        // As a module (`import http as h`, `http . client`, `__import__("pip")`), not in prose
        // such as "pip install" or a URL.
        b"http" | b"pip" => names_module(before, after),
        b"urllib" => !(after.starts_with(b".parse") || after.starts_with(b".error") || after.starts_with(b".robotparser")),
        b"socket" => socket_connects(before, after),
        b"popen" | b"Popen" | b"startfile" | b"getoutput" | b"getstatusoutput" | b"subprocess" => true,
        b"requests" | b"httpx" | b"aiohttp" | b"urllib2" | b"urllib3" | b"pycurl" | b"ftplib" | b"smtplib" => true,
        b"telnetlib" | b"paramiko" | b"httplib" | b"dns" | b"websocket" | b"wget" | b"telebot" | b"dropbox" => true,
        b"urlopen" | b"urlretrieve" | b"clone_from" => true,
        _ => {
            t.starts_with(b"spawn")
                || t.starts_with(b"posix_spawn")
                || t.starts_with(b"ShellExecute")
                || t.starts_with(b"create_subprocess")
                || t.starts_with(b"popen")
        }
    }
}

/// `socket` acts where it opens a connection (`socket.socket`, `socket.create_connection`,
/// `socket.gethostbyname`, `socket.getaddrinfo`), as an attribute of something else (an alias
/// of the module), where it can be renamed or its functions imported on their own
/// (`import socket as s`, `from socket import ...`) and as a whole string. A plain
/// `import socket` does not: every use of it is then spelled `socket.<name>` and judged there.
fn socket_connects(before: &[u8], after: &[u8]) -> bool {
    const CONNECTS: &[&[u8]] = &[b"socket", b"create_connection", b"gethostbyname", b"getaddrinfo", b"SocketType", b"fromfd"];
    let rest = trim_spaces(after);
    if let Some(attr) = rest.strip_prefix(b".") {
        let attr = trim_spaces(attr);
        let name = &attr[..attr.iter().take_while(|b| is_ident_byte(**b)).count()];
        return CONNECTS.contains(&name);
    }
    // The statement's start, looked for in the bytes just before (a bounded look-back).
    let near = &before[before.len().saturating_sub(256)..];
    let line = near.rsplit(|b| *b == b'\n' || *b == b';').next().unwrap_or(near).trim_ascii_start();
    if line.starts_with(b"import ") || line.starts_with(b"import\t") {
        // `import socket` and `import os, socket`: only an alias can hide later uses.
        return rest.starts_with(b"as ") || rest.starts_with(b"as\t");
    }
    // `from socket import x`, a bare name (a parameter, `socket(...)` after an import of the
    // class), a string: all may connect.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_kinds_name_what_acts() {
        let src = b"# subprocess in a comment\nimport requests\nx = eval(y)\n";
        let kinds: Vec<SinkKind> = sink_kinds(src).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, vec![SinkKind::Network, SinkKind::DynamicCode]);
        let (_, at) = sink_kinds(src)[0];
        assert!(src[at..].starts_with(b"requests"));
        assert!(sink_kinds(b"import platform\nplatform.system()\nre.compile('x')\n").is_empty());
        let all: Vec<SinkKind> = sink_kinds(b"os.system('x')\nurlopen(u)\nexec(c)\n").into_iter().map(|(k, _)| k).collect();
        assert_eq!(all, vec![SinkKind::Process, SinkKind::Network, SinkKind::DynamicCode]);
    }

    #[test]
    fn prose_is_not_code() {
        for (src, sink) in [
            ("\"\"\"Calls subprocess and the socket module.\"\"\"\nx = 1\n", false),
            ("def f():\n    '''Uses exec.'''\n    return 1\n", false),
            ("# os.system('x')\nx = 1\n", false),
            ("x = 1  # exec(payload)\n", false),
            ("s = \"a # b\"; exec(s)\n", true),
            ("PAYLOAD = '''exec(b64decode(P))'''\n", true),
            ("f\"{__import__('os').system('id')}\"\n", true),
            ("\"subprocess\".join(x)\n", true),
            ("print(\"\"\"\nexec(x)\n\"\"\")\n", true),
            ("x = (\n    \"exec\"\n)\n", true),
            ("'''doc''' ; exec(x)\n", true),
            ("r'\\'' ; exec(x)\n", true),
            ("'unterminated\nexec(x)\n", true),
            ("b'''system'''\nrb\"exec\"\n", false),
        ] {
            assert_eq!(has_sink(src.as_bytes()), sink, "{src}");
        }
    }

    #[test]
    fn methods_named_like_builtins_are_not_builtins() {
        for (src, sink) in [
            ("model.eval()\n", false),
            ("pattern = regex_module.compile(x)\n", false),
            ("import builtins as b\nb.exec(code)\n", true),
            ("getattr(x, 'eval')(code)\n", true),
            ("from urllib.parse import urlparse\n", false),
            ("import urllib.parse\nurllib.parse.quote(x)\n", false),
            ("import urllib.request\n", true),
            ("from urllib import request\n", true),
            ("import socket\ntry:\n    pass\nexcept socket.timeout:\n    pass\n", false),
            ("import socket\ns = socket.socket()\n", true),
            ("import socket as s\n", true),
            ("import os, socket as s\n", true),
            ("import os; s = socket\n", true),
            ("from socket import create_connection\n", true),
            ("conn = mod.socket()\n", true),
            ("__import__('socket')\n", true),
            ("socket . create_connection(addr)\n", true),
        ] {
            assert_eq!(has_sink(src.as_bytes()), sink, "{src}");
        }
    }

    #[test]
    fn whole_words() {
        let is_start = |w: &[u8]| w == b"start";
        assert!(any_word(b"x = start()\n", is_start));
        assert!(any_word(b"start", is_start));
        assert!(!any_word(b"restart()\nstarted = 1\n", is_start));
    }

    #[test]
    fn long_lines_stay_linear() {
        // Each `socket` looks back for the start of its statement, a bounded distance: a packed
        // line of them took quadratic time (minutes for this one) when it looked back to the
        // line's start.
        let line = format!("import os; {}", "x = socket ".repeat(400_000));
        assert!(has_sink(line.as_bytes()));
        let packed = format!("import socket; {}\n", "y = socket.timeout; ".repeat(200_000));
        assert!(!has_sink(packed.as_bytes()));
    }

    #[test]
    fn host_details_in_code_are_worth_a_parse() {
        assert!(worth_parsing(b"def who():\n    return os.environ.copy()\n"));
        assert!(worth_parsing(b"import platform\nNODE = platform.node()\n"));
        assert!(!worth_parsing(b"\"\"\"Reads the environment and the platform.\"\"\"\nX = 1\n"));
        assert!(!worth_parsing(b"def add(a, b):\n    return a + b\n"));
    }
}
