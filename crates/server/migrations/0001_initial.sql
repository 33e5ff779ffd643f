-- Warden's store: API key hashes, execution records and the audit log.
-- Portable SQL (SQLite and PostgreSQL): times are RFC 3339 text or unix seconds.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,        -- public id, part of the key (wdn_<id>_<secret>)
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL,           -- hex SHA-256 of the whole key; the key itself is never stored
    scopes      TEXT NOT NULL,           -- space-separated: execute fetch admin
    created_at  BIGINT NOT NULL,         -- unix seconds
    expires_at  BIGINT,                  -- unix seconds, NULL = never
    revoked_at  BIGINT                   -- unix seconds, NULL = active
);

CREATE TABLE executions (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    language    TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    created_at  TEXT NOT NULL,           -- RFC 3339
    outcome     TEXT NOT NULL,           -- ok | nonzero_exit | timeout | oom | signal | error
    record      TEXT NOT NULL            -- JSON: the Outcome and the limits applied
);
CREATE INDEX executions_by_principal ON executions (principal);

CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,      -- 1, 2, 3, … without gaps
    time        TEXT NOT NULL,           -- RFC 3339, UTC
    request_id  TEXT,
    principal   TEXT,
    client      TEXT,
    action      TEXT NOT NULL,
    decision    TEXT NOT NULL,           -- allow | deny | error
    reason      TEXT,
    details     TEXT NOT NULL,           -- JSON object, stored as hashed
    prev_hash   TEXT NOT NULL,           -- hash of event seq-1 (64 zeros for the first)
    hash        TEXT NOT NULL            -- hex SHA-256(prev_hash || "\n" || canonical JSON of this event)
);

CREATE TABLE readiness (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  TEXT NOT NULL
);
