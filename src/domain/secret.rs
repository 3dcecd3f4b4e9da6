//! Comparing secrets (tokens, MACs) without telling by the time taken how
//! close a guess came.

/// Equal in time whatever the contents (the length is not secret).
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::equal;

    #[test]
    fn secrets_compare_exactly() {
        assert!(equal(b"s3cret", b"s3cret"));
        assert!(!equal(b"s3cret", b"s3creT"));
        assert!(!equal(b"s3cret", b"s3cre"));
        assert!(!equal(b"", b"x"));
    }
}
