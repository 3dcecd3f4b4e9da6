-- Scheduled maintenance windows. During one, the affected services show
-- "under maintenance", raise no automatic incident, and their probes count
-- as maintenance (left out of uptime). check_results.state 4 marks a
-- result taken during maintenance.
CREATE TABLE maintenances (
    id         INTEGER PRIMARY KEY,
    title      TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX maintenances_by_time ON maintenances (ends_at, starts_at);

CREATE TABLE maintenance_services (
    maintenance_id INTEGER NOT NULL REFERENCES maintenances(id) ON DELETE CASCADE,
    service_id     INTEGER NOT NULL REFERENCES services(id),
    PRIMARY KEY (maintenance_id, service_id)
);
