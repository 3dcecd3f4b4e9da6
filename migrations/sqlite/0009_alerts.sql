-- Alerts. An event is written in the same transaction as what causes it (a
-- state change, an incident write, a failed backup, a certificate close to
-- expiry), so it is never lost and never written twice. The notifier routes
-- each event once to the channels that want it, one delivery per channel,
-- and retries deliveries with backoff until sent or given up.
CREATE TABLE alert_events (
    id          INTEGER PRIMARY KEY,
    -- service_down | service_degraded | service_recovered | incident_opened |
    -- incident_updated | incident_resolved | backup_failed |
    -- backup_verification_failed | certificate_expiring
    kind        TEXT    NOT NULL,
    service_id  INTEGER REFERENCES services(id),
    -- Events that could be seen twice (one certificate, one failed backup)
    -- carry a key; the unique index makes the second a no-op.
    dedupe_key  TEXT    UNIQUE,
    payload     TEXT    NOT NULL,            -- JSON: the facts as of the event
    created_at  INTEGER NOT NULL,
    routed      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_events_unrouted ON alert_events (routed, id);
CREATE INDEX alert_events_by_time ON alert_events (created_at);

CREATE TABLE alert_deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL REFERENCES alert_events(id) ON DELETE CASCADE,
    channel         TEXT    NOT NULL,        -- [[notify]] name
    -- The event as this channel sees it: a service back under the
    -- channel's min_state is service_recovered for it.
    kind            TEXT    NOT NULL,
    status          TEXT    NOT NULL,        -- pending | sent | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- Pending: when it may be tried next. A sender claims a delivery by
    -- moving this forward (a lease), so two replicas never send one twice.
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    UNIQUE (event_id, channel)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
