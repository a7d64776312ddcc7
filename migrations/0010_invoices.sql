-- 0010: invoices and credit notes (issue 8; docs/finance.md "Invoices").
--
-- An invoice is one tenant's charges for one billing period and currency. It is
-- a draft until finalised; finalising numbers it from a gap-free counter (a row
-- locked in the finalising transaction, never a SQL sequence, so a rolled-back
-- finalisation leaves no hole), stores its canonical document and the service
-- key's Ed25519 signature, and freezes it: a final invoice is never updated or
-- deleted. Corrections are credit notes, numbered from their own gap-free
-- counter and signed the same way.

CREATE TABLE invoice_counters (
    series text PRIMARY KEY CHECK (series IN ('INV', 'CN')),
    last   bigint NOT NULL CHECK (last >= 0)
);
INSERT INTO invoice_counters (series, last) VALUES ('INV', 0), ('CN', 0);

CREATE TABLE invoices (
    id              text PRIMARY KEY CHECK (id ~ '^inv_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    tenant_id       text NOT NULL REFERENCES accounts (id),
    period          text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state           text NOT NULL CHECK (state IN ('draft', 'final')),
    seq             bigint UNIQUE,
    number          text UNIQUE,
    lines           jsonb NOT NULL,
    records         bigint NOT NULL,
    total_micros    bigint NOT NULL,
    document        text,
    kid             text,
    signature       text CHECK (signature ~ '^[0-9a-f]{128}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finalized_at    timestamptz,
    UNIQUE (tenant_id, period, currency),
    CHECK ((state = 'final') = (number IS NOT NULL AND document IS NOT NULL AND
                                signature IS NOT NULL AND finalized_at IS NOT NULL))
);
CREATE INDEX invoices_tenant ON invoices (tenant_id, id);
CREATE INDEX invoices_final_period ON invoices (period) WHERE state = 'final';

-- A final invoice never changes; a draft may be refreshed by a later close.
CREATE FUNCTION tally_invoice_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'final' THEN
        RAISE EXCEPTION 'invoice % is final: corrections are credit notes', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_frozen BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION tally_invoice_frozen();

CREATE TABLE credit_notes (
    id            text PRIMARY KEY CHECK (id ~ '^cn_[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
    invoice_id    text NOT NULL REFERENCES invoices (id),
    tenant_id     text NOT NULL REFERENCES accounts (id),
    seq           bigint NOT NULL UNIQUE,
    number        text NOT NULL UNIQUE,
    currency      text NOT NULL,
    amount_micros bigint NOT NULL CHECK (amount_micros > 0),
    reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    txn_id        text NOT NULL,
    document      text NOT NULL,
    kid           text NOT NULL,
    signature     text NOT NULL CHECK (signature ~ '^[0-9a-f]{128}$'),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_notes_invoice ON credit_notes (invoice_id, id);
CREATE TRIGGER credit_notes_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON credit_notes
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

-- Usage that arrives after its tenant's invoice for the period is final is
-- billed in the next period whose invoice is still open (an adjustment line
-- naming the original period). Finalisation takes usage_records in SHARE mode
-- (it waits for inserting transactions to finish and holds new ones off for
-- its few milliseconds), so a record is either in the final invoice or moved,
-- never lost between them; the trigger itself takes no lock. It costs one probe
-- of the small partial index invoices_final_period per record, and looks the
-- order's tenant up only when some invoice of that period is final.
CREATE FUNCTION tally_usage_billed_period() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM invoices WHERE state = 'final' AND period = NEW.billed_period)
    THEN
        RETURN NEW;
    END IF;
    SELECT tenant_id INTO t FROM orders WHERE id = NEW.order_id;
    WHILE EXISTS (SELECT 1 FROM invoices WHERE state = 'final' AND tenant_id = t
                  AND period = NEW.billed_period AND currency = NEW.currency) LOOP
        NEW.billed_period := to_char(to_date(NEW.billed_period || '-01', 'YYYY-MM-DD')
                                     + interval '1 month', 'YYYY-MM');
    END LOOP;
    RETURN NEW;
END $$;
CREATE TRIGGER usage_records_billed_period BEFORE INSERT ON usage_records
    FOR EACH ROW EXECUTE FUNCTION tally_usage_billed_period();

-- Invoice aggregation reads usage by billed period.
CREATE INDEX usage_records_billed ON usage_records (billed_period, order_id);

-- Ids for rows made set-wise in SQL (one per tenant at close): the same shape
-- as server/ids.c's (prefix, 10 base-32 digits of the millisecond clock, 16
-- random digits), so they sort by creation time. Not secrets.
CREATE FUNCTION tally_invoice_new_id(prefix text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    digits constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    s text := '';
BEGIN
    FOR i IN 1..10 LOOP
        s := substr(digits, (ms % 32)::int + 1, 1) || s;
        ms := ms / 32;
    END LOOP;
    FOR i IN 1..16 LOOP
        s := s || substr(digits, floor(random() * 32)::int + 1, 1);
    END LOOP;
    RETURN prefix || '_' || s;
END $$;

-- Reserved-commitment true-ups charged when an invoice is finalised: the unused
-- part of a commitment at its price (pricing_commitment_trueup), posted through
-- the ledger (txn_id) before the invoice is numbered, and shown on it as
-- line items. One per (invoice, policy version); append-only.
CREATE TABLE invoice_trueups (
    invoice_id     text NOT NULL REFERENCES invoices (id),
    policy_id      text NOT NULL,
    policy_version integer NOT NULL,
    txn_id         text NOT NULL,
    amount_micros  bigint NOT NULL,
    lines          jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, policy_id, policy_version)
);
CREATE TRIGGER invoice_trueups_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON invoice_trueups
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();
