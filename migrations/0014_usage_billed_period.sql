-- 0014: usage records get their billed period from their writer, once per batch,
-- instead of from a BEFORE INSERT row trigger (0010's tally_usage_billed_period).
--
-- The row trigger was one PL/pgSQL call per record: about 15 µs of PostgreSQL CPU
-- per row on the project's machine (100-row inserts into usage_records with and
-- without it), a third of the insert's cost, on the hottest insert there is.
-- The rule is unchanged: a record is billed in the first period, from its own,
-- for which its tenant has no final invoice in its currency. The writers
-- (server/market_usage.c, server/market_minimum.c) take usage_records in ROW
-- EXCLUSIVE mode — the mode their insert takes anyway, which waits for a
-- finalisation holding SHARE and holds the next one off — and only then call
-- tally_billed_period() once per (tenant, period, currency) of what they write, so
-- a finalisation either committed before they looked (and they move the record)
-- or runs after they commit (and bills it). A statement-level check refuses any
-- insert that would still land in a final invoice's period, whoever writes it.

CREATE FUNCTION tally_billed_period(tenant text, period text, cur text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    p text := period;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM invoices WHERE state = 'final' AND invoices.period = p) THEN
        RETURN p;
    END IF;
    WHILE EXISTS (SELECT 1 FROM invoices WHERE state = 'final' AND tenant_id = tenant
                  AND invoices.period = p AND currency = cur) LOOP
        p := to_char(to_date(p || '-01', 'YYYY-MM-DD') + interval '1 month', 'YYYY-MM');
    END LOOP;
    RETURN p;
END $$;

DROP TRIGGER usage_records_billed_period ON usage_records;
DROP FUNCTION tally_usage_billed_period();

-- The safety net, one query per insert statement (a batch), not per row: nothing may
-- be written into the period of its tenant's final invoice.
CREATE FUNCTION tally_usage_billed_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_usage n JOIN invoices i ON i.state = 'final'
               AND i.period = n.billed_period AND i.currency = n.currency
               JOIN orders o ON o.id = n.order_id AND o.tenant_id = i.tenant_id) THEN
        RAISE EXCEPTION 'usage billed in the period of a final invoice: its writer must use '
                        'tally_billed_period()' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_records_billed_check AFTER INSERT ON usage_records
    REFERENCING NEW TABLE AS new_usage FOR EACH STATEMENT
    EXECUTE FUNCTION tally_usage_billed_check();
