//! A small Rust lexer, just enough for the tidy checks: identifiers (keywords included), `::`, single
//! punctuation characters, and literals and lifetimes as opaque tokens. Comments (doc comments too)
//! produce no tokens, so a path written in a comment or a string never counts as a use.
//!
//! It fails on what it cannot read (an unterminated string or comment) rather than guessing: a
//! check that silently skipped the rest of a file would miss the edges it exists to find.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword; raw identifiers (`r#type`) are given without their `r#`.
    Ident,
    /// `::`, or any other single character that is not part of a word, literal or comment.
    Punct,
    /// A string, byte string, character or number literal, quotes included.
    Literal,
    /// A lifetime or loop label, `'a`.
    Lifetime,
}

#[derive(Clone, Copy, Debug)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    /// 1-based line the token starts on.
    pub line: usize,
}

impl Token<'_> {
    pub fn is_ident(&self, text: &str) -> bool {
        self.kind == Kind::Ident && self.text == text
    }

    pub fn is_punct(&self, text: &str) -> bool {
        self.kind == Kind::Punct && self.text == text
    }
}

/// Splits `src` into tokens. The error names the line where the unreadable construct starts.
pub fn tokenize(src: &str) -> Result<Vec<Token<'_>>, String> {
    let mut lexer = Lexer { src, pos: 0, line: 1, tokens: Vec::new() };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    tokens: Vec<Token<'a>>,
}

impl<'a> Lexer<'a> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + ahead).copied()
    }

    fn char_at(&self, pos: usize) -> Option<char> {
        self.src.get(pos..).and_then(|s| s.chars().next())
    }

    fn push(&mut self, kind: Kind, start: usize, line: usize) {
        self.tokens.push(Token { kind, text: &self.src[start..self.pos], line });
    }

    /// Moves past one character, counting lines.
    fn bump(&mut self) {
        if let Some(c) = self.char_at(self.pos) {
            if c == '\n' {
                self.line += 1;
            }
            self.pos += c.len_utf8();
        }
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.char_at(self.pos) {
            let (start, line) = (self.pos, self.line);
            match c {
                _ if c.is_whitespace() => self.bump(),
                '/' if self.peek(1) == Some(b'/') => {
                    while self.peek(0).is_some_and(|b| b != b'\n') {
                        self.bump();
                    }
                }
                '/' if self.peek(1) == Some(b'*') => self.block_comment()?,
                '"' => {
                    self.string()?;
                    self.push(Kind::Literal, start, line);
                }
                '\'' => self.quote()?,
                'r' | 'b' | 'c' if self.literal_prefix().is_some() => {
                    let (skip, raw) = self.literal_prefix().unwrap_or((0, false));
                    self.pos += skip;
                    match self.peek(0) {
                        Some(b'\'') => self.char_literal()?,
                        _ if raw => self.raw_string()?,
                        _ => self.string()?,
                    }
                    self.push(Kind::Literal, start, line);
                }
                'r' if self.peek(1) == Some(b'#') && self.char_at(self.pos + 2).is_some_and(is_ident_start) => {
                    self.pos += 2;
                    let word = self.pos;
                    self.word();
                    self.tokens.push(Token { kind: Kind::Ident, text: &self.src[word..self.pos], line });
                }
                _ if is_ident_start(c) => {
                    self.word();
                    self.push(Kind::Ident, start, line);
                }
                '0'..='9' => {
                    self.word();
                    // A fractional part, but not a method call or a range on an integer (`1.max(2)`, `0..n`).
                    if self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|b| b.is_ascii_digit()) {
                        self.pos += 1;
                        self.word();
                    }
                    self.push(Kind::Literal, start, line);
                }
                ':' if self.peek(1) == Some(b':') => {
                    self.pos += 2;
                    self.push(Kind::Punct, start, line);
                }
                _ => {
                    self.bump();
                    self.push(Kind::Punct, start, line);
                }
            }
        }
        Ok(())
    }

    /// At `r`, `b` or `c`: if a literal starts here (`r"`, `r#"`, `b"`, `b'`, `br"`, `c"`, `cr#"`...),
    /// how many prefix letters to skip before the quote or the first `#`, and whether it is raw.
    fn literal_prefix(&self) -> Option<(usize, bool)> {
        let (first, second) = (self.peek(0)?, self.peek(1));
        let (skip, raw) = match (first, second) {
            (b'r', _) => (1, true),
            (b'b' | b'c', Some(b'r')) => (2, true),
            (b'b', Some(b'\'')) => return Some((1, false)),
            (b'b' | b'c', _) => (1, false),
            _ => return None,
        };
        let next = self.src.as_bytes()[self.pos + skip..].iter().find(|&&b| b != b'#').copied();
        let hashes = self.src.as_bytes()[self.pos + skip..].iter().take_while(|&&b| b == b'#').count();
        match (raw, next) {
            (true, Some(b'"')) => Some((skip, true)),
            (false, Some(b'"')) if hashes == 0 => Some((skip, false)),
            _ => None,
        }
    }

    fn word(&mut self) {
        while self.char_at(self.pos).is_some_and(is_ident_continue) {
            self.bump();
        }
    }

    fn block_comment(&mut self) -> Result<(), String> {
        let line = self.line;
        let mut depth = 0usize;
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(b'/'), Some(b'*')) => {
                    depth += 1;
                    self.pos += 2;
                }
                (Some(b'*'), Some(b'/')) => {
                    depth -= 1;
                    self.pos += 2;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                (Some(_), _) => self.bump(),
                (None, _) => return Err(format!("line {line}: unterminated block comment")),
            }
        }
    }

    /// At the opening `"` of a string with escapes; moves past the closing one.
    fn string(&mut self) -> Result<(), String> {
        let line = self.line;
        self.pos += 1;
        loop {
            match self.peek(0) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.bump();
                }
                Some(_) => self.bump(),
                None => return Err(format!("line {line}: unterminated string")),
            }
        }
    }

    /// At the first `#` or the `"` of a raw string; moves past the closing quote and its hashes.
    fn raw_string(&mut self) -> Result<(), String> {
        let line = self.line;
        let hashes = self.src.as_bytes()[self.pos..].iter().take_while(|&&b| b == b'#').count();
        self.pos += hashes + 1;
        let close = format!("\"{}", "#".repeat(hashes));
        match self.src[self.pos..].find(&close) {
            Some(offset) => {
                self.line += self.src[self.pos..self.pos + offset].matches('\n').count();
                self.pos += offset + close.len();
                Ok(())
            }
            None => Err(format!("line {line}: unterminated raw string")),
        }
    }

    /// At a `'` that must open a character literal; moves past the closing one.
    fn char_literal(&mut self) -> Result<(), String> {
        let line = self.line;
        self.pos += 1;
        if self.peek(0) == Some(b'\\') {
            self.pos += 1;
        }
        self.bump();
        while self.peek(0).is_some_and(|b| b != b'\'' && b != b'\n') {
            self.bump();
        }
        if self.peek(0) != Some(b'\'') {
            return Err(format!("line {line}: unterminated character literal"));
        }
        self.pos += 1;
        Ok(())
    }

    /// At a `'`: a character literal (`'a'`, `'\n'`, `'é'`) or a lifetime or label (`'a`, `'outer`).
    fn quote(&mut self) -> Result<(), String> {
        let (start, line) = (self.pos, self.line);
        let next = self.char_at(self.pos + 1);
        let is_char = match next {
            Some('\\') => true,
            Some(c) => self.char_at(self.pos + 1 + c.len_utf8()) == Some('\''),
            None => false,
        };
        if is_char {
            self.char_literal()?;
            self.push(Kind::Literal, start, line);
        } else {
            self.pos += 1;
            self.word();
            self.push(Kind::Lifetime, start, line);
        }
        Ok(())
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens of `src`, idents and `::` as written, every other token by its kind.
    fn check(src: &str, expected: &str) {
        let tokens = tokenize(src).unwrap();
        let shown: Vec<String> = tokens
            .iter()
            .map(|t| match t.kind {
                Kind::Ident | Kind::Punct => t.text.to_string(),
                Kind::Literal => "<lit>".to_string(),
                Kind::Lifetime => "<'>".to_string(),
            })
            .collect();
        assert_eq!(shown.join(" "), expected, "tokens of {src:?}");
    }

    #[test]
    fn paths_and_punctuation() {
        check("use crate::a::{b, c as d};", "use crate :: a :: { b , c as d } ;");
        check("x.0.1 + 1.5e3 + 1.max(2)", "x . <lit> + <lit> + <lit> . max ( <lit> )");
        check("r#type::f()", "type :: f ( )");
    }

    #[test]
    fn comments_produce_no_tokens() {
        check("// crate::a::b\n/// crate::c\nx", "x");
        check("/* outer /* crate::inner */ still comment */ y", "y");
        check("//! crate::doc\nz", "z");
    }

    #[test]
    fn strings_are_opaque() {
        check(r#"f("crate::a::b", "\"crate::x\"")"#, "f ( <lit> , <lit> )");
        check(r###"r#"a "quoted" crate::x"# r"y""###, "<lit> <lit>");
        check(r##"b"crate::a" br#"crate::b"# c"x" b'\'' b'x'"##, "<lit> <lit> <lit> <lit> <lit>");
        check("rb b r c", "rb b r c");
    }

    #[test]
    fn chars_and_lifetimes() {
        check("'a' '\\'' '\\u{1F600}' 'é'", "<lit> <lit> <lit> <lit>");
        check("fn f<'a>(x: &'a str) -> &'static str", "fn f < <'> > ( x : & <'> str ) - > & <'> str");
        check("'outer: loop { break 'outer; }", "<'> : loop { break <'> ; }");
    }

    #[test]
    fn lines_are_counted_through_literals_and_comments() {
        let tokens = tokenize("/*\n*/ \"a\nb\" r#\"\n\"# x").unwrap();
        assert_eq!(tokens.last().map(|t| (t.text, t.line)), Some(("x", 4)));
    }

    #[test]
    fn unterminated_input_is_an_error() {
        assert_eq!(tokenize("x\n\"abc").unwrap_err(), "line 2: unterminated string");
        assert_eq!(tokenize("/* /* */").unwrap_err(), "line 1: unterminated block comment");
    }
}
