-- flowgram storage schema, PostgreSQL.
-- Applied by engine.storage.postgres inside one transaction holding an advisory lock;
-- schema_migrations itself is created by the migrator, not here.

-- Conversation state, one row per (chat, user); optimistic versioning.
CREATE TABLE conversations (
    chat_id     BIGINT      NOT NULL,
    user_id     BIGINT      NOT NULL,
    state       TEXT        NOT NULL,
    data        JSONB       NOT NULL DEFAULT '{}'::jsonb,
    screen      JSONB,
    locale      TEXT,
    version     BIGINT      NOT NULL CHECK (version > 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, user_id)
);

-- Incoming updates keyed by Telegram update_id: dedupe + replay of unhandled ones.
CREATE TABLE inbox (
    update_id   BIGINT      PRIMARY KEY,
    payload     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at     TIMESTAMPTZ
);
CREATE INDEX inbox_pending_idx ON inbox (received_at, update_id) WHERE done_at IS NULL;

-- Durable background work with leases.
CREATE TABLE jobs (
    id             BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           TEXT        NOT NULL,
    payload        JSONB       NOT NULL DEFAULT '{}'::jsonb,
    key            TEXT        UNIQUE,
    status         TEXT        NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'done', 'failed')),
    attempts       INTEGER     NOT NULL DEFAULT 0,
    run_at         TIMESTAMPTZ NOT NULL DEFAULT now(),  -- scheduled time (enqueue / retry)
    due_at         TIMESTAMPTZ NOT NULL DEFAULT now(),  -- next claimable: run_at, or lease expiry while leased
    locked_by      TEXT,
    locked_until   TIMESTAMPTZ,
    last_error     TEXT,
    correlation_id TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at    TIMESTAMPTZ
);
CREATE INDEX jobs_due_idx ON jobs (due_at, id) WHERE status = 'pending';
