-- Raw results packed one row per service and UTC hour (issue 18, item 5).
-- A check_results row costs 92 bytes on PostgreSQL (a 24-byte tuple header
-- and alignment per row, and a primary-key entry each); packed, a closed
-- hour of a service's results is one row whose `data` holds them in about
-- 7 bytes each (src/store/packed.rs). The monitor still writes
-- check_results; the leader's hourly retention pass moves hours that
-- closed over an hour ago here. Readers of raw results read both tables.
-- A replica of the previous release reads check_results only: during a
-- rolling upgrade it sees the last hour or two of raw results, which is
-- all it reads them for (its thresholds' resume point).
CREATE TABLE check_result_hours (
    service_id  BIGINT  NOT NULL REFERENCES services(id),
    -- The UTC hour the results fall in (epoch ms, a multiple of 3,600,000).
    hour_start  BIGINT  NOT NULL,
    -- How many results `data` holds.
    results     INTEGER NOT NULL,
    data        BYTEA   NOT NULL,
    PRIMARY KEY (service_id, hour_start)
);
