-- 0007: the same rules on quote rows, checked without bounded repetition.
--
-- PostgreSQL's regular-expression engine expands a bound such as {128} into
-- that many states, so '^[0-9a-f]{128}$' cost tens of microseconds per quote
-- inserted (most of the insert). These constraints accept exactly the same
-- values: a length check plus a character class over the whole string.
ALTER TABLE quotes
    DROP CONSTRAINT quotes_signature_check,
    ADD CONSTRAINT quotes_signature_check
        CHECK (length(signature) = 128 AND signature !~ '[^0-9a-f]'),
    DROP CONSTRAINT quotes_id_check,
    ADD CONSTRAINT quotes_id_check
        CHECK (length(id) = 30 AND left(id, 5) ~ '^quo_[0-7]$'
               AND substr(id, 6) !~ '[^0-9A-HJKMNP-TV-Z]');
