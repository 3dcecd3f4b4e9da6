//! The one collector of problems: validation never stops at the first
//! mistake, it writes each one down with its place (`server: listen …`,
//! `service[2] "Checkout": timeout …`) and goes on, so a person fixes a
//! config in one round.

/// Every problem found so far, in the order found.
#[derive(Default)]
pub struct Problems {
    found: Vec<String>,
}

/// How many problems there were at some point (see [`Problems::mark`]).
#[derive(Clone, Copy)]
pub struct Mark(usize);

impl Problems {
    /// Writes down `problem`, which begins with its place.
    pub fn push(&mut self, problem: String) {
        self.found.push(problem);
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Where the list stands now, to ask later whether a section added any.
    pub fn mark(&self) -> Mark {
        Mark(self.found.len())
    }

    /// Whether any problem was found since `mark`.
    pub fn grew_since(&self, mark: Mark) -> bool {
        self.found.len() > mark.0
    }

    /// Whether a problem starting with `prefix` was found already.
    pub fn any_starts_with(&self, prefix: &str) -> bool {
        self.found.iter().any(|p| p.starts_with(prefix))
    }

    /// The messages, each value that came from `${VAR}` written as the
    /// variable instead, so that no message shows one.
    pub fn into_messages(self, used: &[(String, String)]) -> Vec<String> {
        self.found
            .iter()
            .map(|p| hide_substituted(p, used))
            .collect()
    }
}

/// `problem` with each value that came from `${VAR}` written as the
/// variable instead (longest value first), so that no message shows one.
pub fn hide_substituted(problem: &str, used: &[(String, String)]) -> String {
    let mut used: Vec<&(String, String)> = used
        .iter()
        .filter(|(_, value)| value.len() >= crate::redact::MIN_SECRET_LEN)
        .collect();
    used.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
    let mut out = problem.to_string();
    for (name, value) in used {
        if out.contains(value.as_str()) {
            out = out.replace(value.as_str(), &format!("${{{name}}}"));
        }
    }
    out
}
