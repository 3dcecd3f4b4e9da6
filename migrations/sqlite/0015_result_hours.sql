-- Raw results packed one row per service and UTC hour (issue 18, item 5).
-- A check_results row costs 21 bytes here and 92 on PostgreSQL; packed, a
-- closed hour of a service's results is one row whose `data` holds them in
-- about 7 bytes each (src/store/packed.rs). The monitor still writes
-- check_results; the hourly retention pass moves hours that closed over
-- an hour ago here. Readers of raw results read both tables.
CREATE TABLE check_result_hours (
    service_id  INTEGER NOT NULL REFERENCES services(id),
    -- The UTC hour the results fall in (epoch ms, a multiple of 3,600,000).
    hour_start  INTEGER NOT NULL,
    -- How many results `data` holds.
    results     INTEGER NOT NULL,
    data        BLOB    NOT NULL,
    PRIMARY KEY (service_id, hour_start)
) WITHOUT ROWID;
