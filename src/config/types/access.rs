//! `[admin]` and `[metrics]`: bearer tokens, which never print.

use std::fmt;

/// `[admin]`: bearer tokens of the admin API, from `${VAR}`s.
#[derive(Clone, Default)]
pub struct AdminConfig {
    pub tokens: Vec<String>,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdminConfig {{ tokens: {} hidden }}", self.tokens.len())
    }
}

/// `[metrics]`: `/metrics` on or off, and the bearer token it asks for.
#[derive(Clone)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// `None`: open to whoever reaches the port (keep it off the public
    /// internet then, or set one from `${VAR}`).
    pub token: Option<String>,
    /// Series per service (probes, their durations, states, dependencies,
    /// certificates). Off: the probe counters and durations are summed
    /// under `service=""` and the per-service gauges are left out, for
    /// fleets whose per-service series would cost more than they tell
    /// (about 1.2 KB of memory and 20 lines a scrape per service).
    pub per_service: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            token: None,
            per_service: true,
        }
    }
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MetricsConfig {{ enabled: {}, token: {} }}",
            self.enabled,
            if self.token.is_some() {
                "hidden"
            } else {
                "none"
            }
        )
    }
}
