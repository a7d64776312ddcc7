-- 0016: a narrower, cheaper usage_records row.
--
-- Every accepted usage record is one insert into usage_records: the hottest
-- insert of the service (docs/benchmarks.md, "Marketplace: usage ingestion").
-- Measured with callgrind (100-row inserts into a migrated table, instructions
-- per row, 2026-11-29): 208 k as of 0014, of which the CHECK constraints were
-- 40 k — the hex checks of signature and record_hash 14.5 k (regular
-- expressions over 128 and 64 characters), the two period checks 12 k, the id
-- check 11 k. This migration saves about 15 k of the 208 k:
--
-- * signature and record_hash are stored as their bytes (bytea: 64 and 32
--   bytes instead of 128 and 64 hex digits), so their check is a length
--   (-10 k per row with the narrower row). Readers encode them as lower-case
--   hex (GET /v1/usage, the replay probe), which is all the text columns could
--   hold (the old checks allowed nothing else).
-- * The period checks map every digit to '9' and compare with '9999-99'
--   instead of a regular expression (-5 k): exactly the same strings pass.
--   (Spelling the digits out in the expression saved nothing; the id check's
--   non-regex forms saved < 2 k and it stays as it is.)
ALTER TABLE usage_records
    DROP CONSTRAINT usage_records_signature_check,
    DROP CONSTRAINT usage_records_record_hash_check,
    DROP CONSTRAINT usage_records_period_check,
    DROP CONSTRAINT usage_records_billed_period_check;

ALTER TABLE usage_records
    ALTER COLUMN signature TYPE bytea USING decode(signature, 'hex'),
    ALTER COLUMN record_hash TYPE bytea USING decode(record_hash, 'hex');

ALTER TABLE usage_records
    ADD CONSTRAINT usage_records_signature_check CHECK (octet_length(signature) = 64),
    ADD CONSTRAINT usage_records_record_hash_check CHECK (octet_length(record_hash) = 32),
    ADD CONSTRAINT usage_records_period_check
        CHECK (translate(period, '0123456789', '9999999999') = '9999-99'),
    ADD CONSTRAINT usage_records_billed_period_check
        CHECK (translate(billed_period, '0123456789', '9999999999') = '9999-99');
