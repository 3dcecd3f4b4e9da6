//! `[admin]` and `[metrics]`: the bearer tokens that open the admin API and
//! `/metrics`.

use super::fields::bearer_token;
use super::problems::Problems;
use crate::config::raw::{RawAdmin, RawMetrics};
use crate::config::{AdminConfig, MetricsConfig};

pub fn admin(raw: &RawAdmin, problems: &mut Problems) -> AdminConfig {
    let mut admin = AdminConfig::default();
    for (i, token) in raw.tokens.iter().flatten().enumerate() {
        let place = format!("admin: tokens[{}]", i + 1);
        admin.tokens.extend(bearer_token(&place, token, problems));
    }
    admin
}

pub fn metrics(raw: &RawMetrics, problems: &mut Problems) -> MetricsConfig {
    MetricsConfig {
        enabled: raw.enabled.unwrap_or(true),
        per_service: raw.per_service.unwrap_or(true),
        token: raw
            .token
            .as_deref()
            .and_then(|token| bearer_token("metrics: token", token, problems)),
    }
}
