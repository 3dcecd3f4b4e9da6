-- Subscriptions (issue 19): the public told by email, webhook or Slack;
-- and the sessions of the incident console.

-- One subscriber: an email address (self-serve, double opt-in) or a
-- webhook / Slack URL (added by an operator). Nothing is sent to an email
-- address until confirmed_at is set.
CREATE TABLE subscribers (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,           -- email | webhook | slack
    address      TEXT    NOT NULL,           -- lower-cased email, or the URL
    -- JSON array of service slugs and group names followed; NULL: all.
    components   TEXT,
    -- A webhook's HMAC secret (X-Beacon-Signature-256), if it has one.
    secret       TEXT,
    -- Random; part of the manage and unsubscribe links' MAC, so a new
    -- nonce voids every link sent before.
    nonce        TEXT    NOT NULL,
    confirmed_at INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (kind, address)
);

-- Confirmation links: the token is sent, only its SHA-256 is kept; the
-- components asked for apply when it is followed (so a stranger signing up
-- a known address changes nothing).
CREATE TABLE subscriber_tokens (
    token_hash    TEXT    PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    components    TEXT
);
CREATE INDEX subscriber_tokens_by_subscriber ON subscriber_tokens (subscriber_id, created_at);

-- One message per event per subscriber: the alert outbox's second kind
-- of delivery, claimed and retried exactly as alert_deliveries.
CREATE TABLE subscriber_deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL REFERENCES alert_events(id) ON DELETE CASCADE,
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    status          TEXT    NOT NULL,        -- pending | sent | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    UNIQUE (event_id, subscriber_id)
);
CREATE INDEX subscriber_deliveries_due ON subscriber_deliveries (status, next_attempt_at);
CREATE INDEX subscriber_deliveries_by_subscriber ON subscriber_deliveries (subscriber_id);

-- Incident console sessions: the cookie holds a random id, only its
-- SHA-256 is kept; csrf is the token its forms carry.
CREATE TABLE admin_sessions (
    id_hash    TEXT    PRIMARY KEY,
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Keys beacon makes for itself once (the MAC key of subscribers' links),
-- shared by replicas and kept by backups, so links in old emails work.
CREATE TABLE beacon_keys (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
