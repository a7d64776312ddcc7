-- 0003: pricing policies (immutable versions), period-to-date rating state,
-- reported capacity utilisation (for spot prices), and signed quotes.

CREATE TABLE pricing_policies (
    id         text PRIMARY KEY CHECK (id ~ '^pol_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    owner_id   text NOT NULL REFERENCES accounts (id),
    scope      text NOT NULL CHECK (scope IN ('provider', 'platform')),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pricing_policies_owner ON pricing_policies (owner_id, id);

-- Every version is immutable: a change is a new version, old ones stay readable
-- because quotes and charges name the version they used.
CREATE TABLE pricing_policy_versions (
    policy_id  text NOT NULL REFERENCES pricing_policies (id),
    version    integer NOT NULL CHECK (version >= 1),
    document   jsonb NOT NULL,
    canonical  text NOT NULL,
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    currency   text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    PRIMARY KEY (policy_id, version)
);

-- Period-to-date state of one tenant on one policy version in one billing
-- period (UTC calendar month). Written by charging (marketplace); quotes read it.
CREATE TABLE pricing_period_state (
    tenant_id      text NOT NULL,
    policy_id      text NOT NULL,
    policy_version integer NOT NULL,
    period         text NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),
    state          jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, policy_id, policy_version, period),
    FOREIGN KEY (policy_id, policy_version) REFERENCES pricing_policy_versions (policy_id, version)
);

-- Live utilisation of capacity per (device, region), in parts per million.
CREATE TABLE capacity_utilisation (
    device_id       text NOT NULL,
    region          text NOT NULL DEFAULT '',
    utilisation_ppm integer NOT NULL CHECK (utilisation_ppm BETWEEN 0 AND 1000000),
    reported_by     text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, region)
);

-- A quote is a signed price lock: the canonical JSON document and the
-- service's Ed25519 signature over it. Append-only.
CREATE TABLE quotes (
    id             text PRIMARY KEY CHECK (id ~ '^quo_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    tenant_id      text NOT NULL REFERENCES accounts (id),
    policy_id      text NOT NULL,
    policy_version integer NOT NULL,
    currency       text NOT NULL,
    total_micros   bigint NOT NULL,
    document       text NOT NULL,
    kid            text NOT NULL,
    signature      text NOT NULL CHECK (signature ~ '^[0-9a-f]{128}$'),
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (policy_id, policy_version) REFERENCES pricing_policy_versions (policy_id, version)
);
CREATE INDEX quotes_tenant ON quotes (tenant_id, id);

CREATE TRIGGER pricing_policy_versions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON pricing_policy_versions
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
CREATE TRIGGER quotes_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON quotes
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
