//! How numbers and untrusted text are written for people: thousands separators, plurals, and
//! control characters made visible (a label or a file name is data, never terminal commands).

/// `40000001` → `40,000,001`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `1 class`, `2 classes`: the count and the noun that agrees with it.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether `c` changes what a terminal shows rather than being shown: C0 and C1 controls, DEL,
/// and the bidirectional overrides and isolates that reorder the text around them (a label
/// could otherwise forge a result line, recolour the terminal or print text backwards).
pub fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every [control character](is_control) written as a Rust escape (`\r`, `\n`, `\t`,
/// `\u{1b}`), so that what came from a file prints as one visible line.
pub fn escape(s: &str) -> String {
    if !s.chars().any(is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A file path as [`escape`]d text (a file name may hold control characters too).
pub fn path(p: &std::path::Path) -> String {
    escape(&p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_plurals() {
        assert_eq!(thousands(40_000_001), "40,000,001");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(0), "0");
        assert_eq!(count(1, "class", "classes"), "1 class");
        assert_eq!(count(0, "class", "classes"), "0 classes");
    }

    #[test]
    fn controls_are_made_visible() {
        assert_eq!(
            escape("dog\r\nfake line 99.99% Egyptian cat (#285)"),
            "dog\\r\\nfake line 99.99% Egyptian cat (#285)"
        );
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("abc\u{202E}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("Egyptian cat, ½ café"), "Egyptian cat, ½ café");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
    }
}
