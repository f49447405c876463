-- The balance ledger, PostgreSQL. Integer credits, two-phase charges (hold -> capture | release).
-- Balance checks are conditional UPDATEs on the account row (WHERE available >= amount):
-- the row lock serialises concurrent holds of one user across instances, and a waiting
-- UPDATE re-checks the condition on the committed row. The CHECKs are the last line of
-- defence: a balance can never go negative.

-- One row per user who ever received credits: `available` can be spent, `held` is
-- reserved by holds not yet settled. Total owned = available + held.
CREATE TABLE ledger_accounts (
    user_id     BIGINT      PRIMARY KEY,
    available   BIGINT      NOT NULL DEFAULT 0 CHECK (available >= 0),
    held        BIGINT      NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per hold key: the state machine of a charge. `declined` records a hold refused
-- for insufficient funds, so a repeated key returns the same answer. A settled hold
-- (captured / released) never changes again: the first settlement wins.
CREATE TABLE ledger_holds (
    key         TEXT        PRIMARY KEY,
    user_id     BIGINT      NOT NULL,
    amount      BIGINT      NOT NULL CHECK (amount > 0),
    status      TEXT        NOT NULL CHECK (status IN ('held', 'captured', 'released', 'declined')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at  TIMESTAMPTZ
);
CREATE INDEX ledger_holds_open_idx ON ledger_holds (user_id) WHERE status = 'held';

-- Append-only journal for history and support. (kind, key) is unique: a credit key is
-- applied once, and a hold is held, captured and released at most once each.
CREATE TABLE ledger_entries (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT      NOT NULL,
    key         TEXT        NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('credit', 'hold', 'capture', 'release')),
    amount      BIGINT      NOT NULL CHECK (amount > 0),
    reason      TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (kind, key)
);
CREATE INDEX ledger_entries_user_idx ON ledger_entries (user_id, id);
