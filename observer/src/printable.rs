//! Text that comes from outside (syscall names in a profile file, a process's
//! `comm`, which any process sets for itself) reaches a terminal with its
//! control characters escaped: a name must not be able to move the cursor,
//! clear the screen, set the window title or reorder the text around it.

use std::borrow::Cow;

/// `s` unchanged when every character prints as itself; otherwise control
/// characters are escaped as Rust does (`\n`, `\u{1b}`) and invisible
/// characters that change the layout (bidi overrides, zero-width ones) as
/// `\u{...}`.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Arabic letter mark, zero-width and directional marks, bidi
            // embeddings and overrides, word joiner to the bidi isolates, BOM.
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
        )
}

/// A container id as people read it: the first 12 hex digits.
pub fn short(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) { id[..12].to_owned() } else { id.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_names_are_unchanged() {
        for s in ["read", "rt_sigaction", "syscall_451", "kworker/0:1", "nginx: worker", "café", "进程", ""] {
            assert!(matches!(printable(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn control_and_layout_characters_are_escaped() {
        assert_eq!(printable("evil\x1b[2J\x1b]0;title\x07"), "evil\\u{1b}[2J\\u{1b}]0;title\\u{7}");
        assert_eq!(printable("a\nb\tc\rd\x7f"), "a\\nb\\tc\\rd\\u{7f}");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m", "C1 CSI");
        assert_eq!(printable("abc\u{202e}txt.exe"), "abc\\u{202e}txt.exe");
        assert_eq!(printable("zero\u{200b}width"), "zero\\u{200b}width");
    }
}
