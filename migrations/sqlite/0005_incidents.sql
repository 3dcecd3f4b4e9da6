-- Incidents: opened automatically when a service goes down (automatic = 1)
-- or by hand through the admin API and CLI. Times are epoch ms.
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY,
    title       TEXT    NOT NULL,
    impact      TEXT    NOT NULL,            -- none | minor | major | critical
    status      TEXT    NOT NULL,            -- investigating | identified | monitoring | resolved
    automatic   INTEGER NOT NULL DEFAULT 0,
    postmortem  TEXT,
    started_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    resolved_at INTEGER
);

-- The public timeline. Messages are written for people: never raw errors.
CREATE TABLE incident_updates (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    status      TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX incident_updates_by_incident ON incident_updates (incident_id, created_at);

CREATE TABLE incident_services (
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    service_id  INTEGER NOT NULL REFERENCES services(id),
    PRIMARY KEY (incident_id, service_id)
);
CREATE INDEX incident_services_by_service ON incident_services (service_id);
