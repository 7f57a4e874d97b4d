-- Dead letters an operator can act on: which case, producer and version each one is, whether it
-- is still open, and what became of it. A later event of the same case and producer waits
-- (held_behind) until the open letter before it is replayed or skipped.
ALTER TABLE dead_letter
    ADD COLUMN tenant      text        NOT NULL DEFAULT '',
    ADD COLUMN event_type  text        NOT NULL DEFAULT '',
    ADD COLUMN case_id     uuid,
    ADD COLUMN source      text,
    ADD COLUMN version     bigint,
    ADD COLUMN status      text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'replayed', 'skipped')),
    ADD COLUMN held_behind uuid,
    ADD COLUMN resolved_by text,
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN note        text;
CREATE INDEX dead_letter_open_by_case ON dead_letter (case_id, source, version) WHERE status = 'open';
