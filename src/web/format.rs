//! Formatting every web page and document shares: escaping for XML (SVG
//! badges, Atom, RSS, the page's inline SVG). Here, not in one of the
//! pages, so that pages and feeds import it and not each other.

pub use crate::domain::input::xml_forbidden;

/// Escapes text for XML (SVG, Atom, RSS). Characters XML forbids are left
/// out (admin input is cleaned of them already; this holds for any text),
/// and so is CR, which a parser would turn into LF anyway.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => {}
            c if xml_forbidden(c) => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(xml("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn characters_xml_forbids_never_reach_a_feed() {
        assert_eq!(
            xml("a\u{FFFE}b\u{FFFF}c\u{0}d\u{B}e\u{1F}f\r\n\tg\u{FFFD}\u{10FFFF}"),
            "abcdef\n\tg\u{FFFD}\u{10FFFF}"
        );
        for c in [
            '\u{9}', '\u{A}', '\u{D}', ' ', '\u{D7FF}', '\u{E000}', '\u{FFFD}',
        ] {
            assert!(!xml_forbidden(c), "{c:?}");
        }
    }
}
