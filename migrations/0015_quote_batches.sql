-- 0015: quotes are signed per batch, not per row.
--
-- The quote writer signs each batch it stores with ONE Ed25519 signature over
-- the Merkle root of the batch's quote documents (billing/quote_proof.h:
-- leaf = BLAKE2b-256(0x00 || 'tally-quote-leaf-v1' LF || canonical JSON),
-- signature over 'tally-quote-batch-v1' || root). A batch row holds the root
-- and the signature; each quote row names its batch, its leaf index and its
-- audit path (the sibling hashes from the leaf up, 32 bytes each; empty for
-- a batch of one), so a quote verifies offline from its own row and its
-- batch's.
--
-- Rows stored before this migration keep their per-row signature
-- ("tally-quote-v1\n" || canonical JSON) in kid/signature and are read as
-- before; new rows leave kid/signature NULL. Exactly one of the two forms is
-- present (quotes_signed).
--
-- Also dropped, as no query uses them:
--  * quotes_signature_check (length and character class of the hex
--    signature): only old rows have one, and they are immutable;
--  * quotes.created_at: the signed document carries created_at (what every
--    reader shows); the column duplicated it.
-- A batch names its key (published in ledger_keys, GET /v1/ledger/keys, by
-- the writer before the first batch it signs). quote_batches has no foreign key from quotes: the writer inserts a batch
-- and its quotes in one transaction, both tables are append-only, and a
-- per-row foreign-key probe would cost more than the rest of the batch
-- bookkeeping.
CREATE TABLE quote_batches (
    id         text PRIMARY KEY CHECK (length(id) = 30 AND left(id, 4) = 'qbt_'),
    root       bytea NOT NULL CHECK (length(root) = 32),
    kid        text NOT NULL REFERENCES ledger_keys (kid),
    signature  bytea NOT NULL CHECK (length(signature) = 64),
    n          integer NOT NULL CHECK (n BETWEEN 1 AND 65536),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER quote_batches_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON quote_batches
    FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_change();

ALTER TABLE quotes
    DROP CONSTRAINT quotes_signature_check,
    ALTER COLUMN kid DROP NOT NULL,
    ALTER COLUMN signature DROP NOT NULL,
    DROP COLUMN created_at,
    ADD COLUMN batch_id text,
    ADD COLUMN leaf_index integer,
    ADD COLUMN path bytea,
    ADD CONSTRAINT quotes_signed CHECK (
        CASE WHEN batch_id IS NULL THEN kid IS NOT NULL AND signature IS NOT NULL
             ELSE leaf_index IS NOT NULL AND path IS NOT NULL END);
