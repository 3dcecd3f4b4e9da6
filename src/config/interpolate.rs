//! `${VAR}` substitution in string values, so secrets stay in the environment.
//!
//! Substitution happens on parsed TOML values, never on the file's text: a
//! value from the environment can hold quotes or newlines without changing
//! the structure of the config. `$${` writes a literal `${`.

/// Replaces every `${NAME}` in `input`. Returns the names that were not set.
pub fn interpolate(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(input.len());
    let mut missing = Vec::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            match tail.find('}') {
                Some(end) => {
                    let name = &tail[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => missing.push(name.to_string()),
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    // An unclosed `${` is kept as written; validation of the
                    // field itself (URL, duration…) will say what is wrong.
                    out.push_str(after);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    fn env(name: &str) -> Option<String> {
        match name {
            "DB_PASSWORD" => Some("s3\"cr\net".into()),
            "HOST" => Some("db.internal".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_set_variables_verbatim() {
        assert_eq!(
            interpolate("postgres://u:${DB_PASSWORD}@${HOST}/x", &env).as_deref(),
            Ok("postgres://u:s3\"cr\net@db.internal/x")
        );
        assert_eq!(interpolate("a${EMPTY}b", &env).as_deref(), Ok("ab"));
    }

    #[test]
    fn reports_every_unset_variable() {
        assert_eq!(
            interpolate("${NOPE}/${HOST}/${ALSO_NOPE}", &env),
            Err(vec!["NOPE".to_string(), "ALSO_NOPE".to_string()])
        );
    }

    #[test]
    fn leaves_plain_dollars_and_escapes_alone() {
        assert_eq!(interpolate("cost $5", &env).as_deref(), Ok("cost $5"));
        assert_eq!(interpolate("$${HOST}", &env).as_deref(), Ok("${HOST}"));
        assert_eq!(interpolate("tail ${", &env).as_deref(), Ok("tail ${"));
    }
}
