-- beacon schema, SQLite dialect. Times are Unix epoch milliseconds (UTC) in
-- both dialects, so the same SQL text serves both and rows stay small.

CREATE TABLE services (
    id              INTEGER PRIMARY KEY,
    slug            TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    group_name      TEXT,
    description     TEXT,
    public          INTEGER NOT NULL DEFAULT 1,
    -- 0 once the service left the config: its history stays, the page hides it.
    active          INTEGER NOT NULL DEFAULT 1,
    position        INTEGER NOT NULL DEFAULT 0,
    -- unknown | up | degraded | down | maintenance (after thresholds)
    state           TEXT    NOT NULL DEFAULT 'unknown',
    state_since     INTEGER,
    last_checked_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- One row per probe. Kept small on purpose (no rowid, no secondary index):
-- the primary key serves per-service ranges and retention pruning alike.
-- state: 1 up, 2 degraded, 3 down (the probe's own outcome, before thresholds).
CREATE TABLE check_results (
    service_id  INTEGER NOT NULL REFERENCES services(id),
    checked_at  INTEGER NOT NULL,
    state       INTEGER NOT NULL,
    latency_ms  INTEGER,
    status_code INTEGER,
    reason      TEXT,
    PRIMARY KEY (service_id, checked_at)
) WITHOUT ROWID;

CREATE TABLE status_changes (
    id          INTEGER PRIMARY KEY,
    service_id  INTEGER NOT NULL REFERENCES services(id),
    changed_at  INTEGER NOT NULL,
    from_state  TEXT    NOT NULL,
    to_state    TEXT    NOT NULL,
    reason      TEXT
);
CREATE INDEX status_changes_by_service ON status_changes (service_id, changed_at);
