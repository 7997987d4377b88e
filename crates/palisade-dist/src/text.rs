//! Short free text that people type and others read: yank reasons (PEP 592), project status
//! reasons (PEP 792), token descriptions. It ends up in HTML attributes, JSON, terminals and
//! mail, so characters that change how the text around them is displayed are refused: control
//! characters (line breaks included: these are one-line texts), the bidirectional embeddings,
//! overrides, isolates and marks ("Trojan Source", CVE-2021-42574), line and paragraph
//! separators, and invisible characters that hide or join text.

/// The longest text accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextError {
    #[error("the {what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("the {what} contains {name} (U+{code:04X}) at character {position}; use plain text on one line")]
    Character { what: &'static str, name: &'static str, code: u32, position: usize },
}

/// Checks `text` (described as `what` in the error, such as "yank reason"): at most
/// [`MAX_TEXT_CHARS`] characters, none of them one that [`display_hazard`] names.
pub fn check_text(what: &'static str, text: &str) -> Result<(), TextError> {
    for (i, c) in text.chars().enumerate() {
        if i == MAX_TEXT_CHARS {
            return Err(TextError::TooLong { what, max: MAX_TEXT_CHARS });
        }
        if let Some(name) = display_hazard(c) {
            return Err(TextError::Character { what, name, code: c as u32, position: i + 1 });
        }
    }
    Ok(())
}

/// What `c` is, if it changes how the text around it is displayed.
pub fn display_hazard(c: char) -> Option<&'static str> {
    Some(match c {
        '\n' | '\r' | '\u{85}' => "a line break",
        c if c.is_control() => "a control character",
        '\u{202A}'..='\u{202E}' => "a bidirectional embedding or override",
        '\u{2066}'..='\u{2069}' => "a bidirectional isolate",
        '\u{200E}' | '\u{200F}' | '\u{061C}' => "a bidirectional mark",
        '\u{2028}' => "a line separator",
        '\u{2029}' => "a paragraph separator",
        '\u{200B}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' => "an invisible character",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), &str>) {
        let got = check_text("yank reason", input).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_string), "input {input:?}");
    }

    #[test]
    fn plain_text_passes() {
        check("", Ok(()));
        check("security hole, use 2.0.1 instead", Ok(()));
        check("\"><script>alert(1)</script>&", Ok(()));
        check("Sicherheitslücke — bitte 2.0.1 verwenden", Ok(()));
        check("שגיאה בגרסה", Ok(()));
        check("👩‍💻 broken wheel", Ok(()));
        check(&"x".repeat(MAX_TEXT_CHARS), Ok(()));
        check(&"é".repeat(MAX_TEXT_CHARS), Ok(()));
    }

    #[test]
    fn display_hazards_are_refused() {
        check(
            "fixed in 2.0\u{202E}1.0.2 ni dexif",
            Err("the yank reason contains a bidirectional embedding or override (U+202E) at character 13; use plain text on one line"),
        );
        check("a\u{2066}b", Err("the yank reason contains a bidirectional isolate (U+2066) at character 2; use plain text on one line"));
        check("a\u{2069}", Err("the yank reason contains a bidirectional isolate (U+2069) at character 2; use plain text on one line"));
        check("\u{200F}x", Err("the yank reason contains a bidirectional mark (U+200F) at character 1; use plain text on one line"));
        check("a\u{2028}b", Err("the yank reason contains a line separator (U+2028) at character 2; use plain text on one line"));
        check("a\u{2029}b", Err("the yank reason contains a paragraph separator (U+2029) at character 2; use plain text on one line"));
        check("a\nb", Err("the yank reason contains a line break (U+000A) at character 2; use plain text on one line"));
        check("a\r", Err("the yank reason contains a line break (U+000D) at character 2; use plain text on one line"));
        check("a\u{85}", Err("the yank reason contains a line break (U+0085) at character 2; use plain text on one line"));
        check("\u{1b}[31mred", Err("the yank reason contains a control character (U+001B) at character 1; use plain text on one line"));
        check("tab\there", Err("the yank reason contains a control character (U+0009) at character 4; use plain text on one line"));
        check("nul\0", Err("the yank reason contains a control character (U+0000) at character 4; use plain text on one line"));
        check("x\u{200B}y", Err("the yank reason contains an invisible character (U+200B) at character 2; use plain text on one line"));
        check("\u{FEFF}", Err("the yank reason contains an invisible character (U+FEFF) at character 1; use plain text on one line"));
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}').chain(['\u{2028}', '\u{2029}', '\u{061C}', '\u{7f}']) {
            assert!(display_hazard(c).is_some(), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn length_is_bounded() {
        check(&"x".repeat(MAX_TEXT_CHARS + 1), Err("the yank reason is longer than 500 characters"));
    }
}
