-- Per-service counts per hour (period 'h') and per UTC day (period 'd'),
-- maintained in the same transaction as the raw results they count, so
-- uptime and latency figures never scan check_results. Kept long after raw
-- results are pruned.
-- Latency histogram: h00..h15 count probes at or under
-- 5, 10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000 ms
-- and above (h15); enough for p50/p95/p99 on a status page.
CREATE TABLE rollups (
    service_id    BIGINT  NOT NULL REFERENCES services(id),
    period        TEXT    NOT NULL,
    bucket_start  BIGINT  NOT NULL,
    up            INTEGER NOT NULL DEFAULT 0,
    degraded      INTEGER NOT NULL DEFAULT 0,
    down          INTEGER NOT NULL DEFAULT 0,
    maintenance   INTEGER NOT NULL DEFAULT 0,
    latency_count INTEGER NOT NULL DEFAULT 0,
    latency_sum   BIGINT  NOT NULL DEFAULT 0,
    latency_max   INTEGER NOT NULL DEFAULT 0,
    h00 INTEGER NOT NULL DEFAULT 0, h01 INTEGER NOT NULL DEFAULT 0,
    h02 INTEGER NOT NULL DEFAULT 0, h03 INTEGER NOT NULL DEFAULT 0,
    h04 INTEGER NOT NULL DEFAULT 0, h05 INTEGER NOT NULL DEFAULT 0,
    h06 INTEGER NOT NULL DEFAULT 0, h07 INTEGER NOT NULL DEFAULT 0,
    h08 INTEGER NOT NULL DEFAULT 0, h09 INTEGER NOT NULL DEFAULT 0,
    h10 INTEGER NOT NULL DEFAULT 0, h11 INTEGER NOT NULL DEFAULT 0,
    h12 INTEGER NOT NULL DEFAULT 0, h13 INTEGER NOT NULL DEFAULT 0,
    h14 INTEGER NOT NULL DEFAULT 0, h15 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (service_id, period, bucket_start)
);
CREATE INDEX rollups_by_time ON rollups (period, bucket_start);
