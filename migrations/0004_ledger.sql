-- 0004: the double-entry ledger — accounts, signed hash-chained transactions,
-- entries with running balances, holds, partition heads, checkpoints, signing
-- keys and the ledger's own idempotency records. docs/ledger-format.md defines
-- the bytes that are hashed and signed; docs/ledger.md the service around them.

-- Settings of the ledger that every tallyd process must agree on. The number of
-- partitions may grow (new partitions start from genesis), never shrink.
CREATE TABLE ledger_settings (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    partitions integer NOT NULL CHECK (partitions BETWEEN 1 AND 65536)
);

-- Ledger accounts: one currency each. purpose decides the normal side and
-- whether the account is limit-checked (wallet, holds) or takes no balance lock
-- (payable, revenue, external: never overdrawn by design; see docs/architecture.md).
-- For checked accounts balance/version are kept here under a row lock; the
-- unchecked ("hot") accounts keep them per partition in ledger_account_shards.
CREATE TABLE ledger_accounts (
    id           text PRIMARY KEY CHECK (id ~ '^la_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    owner_id     text REFERENCES accounts (id),
    purpose      text NOT NULL CHECK (purpose IN ('wallet', 'holds', 'payable', 'revenue', 'external')),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    credit_limit bigint NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    checked      boolean NOT NULL,
    balance      bigint NOT NULL DEFAULT 0,
    version      bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (checked = (purpose IN ('wallet', 'holds'))),
    CHECK ((owner_id IS NULL) = (purpose IN ('revenue', 'external')))
);
CREATE UNIQUE INDEX ledger_accounts_owner ON ledger_accounts (coalesce(owner_id, ''), purpose, currency);

-- Running balance of an unchecked account within one partition. Only written
-- by a transaction that holds that partition's head lock, so it never adds a
-- lock of its own: balance of the account = sum over its shards.
CREATE TABLE ledger_account_shards (
    account_id text NOT NULL REFERENCES ledger_accounts (id),
    shard      integer NOT NULL CHECK (shard >= 0),
    balance    bigint NOT NULL,
    version    bigint NOT NULL CHECK (version > 0),
    PRIMARY KEY (account_id, shard)
);

-- One row per partition: the head of its chain. Locked FOR UPDATE to append,
-- so the database decides chain order even with many tallyd processes.
CREATE TABLE ledger_heads (
    partition integer PRIMARY KEY CHECK (partition >= 0 AND partition < 65536),
    seq       bigint NOT NULL CHECK (seq >= 0),
    hash      bytea NOT NULL CHECK (length(hash) = 32)
);

-- Service signing keys (public halves). Old keys stay forever.
CREATE TABLE ledger_keys (
    kid         text PRIMARY KEY CHECK (kid ~ '^sk_[0-9a-f]{16}$'),
    public_key  bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
    valid_from  bigint NOT NULL CHECK (valid_from >= 0),
    valid_until bigint CHECK (valid_until IS NULL OR valid_until > valid_from),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_transactions (
    id              text PRIMARY KEY CHECK (id ~ '^txn_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    partition       integer NOT NULL,
    seq             bigint NOT NULL CHECK (seq >= 1),
    kind            text NOT NULL CHECK (kind IN ('deposit', 'hold', 'capture', 'release', 'payout',
                                                  'reversal', 'fee', 'adjustment', 'expiry')),
    memo            text NOT NULL DEFAULT '',
    order_id        text,
    usage_id        text,
    invoice_id      text,
    reverses_id     text REFERENCES ledger_transactions (id),
    hold_id         text,
    caller_id       text,
    idempotency_key text,
    effective_us    bigint NOT NULL,
    inserted_us     bigint NOT NULL,
    canonical       bytea NOT NULL,
    prev_hash       bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea NOT NULL CHECK (length(hash) = 32),
    kid             text NOT NULL REFERENCES ledger_keys (kid),
    sig             bytea NOT NULL CHECK (length(sig) = 64),
    UNIQUE (partition, seq)
);
CREATE UNIQUE INDEX ledger_transactions_reverses ON ledger_transactions (reverses_id)
    WHERE reverses_id IS NOT NULL;
CREATE INDEX ledger_transactions_kind ON ledger_transactions (kind, id);
CREATE INDEX ledger_transactions_hold ON ledger_transactions (hold_id) WHERE hold_id IS NOT NULL;

-- Entries: idx is the entry's position in the transaction (the canonical order).
-- shard is -1 for checked accounts (balance/version are the account's) and the
-- transaction's partition for unchecked ones (balance/version are the shard's).
CREATE TABLE ledger_entries (
    txn_id          text NOT NULL REFERENCES ledger_transactions (id),
    idx             smallint NOT NULL CHECK (idx >= 0 AND idx < 32),
    account_id      text NOT NULL REFERENCES ledger_accounts (id),
    currency        text NOT NULL,
    amount          bigint NOT NULL CHECK (amount <> 0),
    shard           integer NOT NULL,
    balance_before  bigint NOT NULL,
    balance_after   bigint NOT NULL,
    account_version bigint NOT NULL,
    inserted_us     bigint NOT NULL,
    PRIMARY KEY (txn_id, idx)
);
-- A balance at any moment is one indexed read: the last entry at or before it.
CREATE INDEX ledger_entries_asof ON ledger_entries (account_id, shard, inserted_us, account_version);

CREATE TABLE ledger_holds (
    id            text PRIMARY KEY CHECK (id ~ '^hold_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    owner_id      text NOT NULL REFERENCES accounts (id),
    wallet_id     text NOT NULL REFERENCES ledger_accounts (id),
    holds_id      text NOT NULL REFERENCES ledger_accounts (id),
    currency      text NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    captured      bigint NOT NULL DEFAULT 0 CHECK (captured >= 0),
    released      bigint NOT NULL DEFAULT 0 CHECK (released >= 0),
    state         text NOT NULL CHECK (state IN ('open', 'captured', 'voided', 'expired')),
    expires_us    bigint NOT NULL,
    order_id      text,
    hold_txn_id   text NOT NULL REFERENCES ledger_transactions (id),
    closed_txn_id text REFERENCES ledger_transactions (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (captured + released <= amount)
);
CREATE INDEX ledger_holds_open ON ledger_holds (expires_us) WHERE state = 'open';
CREATE INDEX ledger_holds_owner ON ledger_holds (owner_id, id);

-- Signed Merkle roots over every partition head. heads = per partition
-- (u64 BE seq ‖ 32-byte hash), in partition order.
CREATE TABLE ledger_checkpoints (
    number      bigint PRIMARY KEY CHECK (number >= 1),
    time_us     bigint NOT NULL,
    partitions  integer NOT NULL,
    root        bytea NOT NULL CHECK (length(root) = 32),
    prev_digest bytea NOT NULL CHECK (length(prev_digest) = 32),
    digest      bytea NOT NULL CHECK (length(digest) = 32),
    kid         text NOT NULL REFERENCES ledger_keys (kid),
    sig         bytea NOT NULL CHECK (length(sig) = 64),
    heads       bytea NOT NULL
);

-- Ledger idempotency: per (caller, key) the request hash and the outcome.
-- permanent = the stored response (success or a permanent 4xx such as
-- insufficient funds) is replayed; transient failures are never stored, so the
-- same key may be retried.
CREATE TABLE ledger_idempotency (
    caller_id    text NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    status       integer,
    response     json, -- json, not jsonb: a replay returns the first response byte for byte
    permanent    boolean NOT NULL DEFAULT true,
    txn_id       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller_id, key)
);

-- History is append-only, enforced by the database itself.
CREATE TRIGGER ledger_transactions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER ledger_entries_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER ledger_checkpoints_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
