-- The shared transcode queue (scale-out): claimed with FOR UPDATE SKIP
-- LOCKED on PostgreSQL, leased with a heartbeat. Times in milliseconds.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    asset_id        TEXT NOT NULL,
    source_key      TEXT NOT NULL,
    ladder          TEXT NOT NULL,
    segment_seconds BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    runner          TEXT NOT NULL DEFAULT '',
    lease_until     BIGINT NOT NULL DEFAULT 0,
    error           TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX jobs_claim ON jobs (state, created_at);
