//! Subscribers: the public told by email (self-serve, double opt-in) and
//! the webhooks and Slack channels an operator adds; their confirmation
//! tokens (kept only as SHA-256), their deliveries (the outbox's second
//! kind, claimed and retried as `alerts` does), and the incident console's
//! sessions.
//!
//! Nothing here is sent: `notify::subscribers` does that.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::{Event, EventKind};

/// email · webhook · slack
pub const SUBSCRIBER_KINDS: [&str; 3] = ["email", "webhook", "slack"];

/// One subscriber as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscriber {
    pub id: i64,
    /// email · webhook · slack
    pub kind: String,
    /// The lower-cased address, or the URL.
    pub address: String,
    /// Service slugs and group names followed; `None`: everything.
    pub components: Option<Vec<String>>,
    /// A webhook's HMAC secret.
    pub secret: Option<String>,
    /// Part of the manage link's MAC.
    pub nonce: String,
    pub confirmed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A confirmation token as stored (its hash, never the token).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// One message for one subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberDelivery {
    pub id: i64,
    pub event_id: i64,
    pub kind: EventKind,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
    pub subscriber: Subscriber,
    pub event: Event,
}

/// A self-serve sign-up, checked.
#[derive(Debug, Clone, Copy)]
pub struct EmailSignUp<'a> {
    /// Lower-cased and checked.
    pub address: &'a str,
    pub components: Option<&'a [String]>,
    /// The SHA-256 of the confirmation token sent.
    pub token_hash: &'a str,
    /// The nonce of a new subscriber's manage links.
    pub nonce: &'a str,
    pub now: i64,
    pub expires_at: i64,
    /// Confirmation links one address may be sent per day.
    pub max_per_day: i64,
}

/// What a sign-up did.
#[derive(Debug, Clone, PartialEq)]
pub enum SignUp {
    /// A confirmation link may be sent to `subscriber`.
    Send { subscriber: i64 },
    /// The address had its share of links for the day: nothing is sent
    /// (the visitor is told the same as for `Send`).
    Limited,
}

const SUBSCRIBER_COLUMNS: &str =
    "id, kind, address, components, secret, nonce, confirmed_at, created_at, updated_at";

macro_rules! subscriber_from_row {
    ($r:expr, $prefix:literal) => {{
        let components: Option<String> = $r.try_get(concat!($prefix, "components"))?;
        Subscriber {
            id: $r.try_get(concat!($prefix, "id"))?,
            kind: $r.try_get(concat!($prefix, "kind"))?,
            address: $r.try_get(concat!($prefix, "address"))?,
            components: components.and_then(|c| serde_json::from_str(&c).ok()),
            secret: $r.try_get(concat!($prefix, "secret"))?,
            nonce: $r.try_get(concat!($prefix, "nonce"))?,
            confirmed_at: $r.try_get(concat!($prefix, "confirmed_at"))?,
            created_at: $r.try_get(concat!($prefix, "created_at"))?,
            updated_at: $r.try_get(concat!($prefix, "updated_at"))?,
        }
    }};
}

fn components_json(components: Option<&[String]>) -> Option<String> {
    components.map(|c| serde_json::to_string(c).unwrap_or_else(|_| "[]".into()))
}

impl Store {
    /// A self-serve sign-up of `address` (lower-cased, checked): a new
    /// address is stored unconfirmed; a known one is left as it is. Either
    /// way a token (`token_hash`, valid until `expires_at`, carrying the
    /// `components` asked for) is stored, unless the address already had
    /// `max_per_day` links in the last day. One transaction.
    pub async fn sign_up_email(&self, sign_up: &EmailSignUp<'_>) -> Result<SignUp, StoreError> {
        let EmailSignUp {
            address,
            components,
            token_hash,
            nonce,
            now,
            expires_at,
            max_per_day,
        } = *sign_up;
        let components = components_json(components);
        let outcome = on_pool!(self, pool, _Db => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO subscribers (kind, address, components, nonce, created_at, updated_at) \
                 VALUES ('email', $1, $2, $3, $4, $4) ON CONFLICT (kind, address) DO NOTHING",
            )
            .bind(address)
            .bind(&components)
            .bind(nonce)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let id: i64 = sqlx::query_scalar("SELECT id FROM subscribers WHERE kind = 'email' AND address = $1")
                .bind(address)
                .fetch_one(&mut *tx)
                .await?;
            let recent: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM subscriber_tokens WHERE subscriber_id = $1 AND created_at > $2",
            )
            .bind(id)
            .bind(now - 86_400_000)
            .fetch_one(&mut *tx)
            .await?;
            if recent >= max_per_day {
                tx.commit().await?;
                SignUp::Limited
            } else {
                sqlx::query(
                    "INSERT INTO subscriber_tokens (token_hash, subscriber_id, created_at, expires_at, components) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(id)
                .bind(now)
                .bind(expires_at)
                .bind(&components)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                SignUp::Send { subscriber: id }
            }
        });
        Ok(outcome)
    }

    /// Follows a confirmation link: the token (by its hash) must be unused
    /// and unexpired; it is used up, its subscriber confirmed (if not yet)
    /// and given the components the token carries. `None`: no such live
    /// token. The bool: whether this confirmed a new subscriber.
    pub async fn confirm_subscriber(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(Subscriber, bool)>, StoreError> {
        let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1");
        let found = on_pool!(self, pool, _Db => {
            let mut tx = pool.begin().await?;
            let token = sqlx::query(
                "UPDATE subscriber_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
                 AND expires_at > $1 RETURNING subscriber_id, components",
            )
            .bind(now)
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match token {
                None => None,
                Some(token) => {
                    let id: i64 = token.try_get("subscriber_id")?;
                    let components: Option<String> = token.try_get("components")?;
                    let newly = sqlx::query(
                        "UPDATE subscribers SET confirmed_at = $1, updated_at = $1 WHERE id = $2 AND confirmed_at IS NULL",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    sqlx::query("UPDATE subscribers SET components = $1, updated_at = $2 WHERE id = $3")
                        .bind(&components)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let row = sqlx::query(&sql).bind(id).fetch_one(&mut *tx).await?;
                    let subscriber = subscriber_from_row!(row, "");
                    tx.commit().await?;
                    Some((subscriber, newly))
                }
            }
        });
        Ok(found)
    }

    /// An operator's subscriber (a webhook, a Slack URL, or an email
    /// address the operator vouches for: confirmed at once). A second one
    /// of the same kind and address is refused, naming `address`.
    pub async fn add_subscriber(
        &self,
        kind: &str,
        address: &str,
        components: Option<&[String]>,
        secret: Option<&str>,
        nonce: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let components = components_json(components);
        let id: Option<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(
                "INSERT INTO subscribers (kind, address, components, secret, nonce, confirmed_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $6) ON CONFLICT (kind, address) DO NOTHING RETURNING id",
            )
            .bind(kind)
            .bind(address)
            .bind(&components)
            .bind(secret)
            .bind(nonce)
            .bind(now)
            .fetch_optional(pool)
            .await?
        });
        id.ok_or_else(|| StoreError::Invalid {
            field: "address",
            message: format!("a {kind} subscriber with this address exists already"),
        })
    }

    pub async fn subscriber(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1");
        let found = on_pool!(self, pool, _Db => {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(row) => Some(subscriber_from_row!(row, "")),
                None => None,
            }
        });
        Ok(found)
    }

    /// A subscriber by kind and address (`beacon subscribers remove`).
    pub async fn subscriber_by_address(
        &self,
        kind: &str,
        address: &str,
    ) -> Result<Option<Subscriber>, StoreError> {
        let sql = format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE kind = $1 AND address = $2"
        );
        let found = on_pool!(self, pool, _Db => {
            match sqlx::query(&sql).bind(kind).bind(address).fetch_optional(pool).await? {
                Some(row) => Some(subscriber_from_row!(row, "")),
                None => None,
            }
        });
        Ok(found)
    }

    /// Every subscriber, oldest first.
    pub async fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        let sql = format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers ORDER BY id");
        self.subscribers_where(&sql).await
    }

    /// Those that may be sent to: confirmed (every webhook and Slack one is).
    pub async fn confirmed_subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        let sql = format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE confirmed_at IS NOT NULL ORDER BY id"
        );
        self.subscribers_where(&sql).await
    }

    async fn subscribers_where(&self, sql: &str) -> Result<Vec<Subscriber>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            let mut out = Vec::new();
            for row in sqlx::query(sql).fetch_all(pool).await? {
                out.push(subscriber_from_row!(row, ""));
            }
            out
        });
        Ok(rows)
    }

    /// Subscribers by kind and state, for `/metrics`.
    pub async fn subscriber_counts(&self) -> Result<Vec<(String, bool, i64)>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            sqlx::query(
                "SELECT kind, CASE WHEN confirmed_at IS NULL THEN 0 ELSE 1 END AS confirmed, COUNT(*) AS n \
                 FROM subscribers GROUP BY kind, CASE WHEN confirmed_at IS NULL THEN 0 ELSE 1 END ORDER BY kind",
            )
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<(String, bool, i64), sqlx::Error> {
                Ok((r.try_get("kind")?, int_column!(r, "confirmed") == 1, r.try_get("n")?))
            })
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// Sets what a subscriber follows (`None`: everything).
    pub async fn set_subscriber_components(
        &self,
        id: i64,
        components: Option<&[String]>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let components = components_json(components);
        let n = on_pool!(self, pool, _Db => {
            sqlx::query("UPDATE subscribers SET components = $1, updated_at = $2 WHERE id = $3")
                .bind(&components)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Deletes a subscriber and everything stored about it: its tokens
    /// and its deliveries, sent or not. `false`: no such subscriber.
    pub async fn remove_subscriber(&self, id: i64) -> Result<bool, StoreError> {
        let removed = on_pool!(self, pool, _Db => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM subscriber_deliveries WHERE subscriber_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM subscriber_tokens WHERE subscriber_id = $1").bind(id).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM subscribers WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n == 1
        });
        Ok(removed)
    }

    /// A subscriber's confirmation tokens (their hashes), oldest first.
    pub async fn subscriber_tokens(&self, id: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            sqlx::query(
                "SELECT token_hash, created_at, expires_at, used_at FROM subscriber_tokens \
                 WHERE subscriber_id = $1 ORDER BY created_at",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<TokenRecord, sqlx::Error> {
                Ok(TokenRecord {
                    token_hash: r.try_get("token_hash")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    used_at: r.try_get("used_at")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// A subscriber's deliveries, oldest first (export, tests).
    pub async fn deliveries_of_subscriber(
        &self,
        id: i64,
    ) -> Result<Vec<SubscriberDelivery>, StoreError> {
        self.subscriber_deliveries("WHERE d.subscriber_id = $1 ORDER BY d.id", id)
            .await
    }

    /// Every subscriber delivery, oldest first (tests, tools).
    pub async fn all_subscriber_deliveries(&self) -> Result<Vec<SubscriberDelivery>, StoreError> {
        self.subscriber_deliveries("WHERE d.id >= $1 ORDER BY d.id", 0)
            .await
    }

    async fn subscriber_deliveries(
        &self,
        filter: &str,
        a: i64,
    ) -> Result<Vec<SubscriberDelivery>, StoreError> {
        let sql = format!(
            "SELECT d.id, d.event_id, d.kind AS delivery_kind, d.status, d.attempts, d.last_error, d.sent_at, \
             e.payload, s.id AS s_id, s.kind AS s_kind, s.address AS s_address, s.components AS s_components, \
             s.secret AS s_secret, s.nonce AS s_nonce, s.confirmed_at AS s_confirmed_at, \
             s.created_at AS s_created_at, s.updated_at AS s_updated_at \
             FROM subscriber_deliveries d JOIN alert_events e ON e.id = d.event_id \
             JOIN subscribers s ON s.id = d.subscriber_id {filter}"
        );
        let rows = on_pool!(self, pool, _Db => {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(a).fetch_all(pool).await? {
                let payload: String = r.try_get("payload")?;
                let event_id: i64 = r.try_get("event_id")?;
                let kind: String = r.try_get("delivery_kind")?;
                out.push((
                    r.try_get::<i64, _>("id")?,
                    event_id,
                    kind,
                    r.try_get::<String, _>("status")?,
                    int_column!(r, "attempts"),
                    r.try_get::<Option<String>, _>("last_error")?,
                    r.try_get::<Option<i64>, _>("sent_at")?,
                    payload,
                    subscriber_from_row!(r, "s_"),
                ));
            }
            out
        });
        rows.into_iter()
            .map(
                |(
                    id,
                    event_id,
                    kind,
                    status,
                    attempts,
                    last_error,
                    sent_at,
                    payload,
                    subscriber,
                )| {
                    let event: Event =
                        serde_json::from_str(&payload).map_err(|e| StoreError::Invalid {
                            field: "alert_events.payload",
                            message: format!("event {event_id}: {e}"),
                        })?;
                    Ok(SubscriberDelivery {
                        id,
                        event_id,
                        kind: EventKind::parse(&kind).unwrap_or(event.kind),
                        status,
                        attempts,
                        last_error,
                        sent_at,
                        subscriber,
                        event,
                    })
                },
            )
            .collect()
    }

    /// Claims due subscriber deliveries for one attempt each, as
    /// [`Store::claim_due_alert_deliveries`] does alert ones.
    pub async fn claim_due_subscriber_deliveries(
        &self,
        now: i64,
        limit: i64,
        lease_until: i64,
    ) -> Result<Vec<SubscriberDelivery>, StoreError> {
        let ids = self
            .claim_due("subscriber_deliveries", now, limit, lease_until)
            .await?;
        let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(Vec::new());
        };
        let mut claimed = self
            .subscriber_deliveries(
                &format!("WHERE d.id >= $1 AND d.id <= {last} ORDER BY d.id"),
                *first,
            )
            .await?;
        claimed.retain(|d| ids.contains(&d.id));
        Ok(claimed)
    }

    /// Records how an attempt at a subscriber delivery ended.
    pub async fn finish_subscriber_delivery(
        &self,
        id: i64,
        outcome: &super::DeliveryOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        self.finish_delivery("subscriber_deliveries", id, outcome, now)
            .await
    }

    /// Pending subscriber deliveries (for `/metrics`).
    pub async fn pending_subscriber_deliveries(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool, _Db => {
            sqlx::query_scalar("SELECT COUNT(*) FROM subscriber_deliveries WHERE status = 'pending'")
                .fetch_one(pool)
                .await?
        }))
    }

    /// The key `name`, made of `fresh` the first time it is asked for;
    /// every replica gets the first one written.
    pub async fn key(&self, name: &str, fresh: &str, now: i64) -> Result<String, StoreError> {
        Ok(on_pool!(self, pool, _Db => {
            sqlx::query("INSERT INTO beacon_keys (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(fresh)
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT value FROM beacon_keys WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Opens a console session (its id's hash, its CSRF token); expired
    /// ones are swept on the way.
    pub async fn create_console_session(
        &self,
        id_hash: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool, _Db => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO admin_sessions (id_hash, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(id_hash)
                .bind(csrf)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The CSRF token of a live session, if the session is one.
    pub async fn console_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, pool, _Db => {
            sqlx::query_scalar("SELECT csrf FROM admin_sessions WHERE id_hash = $1 AND expires_at > $2")
                .bind(id_hash)
                .bind(now)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn end_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        on_pool!(self, pool, _Db => {
            sqlx::query("DELETE FROM admin_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
