-- 0001: accounts, API keys, idempotency records and the audit trail.

CREATE TABLE accounts (
    id          text PRIMARY KEY CHECK (id ~ '^acc_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('tenant', 'provider', 'finance', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);
CREATE INDEX accounts_name_role ON accounts (name, role);

-- Keys are stored only as a keyed BLAKE2b-256 hash (hex); display_prefix is the
-- first characters of the key ("tly_AbCd") so a person can tell keys apart.
CREATE TABLE api_keys (
    id             text PRIMARY KEY CHECK (id ~ '^key_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    account_id     text NOT NULL REFERENCES accounts (id),
    key_hash       text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    display_prefix text NOT NULL,
    label          text CHECK (length(label) <= 100),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    revoked_at     timestamptz,
    revoked_by     text
);
CREATE INDEX api_keys_account ON api_keys (account_id);

-- One row per (caller, Idempotency-Key): the request's hash and, once the
-- transaction that made the change commits, the response to replay.
CREATE TABLE idempotency_keys (
    account_id   text NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    status       integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

-- Who did what to accounts and keys. Append-only: the database refuses
-- UPDATE and DELETE on it.
CREATE TABLE audit_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    subject text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'
);

CREATE FUNCTION tally_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
