-- 0017: a credit note is written down before its money moves.
--
-- A credit note takes two steps that cannot share one transaction: the ledger
-- adjustment (through the ledger writer's batch path, its own commit) and then
-- the numbered, signed note. A crash between them used to leave money moved and
-- no note until the client retried with the same Idempotency-Key. Now the
-- request is first stored here (committed), the money moves, and the note is
-- stored in the same transaction that marks the intent done; the janitor
-- finishes any intent still pending 10 seconds later by running the same
-- idempotent steps again (the ledger replays its adjustment under the same key,
-- the note is found by its transaction), so every credit note that moved money
-- gets its document, once. Pending intents count against the invoice's
-- remaining total, so nothing can be credited twice meanwhile.
CREATE TABLE credit_note_intents (
    caller        text NOT NULL,
    invoice_id    text NOT NULL REFERENCES invoices (id),
    idem_key      text NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 60),
    caller_role   integer NOT NULL,
    amount_micros bigint NOT NULL CHECK (amount_micros > 0),
    reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'refused')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, invoice_id, idem_key)
);
CREATE INDEX credit_note_intents_pending ON credit_note_intents (created_at)
    WHERE state = 'pending';
CREATE INDEX credit_note_intents_invoice ON credit_note_intents (invoice_id)
    WHERE state = 'pending';
