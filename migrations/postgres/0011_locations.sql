-- Probing from several locations (issue 20). Each location's own result
-- per probe, for a service checked from more than one place: the service
-- page shows what each location sees. check_results keeps the decided
-- outcome (what the quorum says), which history and uptime count.
-- The primary key makes a result an agent sends twice (a batch resent
-- after a lost answer, a buffer replayed) one row.
CREATE TABLE location_results (
    service_id  BIGINT   NOT NULL REFERENCES services(id),
    location    TEXT     NOT NULL,
    checked_at  BIGINT   NOT NULL,
    state       SMALLINT NOT NULL,           -- 1 up, 2 degraded, 3 down
    latency_ms  INTEGER,
    status_code SMALLINT,
    reason      TEXT,
    PRIMARY KEY (service_id, location, checked_at)
);
-- The snapshot reads the last hour of every service's rows.
CREATE INDEX location_results_by_time ON location_results (checked_at);
