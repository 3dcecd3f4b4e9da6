-- Cost that follows change (issue 16; see the PostgreSQL migration of the
-- same number). SQLite has no sequences: a write takes the highest
-- revision plus one (one process writes, under SQLite's write lock), which
-- the index below makes a lookup rather than a scan.
CREATE INDEX services_revision ON services (revision);
