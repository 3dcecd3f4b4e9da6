//! Gatus-compatible conditions: `[STATUS] == 200`, `[BODY].data[0].id > 5`,
//! `len([BODY].items) < 10`, `[BODY].name == pat(john*)` …
//!
//! Gatus users' configs must carry over unchanged, so this follows Gatus
//! (v5, `config/endpoint/condition.go`, `placeholder.go`, `jsonpath.go`,
//! `pattern.go`) to the letter, quirks included: numbers in a body render as
//! Go's `%v` does (`1e+06`), `==` compares as integers only when both sides
//! parse as Go integers (hex, octal, binary), `<`/`>` read durations as
//! milliseconds and anything else unparsable as 0, and failed conditions
//! render like `[STATUS] (503) == 200`. docs/research/gatus-conditions.md
//! has the full specification; `tests/data/gatus_conditions.json` holds its
//! 291 cases, Gatus's own test table included, and every one is checked.
//!
//! Where Gatus panics (a negative array index, `key[i]` on a non-object) the
//! operand is INVALID instead.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Le,
    Ge,
    Gt,
    Lt,
}

/// Searched in this order; the first one present wins (as in Gatus).
const SEPARATORS: [(&str, Op); 6] = [
    (" == ", Op::Eq),
    (" != ", Op::Ne),
    (" <= ", Op::Le),
    (" >= ", Op::Ge),
    (" > ", Op::Gt),
    (" < ", Op::Lt),
];

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    text: String,
    op: Op,
    left: String,
    right: String,
}

/// What a probe observed, as conditions see it.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// HTTP status; 0 when there is none.
    pub status: u16,
    pub body: &'a [u8],
    pub response_time_ms: i64,
    pub ip: &'a str,
    pub connected: bool,
    /// Until the certificate's NotAfter; 0 when there is no certificate.
    pub certificate_expiration_ms: i64,
    pub domain_expiration_ms: i64,
    pub dns_rcode: &'a str,
}

/// How a condition went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub success: bool,
    /// The condition as shown: resolved (`[STATUS] (503) == 200`) when it
    /// failed, as written when it held (Gatus's default).
    pub text: String,
}

impl Condition {
    /// Parses `text`; the only syntax error Gatus knows is a missing operator.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let Some((sep, op)) = SEPARATORS.iter().find(|(sep, _)| text.contains(sep)) else {
            return Err(format!(
                "condition \"{text}\" has no operator: write it like \"[STATUS] == 200\", with one space on each side of ==, !=, <, <=, > or >="
            ));
        };
        let mut parts = text.split(sep);
        let left = parts.next().unwrap_or("").trim().to_string();
        let right = parts.next().unwrap_or("").trim().to_string();
        Ok(Condition {
            text: text.to_string(),
            op: *op,
            left,
            right,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the condition reads the body (so the probe must fetch it).
    pub fn needs_body(&self) -> bool {
        self.text.contains("[BODY]")
    }

    /// Evaluates with Gatus's default rendering (failed conditions resolved).
    pub fn evaluate(&self, observed: &Observed<'_>) -> Outcome {
        self.evaluate_with(observed, false, false)
    }

    /// `resolve_successful` / `dont_resolve_failed` are Gatus's `ui` flags.
    pub fn evaluate_with(
        &self,
        observed: &Observed<'_>,
        resolve_successful: bool,
        dont_resolve_failed: bool,
    ) -> Outcome {
        let left = resolve(&self.left, observed);
        let right = resolve(&self.right, observed);
        let (success, shown_left, shown_right) = match self.op {
            Op::Eq | Op::Ne => {
                let equal = is_equal(&left, &right);
                (equal == (self.op == Op::Eq), left, right)
            }
            op => {
                let (a, b) = (to_i64(&left), to_i64(&right));
                let success = match op {
                    Op::Le => a <= b,
                    Op::Ge => a >= b,
                    Op::Gt => a > b,
                    _ => a < b,
                };
                (
                    success,
                    numeric_shown(&self.left, a),
                    numeric_shown(&self.right, b),
                )
            }
        };
        let resolve_text = if success {
            resolve_successful
        } else {
            !dont_resolve_failed
        };
        let text = if resolve_text {
            self.prettify(shown_left, shown_right)
        } else {
            self.text.clone()
        };
        Outcome { success, text }
    }

    fn prettify(&self, mut left: String, mut right: String) -> String {
        if is_call(&self.left, "pat") && right.len() > 25 {
            right = truncate_25(&right);
        }
        if is_call(&self.right, "pat") && left.len() > 25 {
            left = truncate_25(&left);
        }
        format!(
            "{} {} {}",
            shown(&self.left, &left),
            self.op.symbol(),
            shown(&self.right, &right)
        )
    }
}

/// The conditions of `conditions` that do not hold, as shown to operators
/// (`[STATUS] (503) == 200`).
pub fn failing(conditions: &[Condition], observed: &Observed<'_>) -> Vec<String> {
    conditions
        .iter()
        .map(|c| c.evaluate(observed))
        .filter(|o| !o.success)
        .map(|o| o.text)
        .collect()
}

/// Go's `%.25s...(truncated)`: 25 characters.
fn truncate_25(s: &str) -> String {
    format!("{}...(truncated)", s.chars().take(25).collect::<String>())
}

fn shown(param: &str, resolved: &str) -> String {
    if resolved == format!("{param} (INVALID)") {
        resolved.to_string()
    } else if resolved != param {
        format!("{param} ({resolved})")
    } else {
        param.to_string()
    }
}

fn numeric_shown(param: &str, n: i64) -> String {
    if param == "[CERTIFICATE_EXPIRATION]"
        || param == "[DOMAIN_EXPIRATION]"
        || parse_go_duration(param).is_some()
    {
        format_duration_ms(n)
    } else {
        n.to_string()
    }
}

fn is_call(s: &str, name: &str) -> bool {
    s.len() > name.len() + 1
        && s.starts_with(name)
        && s[name.len()..].starts_with('(')
        && s.ends_with(')')
}

fn call_inner<'a>(s: &'a str, name: &str) -> &'a str {
    &s[name.len() + 1..s.len() - 1]
}

#[derive(PartialEq)]
enum Func {
    None,
    Len,
    Has,
}

/// Turns one operand into its value (Gatus `ResolvePlaceholder`).
fn resolve(operand: &str, o: &Observed<'_>) -> String {
    let (func, inner) = if operand.starts_with("len(") && operand.ends_with(')') {
        (Func::Len, &operand[4..operand.len() - 1])
    } else if operand.starts_with("has(") && operand.ends_with(')') {
        (Func::Has, &operand[4..operand.len() - 1])
    } else {
        (Func::None, operand)
    };
    let upper = inner.to_uppercase();
    let raw_body = o.body;
    let body_text = String::from_utf8_lossy(raw_body);
    let simple = match upper.as_str() {
        "[STATUS]" => Some(o.status.to_string()),
        "[IP]" => Some(o.ip.to_string()),
        "[RESPONSE_TIME]" => Some(o.response_time_ms.to_string()),
        "[DNS_RCODE]" => Some(o.dns_rcode.to_string()),
        "[CONNECTED]" => Some(o.connected.to_string()),
        "[CERTIFICATE_EXPIRATION]" => Some(o.certificate_expiration_ms.to_string()),
        "[DOMAIN_EXPIRATION]" => Some(o.domain_expiration_ms.to_string()),
        "[BODY]" => Some(body_text.trim().to_string()),
        _ => None,
    };
    if let Some(value) = simple {
        let is_body = upper == "[BODY]";
        return match func {
            Func::None => value,
            Func::Len if is_body => match eval_path("", raw_body) {
                Ok((_, len)) => len.to_string(),
                Err(()) => value.len().to_string(),
            },
            Func::Len => value.len().to_string(),
            Func::Has => (!value.is_empty()).to_string(),
        };
    }
    if upper.starts_with("[BODY].") || upper.starts_with("[BODY][") {
        let path = &inner[6..];
        let path = path.strip_prefix('.').unwrap_or(path);
        return match (eval_path(path, raw_body), func) {
            (Ok(_), Func::Has) => "true".into(),
            (Err(()), Func::Has) => "false".into(),
            (Err(()), _) => format!("{operand} (INVALID)"),
            (Ok((_, len)), Func::Len) => len.to_string(),
            (Ok((value, _)), Func::None) => value,
        };
    }
    match func {
        Func::Has => "false".into(),
        Func::Len => format!("{operand} (INVALID)"),
        Func::None => operand.to_string(),
    }
}

/// Gatus's `jsonpath.Eval`: the value at `path` as text, and its length
/// (elements for arrays, bytes otherwise).
fn eval_path(path: &str, body: &[u8]) -> Result<(String, usize), ()> {
    let array_like = !body.is_empty() && body[0] == b'[' && body[body.len() - 1] == b']';
    if path.is_empty() && !array_like {
        return Ok((String::from_utf8_lossy(body).into_owned(), body.len()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| ())?;
    walk(path, &value)
}

fn walk(path: &str, value: &Value) -> Result<(String, usize), ()> {
    let keys = split_keys(path);
    let current = keys.first().copied().unwrap_or("");
    let v = extract(current, value).ok_or(())?;
    match v {
        Value::Object(_) => {
            let next = path.replacen(&format!("{current}."), "", 1);
            if next == path {
                let json = go_json(v);
                let len = json.len();
                Ok((json, len))
            } else {
                walk(&next, v)
            }
        }
        Value::String(s) => {
            if keys.len() > 1 {
                Err(())
            } else {
                Ok((s.clone(), s.len()))
            }
        }
        Value::Array(items) => Ok((go_v(v), items.len())),
        Value::Null => Err(()),
        other => {
            let s = go_v(other);
            let len = s.len();
            Ok((s, len))
        }
    }
}

/// Splits on `.` outside of `[...]`.
fn split_keys(path: &str) -> Vec<&str> {
    let mut keys = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                keys.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    keys.push(&path[start..]);
    keys
}

fn extract<'v>(key: &str, value: &'v Value) -> Option<&'v Value> {
    if key.ends_with(']') && key.contains('[') {
        let open = key.find('[')?;
        let close = open + key[open..].find(']')?;
        let index: i64 = key[open + 1..close].parse().ok()?;
        let index = usize::try_from(index).ok()?;
        let name = &key[..open];
        let array = if name.is_empty() {
            value.as_array()
        } else {
            match value.as_object()?.get(name)? {
                Value::Null => return None,
                v => v.as_array(),
            }
        };
        let item = array.and_then(|a| a.get(index))?;
        let rest = &key[close + 1..];
        if rest.is_empty() {
            Some(item)
        } else {
            extract(rest, item)
        }
    } else {
        match value {
            Value::Array(_) => Some(value),
            Value::Object(map) => map.get(key),
            other => Some(other),
        }
    }
}

/// Go `fmt.Sprintf("%v", v)` of a decoded JSON value.
fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(0.0), 6),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(go_v).collect::<Vec<_>>().join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_v(&map[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's shortest float formatting: exponent form when the decimal exponent
/// is below -4 or at least `max_exp` (6 for `%v`, 21 for `encoding/json`).
fn go_float(f: f64, max_exp: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= max_exp {
        let sign = if exp < 0 { '-' } else { '+' };
        if max_exp == 21 {
            // encoding/json trims the exponent's leading zero: 1e-07 → 1e-7.
            format!("{mantissa}e{sign}{}", exp.abs())
        } else {
            format!("{mantissa}e{sign}{:02}", exp.abs())
        }
    } else {
        format!("{f}")
    }
}

/// Go `json.Marshal` of a decoded value: sorted keys, HTML characters escaped.
fn go_json(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(0.0), 21),
        Value::String(s) => go_json_string(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_json).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_json_string(k), go_json(&map[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
    }
}

fn go_json_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Gatus `isEqual`: pat() and any() on either side, then integers when both
/// sides are Go integers, else exact text.
fn is_equal(first: &str, second: &str) -> bool {
    let (mut first, mut second) = (first, second);
    if first.ends_with(')') || second.ends_with(')') {
        let first_pat = is_call(first, "pat");
        let second_pat = is_call(second, "pat");
        if first_pat {
            first = call_inner(first, "pat");
        }
        if second_pat {
            second = call_inner(second, "pat");
        }
        if first_pat && !second_pat {
            return pattern_match(first, second);
        }
        if second_pat && !first_pat {
            return pattern_match(second, first);
        }
        let first_any = is_call(first, "any");
        let second_any = is_call(second, "any");
        if first_any {
            first = call_inner(first, "any");
        }
        if second_any {
            second = call_inner(second, "any");
        }
        if first_any && !second_any {
            return first.split(',').any(|o| o.trim() == second);
        }
        if second_any && !first_any {
            return second.split(',').any(|o| o.trim() == first);
        }
    }
    match (parse_go_int(first), parse_go_int(second)) {
        (Some(a), Some(b)) => a == b,
        _ => first == second,
    }
}

/// Go `strconv.ParseInt(s, 0, 64)`: sign, then 0x/0o/0b prefixes or a
/// leading 0 for octal, `_` between digits.
fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body, prefixed) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.to_string(), true)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.to_string(), true)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    if body.contains('_') {
        // Underscores only between digits (or right after a prefix).
        let bytes = body.as_bytes();
        let ok = !body.ends_with('_')
            && !body.contains("__")
            && (prefixed || !body.starts_with('_'))
            && bytes
                .iter()
                .all(|b| *b == b'_' || (*b as char).is_digit(radix));
        if !ok {
            return None;
        }
    }
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() {
        return None; // "0x", "-", ""
    }
    let magnitude = u64::from_str_radix(&clean, radix).ok()?;
    if negative {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((-(magnitude as i128)) as i64)
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go `time.ParseDuration`, in nanoseconds.
fn parse_go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let ns = total as i128;
    Some(if negative { -ns } else { ns })
}

/// A side of `<`/`>` as a number: a duration in ms, an integer, a float cut
/// to an integer, or 0.
fn to_i64(s: &str) -> i64 {
    if let Some(ns) = parse_go_duration(s) {
        if ns != 0 {
            return (ns / 1_000_000) as i64;
        }
    }
    if let Some(i) = parse_go_int(s) {
        return i;
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64 {
            return f.trunc() as i64;
        }
        return i64::MIN;
    }
    0
}

/// Gatus's display of a duration, its quirk included: it strips the
/// characters "0s" and then "0m" from Go's `Duration.String()`, so 1h30m
/// shows as "1h3".
fn format_duration_ms(ms: i64) -> String {
    let secs = ms / 1000;
    if secs == 0 {
        return "0s".into();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let abs = secs.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs % 3600) / 60, abs % 60);
    let mut text = if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    };
    if let Some(stripped) = text.strip_suffix("0s") {
        text = stripped.to_string();
        if let Some(stripped) = text.strip_suffix("0m") {
            text = stripped.to_string();
        }
    }
    text
}

/// Gatus `pattern.Match`: `*` alone matches anything; else `/` is removed
/// from both sides and Go's `filepath.Match` decides, anchored and
/// case-sensitive. A malformed pattern matches nothing.
fn pattern_match(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<char> = pattern.chars().filter(|c| *c != '/').collect();
    let t: Vec<char> = s.chars().filter(|c| *c != '/').collect();
    glob(&p, &t).unwrap_or(false)
}

/// Glob with `*`, `?`, `[...]` (ranges, `^` negation) and `\` escapes.
/// `None` for a malformed pattern (Go's Match never matches one: the
/// pattern must be read to its end to match the whole text).
///
/// Iterative, backtracking only to the latest `*`: O(pattern × text) at
/// worst, so `pat(*a*b*)` against a 64 KiB body stays cheap.
fn glob(p: &[char], t: &[char]) -> Option<bool> {
    check_rest_valid(p)?;
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => {
                let (matched, len) = class(&p[pi + 1..], Some(t[ti]))?;
                matched.then_some(1 + len)
            }
            Some('\\') => (p.get(pi + 1) == Some(&t[ti])).then_some(2),
            Some(c) => (*c == t[ti]).then_some(1),
            None => None,
        };
        match step {
            Some(n) => {
                pi += n;
                ti += 1;
            }
            None => match star {
                // Let the latest star take one more character and retry.
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return Some(false),
            },
        }
    }
    Some(p[pi..].iter().all(|c| *c == '*'))
}

/// Go's Match reports a malformed pattern even after a mismatch.
fn check_rest_valid(p: &[char]) -> Option<()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                p.get(i + 1)?;
                i += 2;
            }
            '[' => {
                let (_, len) = class(&p[i + 1..], None)?;
                i += 1 + len;
            }
            _ => i += 1,
        }
    }
    Some(())
}

/// Reads a character class after `[`; returns whether `c` is in it and how
/// many pattern characters the class took (including `]`).
fn class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            if ch == '-' {
                return None;
            }
            ch
        };
        i += 1;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            let h = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
            if h < lo {
                return None;
            }
            h
        } else {
            lo
        };
        if let Some(c) = c {
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
    Some((matched != negated, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        id: String,
        condition: String,
        success: Option<bool>,
        rendered: Option<String>,
        #[serde(default)]
        status: u16,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        response_time_ms: i64,
        #[serde(default)]
        ip: String,
        #[serde(default)]
        connected: bool,
        #[serde(default)]
        cert_expiration_ms: i64,
        #[serde(default)]
        domain_expiration_ms: i64,
        #[serde(default)]
        dns_rcode: String,
        #[serde(default)]
        resolve_successful: bool,
        #[serde(default)]
        dont_resolve_failed: bool,
    }

    /// Every case of docs/research/gatus-conditions.md §7: Gatus's own test
    /// table, and outputs of Gatus's code for further edge cases.
    #[test]
    fn results_match_gatus_for_every_recorded_case() {
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("../../tests/data/gatus_conditions.json"))
                .expect("cases");
        assert!(cases.len() >= 60);
        let mut failures = Vec::new();
        for case in &cases {
            let body = case.body.clone().unwrap_or_default();
            let observed = Observed {
                status: case.status,
                body: body.as_bytes(),
                response_time_ms: case.response_time_ms,
                ip: &case.ip,
                connected: case.connected,
                certificate_expiration_ms: case.cert_expiration_ms,
                domain_expiration_ms: case.domain_expiration_ms,
                dns_rcode: &case.dns_rcode,
            };
            let condition = match Condition::parse(&case.condition) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!(
                        "{}: {:?} does not parse: {e}",
                        case.id, case.condition
                    ));
                    continue;
                }
            };
            let outcome = condition.evaluate_with(
                &observed,
                case.resolve_successful,
                case.dont_resolve_failed,
            );
            match (&case.success, &case.rendered) {
                (Some(success), Some(rendered)) => {
                    if outcome.success != *success || &outcome.text != rendered {
                        failures.push(format!(
                            "{}: {:?} gave ({}, {:?}), Gatus gives ({success}, {rendered:?})",
                            case.id, case.condition, outcome.success, outcome.text
                        ));
                    }
                }
                // Gatus panics here; beacon treats the operand as INVALID.
                _ => {
                    let op_eq = case.condition.contains(" == ");
                    if outcome.success == op_eq || !outcome.text.contains("(INVALID)") {
                        failures.push(format!(
                            "{}: {:?} should be INVALID, got {:?}",
                            case.id, case.condition, outcome
                        ));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases differ:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn a_condition_without_an_operator_is_refused() {
        for text in [
            "[STATUS]==200",
            "[STATUS] = = 201",
            "[STATUS] ==",
            "[STATUS]",
            "[STATUS] ? 201",
        ] {
            let err = Condition::parse(text).expect_err(text);
            assert!(err.contains("has no operator"), "{err}");
        }
    }

    #[test]
    fn globs_match_like_go_and_stay_linear() {
        for (pattern, text, expected) in [
            ("john*", "john.doe", true),
            ("*doe", "john.doe", true),
            ("j?hn*", "john", true),
            ("[a-c]at", "bat", true),
            ("[^a-c]at", "bat", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("[", "[", false),
            ("a[", "a", false),
        ] {
            assert_eq!(pattern_match(pattern, text), expected, "{pattern} ~ {text}");
        }
        // Exponential backtracking would never finish this one.
        assert!(!pattern_match("*a*a*a*b", &"a".repeat(65_536)));
    }

    #[test]
    fn go_float_formatting() {
        for (f, v) in [
            (1_000_000.0, "1e+06"),
            (123_456.0, "123456"),
            (1.5, "1.5"),
            (0.00001, "1e-05"),
            (0.0001, "0.0001"),
            (1_234_567.0, "1.234567e+06"),
        ] {
            assert_eq!(go_float(f, 6), v);
        }
        assert_eq!(go_float(1e20, 21), "100000000000000000000");
        assert_eq!(go_float(1e21, 21), "1e+21");
    }

    #[test]
    fn durations_display_with_gatus_quirk() {
        assert_eq!(format_duration_ms(86_400_000), "24h");
        assert_eq!(format_duration_ms(5_400_000), "1h3");
        assert_eq!(format_duration_ms(30_000), "3");
        assert_eq!(format_duration_ms(500), "0s");
        assert_eq!(format_duration_ms(-86_400_000), "-24h");
    }
}
