-- 0011: what the usage report needs per record, stored with the record.
--
-- The usage report's `discounts` is the sum of a record's negative tenant line
-- items. Computing it at report time meant expanding the record's `lines` jsonb
-- for every record read (about 2.8 of the 6.4 s PostgreSQL spent on a
-- 1 000 000-record per-record report). A stored generated column computes it
-- once, when the record is inserted, from the same `lines`: the writer
-- (server/market_usage.c, binary COPY with an explicit column list) is
-- untouched, and the value can never disagree with the line items. A record
-- without a negative tenant line (most) costs one jsonpath test; measured cost
-- about 2 us per inserted row (docs/benchmarks.md, "Finance: reports").
--
-- A reversal carries no line items of its own; its discount is minus its
-- original's, which the report reads from the original (one index probe, only
-- for reversals).
CREATE FUNCTION tally_usage_lines_discount(lines jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(sum((l->>'amount')::bigint), 0)::bigint
    FROM jsonb_array_elements(lines) l
    WHERE l->>'payer' = 'tenant' AND (l->>'amount')::bigint < 0
$$;

-- Adding a stored generated column rewrites the table: existing rows are
-- backfilled by the same expression.
ALTER TABLE usage_records ADD COLUMN discount_micros bigint NOT NULL
    GENERATED ALWAYS AS (
        CASE WHEN jsonb_path_exists(lines, '$[*] ? (@.payer == "tenant" && @.amount < 0)')
             THEN tally_usage_lines_discount(lines) ELSE 0 END) STORED;

-- Reports and the dashboard select records by their start time (from/to).
CREATE INDEX usage_records_start ON usage_records (start_at);
