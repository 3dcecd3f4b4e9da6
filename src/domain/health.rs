//! What a service says about its health, as beacon keeps it: the document's
//! verdict, its dependencies, and the formats it may be written in. Reading
//! a body into these is `health::parse`'s job; these are only the words.

use serde_json::Value;

/// The `format` option of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Auto,
    HealthJson,
    Actuator,
    Simple,
    Kubernetes,
    /// Judge by status code only; the body is not read for health.
    None,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &[
        "auto",
        "health+json",
        "actuator",
        "simple",
        "kubernetes",
        "none",
    ];

    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "auto" => Format::Auto,
            "health+json" | "ietf" => Format::HealthJson,
            "actuator" | "spring" => Format::Actuator,
            "simple" => Format::Simple,
            "kubernetes" | "k8s" => Format::Kubernetes,
            "none" => Format::None,
            _ => return None,
        })
    }
}

/// Health as a document states it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Pass,
    Warn,
    Fail,
}

impl Health {
    pub const ALL: [Health; 3] = [Health::Pass, Health::Warn, Health::Fail];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Pass => "pass",
            Health::Warn => "warn",
            Health::Fail => "fail",
        }
    }

    /// The status words services use, case-insensitively.
    pub fn from_word(word: &str) -> Option<Health> {
        let w = word.trim().to_ascii_lowercase();
        Some(match w.as_str() {
            "pass" | "ok" | "up" | "healthy" | "green" | "true" | "operational" | "available"
            | "success" | "passed" | "alive" | "ready" => Health::Pass,
            "warn" | "warning" | "degraded" | "yellow" | "unknown" => Health::Warn,
            "fail" | "failed" | "failure" | "error" | "down" | "unhealthy" | "red" | "false"
            | "critical" | "out_of_service" | "unavailable" | "not_ready" => Health::Fail,
            _ => return None,
        })
    }

    /// A status as a JSON value: a bool, a word, or an object with one.
    pub fn from_value(value: &Value) -> Option<Health> {
        match value {
            Value::Bool(true) => Some(Health::Pass),
            Value::Bool(false) => Some(Health::Fail),
            Value::String(s) => Health::from_word(s),
            Value::Object(o) => o
                .get("status")
                .or_else(|| o.get("healthy"))
                .or_else(|| o.get("state"))
                .and_then(Health::from_value),
            _ => None,
        }
    }
}

/// One dependency a health document reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dependency {
    pub name: String,
    pub health: Health,
    /// Free text from the document (internal: admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// e.g. "12 ms", "83 %".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

/// At most this many reported dependencies are kept from one document.
/// They reach the page, the public JSON and `/metrics` at every probe: a
/// document listing thousands (4,000 checks fit in 52 KB) would grow each
/// of them a hundredfold. When a document reports more, the worst are kept,
/// so a failing dependency is never the one cut.
pub const MAX_DEPENDENCIES: usize = 50;

/// What a health document says.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthDoc {
    pub format: Format,
    pub health: Health,
    /// At most [`MAX_DEPENDENCIES`], in the document's order.
    pub dependencies: Vec<Dependency>,
    /// How many more the document reported (none worse than those kept).
    pub omitted: usize,
}

impl HealthDoc {
    /// The document's own status, lowered to `warn` when it says `pass`
    /// while a dependency it reports is not passing.
    pub fn effective(&self) -> Health {
        let worst_dep = self.dependencies.iter().map(|d| d.health).max();
        match (self.health, worst_dep) {
            (Health::Pass, Some(Health::Warn | Health::Fail)) => Health::Warn,
            (h, _) => h,
        }
    }
}
