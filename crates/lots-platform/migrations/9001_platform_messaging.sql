-- Platform tables, created in every service's own schema (search_path is the schema).
-- Versions 9000+ belong to lots-platform; a service's own migrations start at 1.

-- Transactional outbox: events written with the state change, published by the relay.
CREATE TABLE outbox (
    id          uuid PRIMARY KEY,
    subject     text        NOT NULL,
    payload     bytea       NOT NULL,
    traceparent text,
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at     timestamptz
);
CREATE INDEX outbox_pending ON outbox (created_at, id) WHERE status = 'pending';

-- Inbox: ids of events this service has handled, written in the effect's transaction.
CREATE TABLE inbox (
    event_id    uuid PRIMARY KEY,
    event_type  text        NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now()
);

-- Last applied per-case version, per producing service.
CREATE TABLE case_cursor (
    case_id     uuid    NOT NULL,
    source      text    NOT NULL,
    version     bigint  NOT NULL,
    PRIMARY KEY (case_id, source)
);

-- Events that kept failing: kept with their error, never silently dropped.
CREATE TABLE dead_letter (
    event_id    uuid PRIMARY KEY,
    subject     text        NOT NULL,
    payload     bytea       NOT NULL,
    error       text        NOT NULL,
    deliveries  bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
