-- flowgram storage schema, SQLite.
-- Applied by engine.storage.sqlite inside one BEGIN IMMEDIATE transaction;
-- schema_migrations itself is created by the migrator, not here.
-- Timestamps are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffff+00:00' (fixed width, so they sort);
-- JSON is TEXT.

-- Conversation state, one row per (chat, user); optimistic versioning.
CREATE TABLE conversations (
    chat_id     INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    data        TEXT    NOT NULL DEFAULT '{}',
    screen      TEXT,
    locale      TEXT,
    version     INTEGER NOT NULL CHECK (version > 0),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;

-- Incoming updates keyed by Telegram update_id: dedupe + replay of unhandled ones.
CREATE TABLE inbox (
    update_id   INTEGER PRIMARY KEY,
    payload     TEXT    NOT NULL DEFAULT '{}',
    received_at TEXT    NOT NULL,
    done_at     TEXT
);
CREATE INDEX inbox_pending_idx ON inbox (received_at, update_id) WHERE done_at IS NULL;

-- Durable background work with leases.
CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT    NOT NULL,
    payload        TEXT    NOT NULL DEFAULT '{}',
    key            TEXT    UNIQUE,
    status         TEXT    NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'done', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    run_at         TEXT    NOT NULL,  -- scheduled time (enqueue / retry)
    due_at         TEXT    NOT NULL,  -- next claimable: run_at, or lease expiry while leased
    locked_by      TEXT,
    locked_until   TEXT,
    last_error     TEXT,
    correlation_id TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    finished_at    TEXT
);
CREATE INDEX jobs_due_idx ON jobs (due_at, id) WHERE status = 'pending';
