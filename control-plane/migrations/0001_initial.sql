-- Portable SQL: runs unchanged on SQLite and PostgreSQL (types TEXT/BIGINT only).
CREATE TABLE assets (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    status     TEXT NOT NULL,
    progress   BIGINT NOT NULL DEFAULT 0,
    error      TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE gate_rules (
    asset_id    TEXT NOT NULL,
    position    BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    chain_id    BIGINT NOT NULL,
    contract    TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    min_balance TEXT NOT NULL,
    PRIMARY KEY (asset_id, position)
);
CREATE TABLE challenges (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    address    TEXT NOT NULL,
    chain_id   BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    address    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE TABLE revocations (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX challenges_expiry ON challenges (expires_at);
CREATE INDEX sessions_expiry ON sessions (expires_at);
