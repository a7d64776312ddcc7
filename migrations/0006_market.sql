-- 0006: the marketplace — provider signing keys, provider handles, offers with
-- computing resource identifiers, orders and their audit trail, signed usage
-- records, and the settlements that move their money through the ledger.
-- docs/marketplace.md describes the flow; docs/identifiers.md the identifiers.

-- Ed25519 public keys a provider signs usage records and offer challenges with.
-- A revoked key stays: what it signed before revoked_at remains valid.
CREATE TABLE provider_keys (
    id          text PRIMARY KEY CHECK (id ~ '^pk_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    provider_id text NOT NULL REFERENCES accounts (id),
    public_key  bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
    label       text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX provider_keys_provider ON provider_keys (provider_id, id);

-- The second label of every identifier a provider publishes: claimed by the
-- provider's first offer, owned by it for good.
CREATE TABLE provider_handles (
    handle      text PRIMARY KEY CHECK (handle ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    provider_id text NOT NULL UNIQUE REFERENCES accounts (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Capacity a provider lists. identifier = region/handle/name. An offer is
-- 'pending' until the provider signs its challenge, then 'published'; a
-- withdrawn offer keeps serving the orders already placed on it.
CREATE TABLE offers (
    id               text PRIMARY KEY CHECK (id ~ '^off_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    provider_id      text NOT NULL REFERENCES accounts (id),
    identifier       text NOT NULL UNIQUE CHECK (length(identifier) <= 191),
    region           text NOT NULL,
    zone             text NOT NULL DEFAULT '',
    name             text NOT NULL,
    device_id        text NOT NULL,
    devices_per_node integer NOT NULL CHECK (devices_per_node BETWEEN 1 AND 1024),
    nodes            integer NOT NULL CHECK (nodes BETWEEN 1 AND 100000),
    endpoint         text NOT NULL CHECK (length(endpoint) <= 300),
    policy_id        text NOT NULL REFERENCES pricing_policies (id),
    available_from   timestamptz NOT NULL,
    available_until  timestamptz,
    residency        text[] NOT NULL DEFAULT '{}',
    state            text NOT NULL CHECK (state IN ('pending', 'published', 'withdrawn')),
    challenge        text NOT NULL CHECK (challenge ~ '^[0-9a-f]{64}$'),
    verified_key_id  text REFERENCES provider_keys (id),
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    withdrawn_at     timestamptz,
    CHECK (available_until IS NULL OR available_until > available_from)
);
CREATE INDEX offers_provider ON offers (provider_id, id);
CREATE INDEX offers_region ON offers (region, identifier);

-- Bumped by every change to offers or provider handles, so every tallyd
-- process can tell within a second that its resolution cache is stale.
CREATE TABLE market_generation (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint NOT NULL
);
INSERT INTO market_generation VALUES (true, 1);

-- An order: a placement on one offer, priced with one locked policy version,
-- backed by one ledger hold. The reservation window [start_at, end_at) holds
-- `count` devices of the offer; active orders' windows never oversubscribe it
-- (the offer row is locked while a new order checks and reserves).
CREATE TABLE orders (
    id               text PRIMARY KEY CHECK (id ~ '^ord_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    tenant_id        text NOT NULL REFERENCES accounts (id),
    offer_id         text NOT NULL REFERENCES offers (id),
    provider_id      text NOT NULL REFERENCES accounts (id),
    device_id        text NOT NULL,
    count            integer NOT NULL CHECK (count >= 1),
    profile          jsonb NOT NULL,
    profile_class    text NOT NULL,
    work_mcu         bigint NOT NULL CHECK (work_mcu >= 0),
    p50_ms           bigint NOT NULL CHECK (p50_ms > 0),
    p90_ms           bigint NOT NULL CHECK (p90_ms >= p50_ms),
    start_at         timestamptz NOT NULL,
    end_at           timestamptz NOT NULL CHECK (end_at > start_at),
    deadline         timestamptz,
    policy_id        text NOT NULL,
    policy_version   integer NOT NULL,
    quote_id         text,
    utilisation_ppm  bigint NOT NULL DEFAULT -1, -- spot input locked at placement (-1 unknown)
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    priced_micros    bigint NOT NULL CHECK (priced_micros >= 0),
    hold_micros      bigint NOT NULL CHECK (hold_micros >= priced_micros),
    hold_id          text,
    captured_micros  bigint NOT NULL DEFAULT 0 CHECK (captured_micros >= 0), -- from the hold
    refunded_micros  bigint NOT NULL DEFAULT 0 CHECK (refunded_micros >= 0), -- reversed usage
    fee_micros       bigint NOT NULL DEFAULT 0 CHECK (fee_micros >= 0),
    used_mcu         bigint NOT NULL DEFAULT 0,
    used_device_ms   bigint NOT NULL DEFAULT 0,
    state            text NOT NULL CHECK (state IN ('pending', 'placed', 'running', 'completed',
                                                    'failed', 'cancelled', 'migrating', 'migrated',
                                                    'rejected')),
    placement        jsonb NOT NULL,
    idempotency_key  text,
    request_hash     text NOT NULL,
    request          jsonb NOT NULL,           -- the workload and constraints, to re-place it
    replaces         text REFERENCES orders (id), -- the order this one took over (failover)
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (captured_micros <= hold_micros),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX orders_tenant ON orders (tenant_id, id);
CREATE INDEX orders_provider ON orders (provider_id, id);
CREATE INDEX orders_offer_active ON orders (offer_id, start_at, end_at)
    WHERE state IN ('pending', 'placed', 'running', 'migrating');

-- Every state change of every order: the audit trail finance reads. Append-only.
CREATE TABLE order_events (
    id         bigserial PRIMARY KEY,
    order_id   text NOT NULL REFERENCES orders (id),
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_state text,
    to_state   text NOT NULL,
    actor      text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX order_events_order ON order_events (order_id, id);

-- Accepted usage records (rejected ones are answered, never stored, so a
-- corrected record may be re-sent under the same record id). Each is signed by
-- the provider over its canonical JSON, priced with the order's policy version
-- and settled by one settlement per (batch, order). Append-only: a correction is
-- a reversal record naming the record it reverses.
CREATE TABLE usage_records (
    -- checks without bounded repetition: PostgreSQL expands {n} into n regex
    -- states, which costs tens of microseconds per row on this, the hottest insert
    id             text PRIMARY KEY CHECK (length(id) = 30 AND left(id, 5) ~ '^use_[0-7]$'
                                           AND substr(id, 6) !~ '[^0-9A-HJKMNP-TV-Z]'),
    provider_id    text NOT NULL,
    record_id      text NOT NULL CHECK (length(record_id) BETWEEN 1 AND 128),
    order_id       text NOT NULL,
    device_id      text NOT NULL,
    count          integer NOT NULL CHECK (count >= 1),
    start_at       timestamptz NOT NULL,
    end_at         timestamptz NOT NULL CHECK (end_at > start_at),
    start_ms       bigint NOT NULL,
    end_ms         bigint NOT NULL,
    work_mcu       bigint,
    mcu            bigint NOT NULL,
    device_ms      bigint NOT NULL,
    currency       text NOT NULL,
    amount_micros  bigint NOT NULL,
    fee_micros     bigint NOT NULL,
    period         text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    billed_period  text NOT NULL CHECK (billed_period ~ '^[0-9]{4}-[0-9]{2}$'),
    lines          jsonb NOT NULL,
    key_id         text NOT NULL,
    signature      text NOT NULL CHECK (length(signature) = 128 AND signature !~ '[^0-9a-f]'),
    canonical      text NOT NULL,
    record_hash    text NOT NULL CHECK (length(record_hash) = 64 AND record_hash !~ '[^0-9a-f]'),
    batch_id       text NOT NULL,
    settlement_id  text NOT NULL,
    reverses       text,
    accepted_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider_id, record_id)
);
CREATE INDEX usage_records_order ON usage_records (order_id, end_ms);
CREATE UNIQUE INDEX usage_records_reverses ON usage_records (provider_id, reverses)
    WHERE reverses IS NOT NULL;

-- Money to move for orders and usage, written in the same transaction as what
-- caused it and then applied by the ledger writer under the settlement's id as
-- idempotency key (an outbox): a crash between the two is finished by the
-- janitor, and the ledger applies each settlement exactly once.
CREATE TABLE settlements (
    id          text PRIMARY KEY CHECK (id ~ '^stl_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    order_id    text NOT NULL REFERENCES orders (id),
    kind        text NOT NULL CHECK (kind IN ('hold', 'capture', 'release', 'refund')),
    amount      bigint NOT NULL CHECK (amount >= 0),
    fee         bigint NOT NULL DEFAULT 0 CHECK (fee >= 0),
    final       boolean NOT NULL DEFAULT false,
    state       text NOT NULL CHECK (state IN ('pending', 'posted', 'failed')),
    txn_id      text,
    problem     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlements_order ON settlements (order_id, id);
CREATE INDEX settlements_pending ON settlements (created_at) WHERE state = 'pending';

CREATE TRIGGER order_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON order_events
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER usage_records_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON usage_records
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
