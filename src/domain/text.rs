//! Text rules every layer shares: slugs, and text from outside made safe.

/// Longest dependency name kept, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Text a target sent, made safe to store, log and show: control characters
/// (NUL breaks PostgreSQL text) become spaces, and it is cut to `max` bytes
/// at a character boundary.
pub fn clean_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

/// `Checkout API` → `checkout-api`: lowercase, runs of anything but a-z/0-9
/// become one `-`, no `-` at either end.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_hyphenated_names() {
        for (name, slug) in [
            ("Checkout API", "checkout-api"),
            ("  Orders -- DB ", "orders-db"),
            ("Zahlung (EU)", "zahlung-eu"),
            ("API v2.1", "api-v2-1"),
        ] {
            assert_eq!(slugify(name), slug, "{name}");
        }
    }

    #[test]
    fn control_characters_become_spaces_and_long_text_is_cut_at_a_character() {
        assert_eq!(clean_text("a\u{0}b\nc", 100), "a b c");
        assert_eq!(clean_text("ééé", 4), "éé…");
        assert_eq!(
            clean_text(&"x".repeat(10_000), 512).len(),
            512 + '…'.len_utf8()
        );
    }
}
