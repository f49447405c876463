-- The balance ledger, SQLite. Integer credits, two-phase charges (hold -> capture | release).
-- Every write runs inside BEGIN IMMEDIATE, so a balance check and its update are atomic
-- even with several processes on one file. The CHECKs are the last line of defence:
-- a balance can never go negative, and an integer overflow (which SQLite would turn
-- into a REAL) is refused instead of stored.

-- One row per user who ever received credits: `available` can be spent, `held` is
-- reserved by holds not yet settled. Total owned = available + held.
CREATE TABLE ledger_accounts (
    user_id     INTEGER PRIMARY KEY,
    available   INTEGER NOT NULL DEFAULT 0 CHECK (typeof(available) = 'integer' AND available >= 0),
    held        INTEGER NOT NULL DEFAULT 0 CHECK (typeof(held) = 'integer' AND held >= 0),
    updated_at  TEXT    NOT NULL
);

-- One row per hold key: the state machine of a charge. `declined` records a hold refused
-- for insufficient funds, so a repeated key returns the same answer. A settled hold
-- (captured / released) never changes again: the first settlement wins.
CREATE TABLE ledger_holds (
    key         TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL,
    amount      INTEGER NOT NULL CHECK (typeof(amount) = 'integer' AND amount > 0),
    status      TEXT    NOT NULL CHECK (status IN ('held', 'captured', 'released', 'declined')),
    created_at  TEXT    NOT NULL,
    settled_at  TEXT
) WITHOUT ROWID;
CREATE INDEX ledger_holds_open_idx ON ledger_holds (user_id) WHERE status = 'held';

-- Append-only journal for history and support. (kind, key) is unique: a credit key is
-- applied once, and a hold is held, captured and released at most once each.
CREATE TABLE ledger_entries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL,
    key         TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('credit', 'hold', 'capture', 'release')),
    amount      INTEGER NOT NULL CHECK (typeof(amount) = 'integer' AND amount > 0),
    reason      TEXT,
    created_at  TEXT    NOT NULL,
    UNIQUE (kind, key)
);
CREATE INDEX ledger_entries_user_idx ON ledger_entries (user_id, id);
