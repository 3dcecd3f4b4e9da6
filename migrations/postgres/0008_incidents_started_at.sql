-- The incident history pages read incidents by start time, a month at a time.
CREATE INDEX incidents_started_at ON incidents (started_at);
