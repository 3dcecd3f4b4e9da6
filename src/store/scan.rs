//! Reading the text the database packs for beacon (rollups, row
//! versions: see `rollup::rollups_since_sql`): integers separated by one
//! ASCII byte, read in one pass over the bytes.
//!
//! `str::split` with a `char` and `str::parse` per field were most of a
//! full read of the history: at three replicas crossing an hour's turn,
//! `CharSearcher::next_match`, `memcmp` and `memchr` (the splits) and the
//! unpacking were a third of beacon's samples. Here each byte is looked at
//! once and nothing is allocated.

/// A cursor over packed text. Every reader returns `None` on anything it
/// does not expect, so damaged text is refused, never half-read.
pub(super) struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    pub fn new(text: &'a str) -> Scan<'a> {
        Scan {
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    pub fn at_end(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// The next byte, whatever it is.
    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// The next byte when it is `b`.
    pub fn expect(&mut self, b: u8) -> Option<()> {
        (self.byte()? == b).then_some(())
    }

    /// True (and past it) when the next byte is `b`.
    pub fn eat(&mut self, b: u8) -> bool {
        let here = self.bytes.get(self.at) == Some(&b);
        if here {
            self.at += 1;
        }
        here
    }

    /// A decimal integer with an optional sign, as `str::parse` takes it:
    /// at least one digit, no overflow.
    pub fn int(&mut self) -> Option<i64> {
        let negative = self.eat(b'-');
        if !negative {
            self.eat(b'+');
        }
        let start = self.at;
        let mut value: i64 = 0;
        while let Some(&b) = self.bytes.get(self.at) {
            if !b.is_ascii_digit() {
                break;
            }
            let digit = i64::from(b - b'0');
            // Negative numbers are built downwards, so i64::MIN reads too.
            value = value.checked_mul(10)?;
            value = if negative {
                value.checked_sub(digit)?
            } else {
                value.checked_add(digit)?
            };
            self.at += 1;
        }
        (self.at > start).then_some(value)
    }

    /// Up to the next `separator` (or the end), past it: the part before,
    /// for a reader that has to show it (a refusal's message).
    pub fn rest_of_part(&mut self, separator: u8) -> &'a str {
        let start = self.at;
        let end = self.bytes[start..]
            .iter()
            .position(|&b| b == separator)
            .map_or(self.bytes.len(), |i| start + i);
        self.at = (end + 1).min(self.bytes.len());
        // Separators are ASCII, so both ends are char boundaries.
        std::str::from_utf8(&self.bytes[start..end]).unwrap_or("")
    }

    /// Where the cursor is, to come back to (see [`Scan::rewind`]).
    pub fn position(&self) -> usize {
        self.at
    }

    pub fn rewind(&mut self, to: usize) {
        self.at = to.min(self.bytes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_read_exactly_and_overflow_or_no_digits_is_refused() {
        for (text, want) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("+5", Some(5)),
            ("", None),
            ("-", None),
            ("+", None),
            ("+-5", None),
            ("-+5", None),
            ("x1", None),
        ] {
            assert_eq!(Scan::new(text).int(), want, "{text:?}");
            assert_eq!(
                text.parse::<i64>().ok(),
                want,
                "as str::parse reads {text:?}"
            );
        }
        let mut s = Scan::new("12:-3;x");
        assert_eq!(s.int(), Some(12));
        assert_eq!(s.expect(b':'), Some(()));
        assert_eq!(s.int(), Some(-3));
        assert!(s.eat(b';'));
        assert!(!s.eat(b';'));
        assert_eq!(s.byte(), Some(b'x'));
        assert!(s.at_end());
        assert_eq!(s.byte(), None);
    }

    #[test]
    fn a_part_is_read_up_to_its_separator_for_a_message() {
        let mut s = Scan::new("a:b;c:d");
        assert_eq!(s.rest_of_part(b';'), "a:b");
        assert_eq!(s.rest_of_part(b';'), "c:d");
        assert!(s.at_end());
        assert_eq!(s.rest_of_part(b';'), "");
    }
}
