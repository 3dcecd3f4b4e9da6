//! Bearer tokens, as the admin API and `/metrics` check them: compared in
//! constant time, never logged.

use axum::http::{header, HeaderMap};

use crate::domain::secret::equal as constant_time_eq;

/// Whether `Authorization: Bearer` carries one of `tokens`. Every token is
/// compared, so timing does not tell which one came close.
pub(super) fn bearer_allowed(headers: &HeaderMap, tokens: &[String]) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return false;
    };
    tokens.iter().fold(false, |found, token| {
        constant_time_eq(token.as_bytes(), given.as_bytes()) | found
    })
}

/// Which of `tokens` `Authorization: Bearer` carries, if any. Every token
/// is compared, so timing tells neither which one matched nor how close.
pub(super) fn bearer_index(headers: &HeaderMap, tokens: &[String]) -> Option<usize> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)?;
    tokens.iter().enumerate().fold(None, |found, (i, token)| {
        let equal = constant_time_eq(token.as_bytes(), given.as_bytes());
        found.or(equal.then_some(i))
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn only_a_bearer_header_with_a_configured_token_is_allowed() {
        let tokens = vec!["one".to_string(), "two".to_string()];
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            bearer_allowed(&headers, &tokens)
        };
        assert!(with("Bearer two"));
        assert!(with("Bearer one "));
        assert!(!with("Bearer three"));
        assert!(!with("Basic one"));
        assert!(!with("bearer one"));
        assert!(!bearer_allowed(&HeaderMap::new(), &tokens));
    }
}
