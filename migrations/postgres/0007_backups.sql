-- The catalogue of backup runs and their verification outcome. The
-- archives and manifests themselves live in the backup target; this table
-- says what this beacon did with them (shown by `beacon backup list` and
-- /health, used by rotation: only verified backups count).
CREATE TABLE backups (
    id           TEXT    PRIMARY KEY,
    created_at   BIGINT  NOT NULL,
    target       TEXT    NOT NULL,
    archive_key  TEXT    NOT NULL,
    size_bytes   BIGINT,
    sha256       TEXT,
    -- running · uploaded · verified · failed · deleted
    status       TEXT    NOT NULL,
    failed_step  TEXT,
    error        TEXT,
    verified_at  BIGINT,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX backups_by_time ON backups (created_at);
