-- Several replicas on one database (issue 16). Every time in these tables
-- is the database's clock, in epoch ms: replicas' clocks never decide.

-- Membership: each replica upserts its row every heartbeat; a row not seen
-- for a lease is a member gone.
CREATE TABLE cluster_members (
    id         TEXT   PRIMARY KEY,           -- <host>-<pid>-<random>, new at every start
    host       TEXT   NOT NULL,
    version    TEXT   NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);

-- Leadership: one row per lease ('leader'). The holder renews it before it
-- expires; anyone may take it once expired, and taking it increments the
-- epoch, the fencing token every singleton write carries.
CREATE TABLE cluster_leases (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- One run of a singleton job per tick (a backup schedule's tick, a
-- retention hour), claimed under the lease: the primary key refuses a
-- second run of the same tick whoever tries.
CREATE TABLE cluster_runs (
    job        TEXT   NOT NULL,
    tick       INTEGER NOT NULL,
    holder     TEXT   NOT NULL,
    epoch      INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY (job, tick)
);

-- A counter every write that changes the page increments, last in its
-- transaction: replicas poll it each second and rebuild their snapshot
-- when it moved (a write through any replica, or the CLI).
CREATE TABLE store_changes (
    id      INTEGER PRIMARY KEY,
    counter INTEGER NOT NULL
);
INSERT INTO store_changes (id, counter) VALUES (1, 0);

-- One open automatic incident per service, by constraint: the service an
-- automatic incident is about, and a partial unique index over the open
-- ones. The insert that loses a race does nothing.
-- No REFERENCES here: SQLite cannot drop a column a foreign key names.
ALTER TABLE incidents ADD COLUMN auto_service_id INTEGER;
UPDATE incidents SET auto_service_id = (
    SELECT min(s.service_id) FROM incident_services s WHERE s.incident_id = incidents.id
) WHERE automatic = 1;
-- Duplicates from before this migration (two replicas racing): all but the
-- newest open one of a service are resolved.
UPDATE incidents SET status = 'resolved', resolved_at = updated_at
WHERE automatic = 1 AND resolved_at IS NULL AND auto_service_id IS NOT NULL
  AND id < (SELECT max(o.id) FROM incidents o
            WHERE o.automatic = 1 AND o.resolved_at IS NULL AND o.auto_service_id = incidents.auto_service_id);
CREATE UNIQUE INDEX incidents_one_open_automatic ON incidents (auto_service_id)
    WHERE resolved_at IS NULL;
