//! `[subscriptions]`: visitors subscribing to the page by email.

/// Present when `[subscriptions] enabled = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionsConfig {
    /// The sender of subscribers' email: `Status <status@example.com>`.
    pub from: String,
    /// The `[[notify]]` email channel whose SMTP server sends them.
    pub channel: String,
    /// Sign-ups one client address may make per hour (the next is 429).
    pub client_limit: u32,
    /// Confirmation emails one address may be sent per day (the next
    /// sign-up is answered the same, and sends nothing).
    pub address_limit: u32,
}

impl SubscriptionsConfig {
    pub const DEFAULT_CLIENT_LIMIT: u32 = 5;
    pub const DEFAULT_ADDRESS_LIMIT: u32 = 3;
}
