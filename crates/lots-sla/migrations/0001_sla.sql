-- The sla service owns servicegaranti clocks and alerts (schema `sla`).

-- What sla knows about a case.
CREATE TABLE cases (
    id            uuid        PRIMARY KEY,
    tenant        text        NOT NULL,
    reference     text        NOT NULL,
    case_type     text        NOT NULL,
    -- The case's handläggare: the officer of its first seat, once routed.
    officer_id    text,
    unit          text        NOT NULL DEFAULT ''
);
CREATE INDEX cases_by_reference ON cases (reference);

-- The case's events that clocks are computed from (a clock is a pure function of these).
CREATE TABLE case_events (
    event_id    uuid        PRIMARY KEY,
    case_id     uuid        NOT NULL REFERENCES cases (id),
    kind        text        NOT NULL,
    at          timestamptz NOT NULL,
    recorded    bigserial
);
CREATE INDEX case_events_by_case ON case_events (case_id, at, recorded);

-- One clock per case and commitment, as last evaluated.
CREATE TABLE clocks (
    id               uuid        PRIMARY KEY,
    case_id          uuid        NOT NULL REFERENCES cases (id),
    tenant           text        NOT NULL,
    commitment       text        NOT NULL,
    state            text        NOT NULL,
    started_at       timestamptz,
    stopped_at       timestamptz,
    due_at           timestamptz,
    deadline_version integer     NOT NULL DEFAULT 0,
    -- When the clock was first evaluated (for the registration → clocks armed figure).
    armed_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (case_id, commitment)
);

-- What must happen when: warnings, breach, escalation steps. A stage fires once per deadline
-- version; the timer claims due rows with SKIP LOCKED, so replicas never fire one twice.
CREATE TABLE stages (
    clock_id         uuid        NOT NULL REFERENCES clocks (id),
    stage            text        NOT NULL,
    deadline_version integer     NOT NULL,
    due_at           timestamptz NOT NULL,
    fired_at         timestamptz,
    PRIMARY KEY (clock_id, stage, deadline_version)
);
CREATE INDEX stages_due ON stages (due_at) WHERE fired_at IS NULL;

-- Alerts as managers see them. The id is derived from clock, stage and deadline version.
CREATE TABLE alerts (
    id              uuid        PRIMARY KEY,
    seq             bigserial   UNIQUE,
    kind            text        NOT NULL,
    severity        integer     NOT NULL,
    tenant          text        NOT NULL,
    unit            text        NOT NULL,
    case_id         uuid        NOT NULL,
    reference       text        NOT NULL,
    clock_id        uuid        NOT NULL,
    commitment      text        NOT NULL,
    commitment_name text        NOT NULL,
    recipient       text        NOT NULL,
    level           integer     NOT NULL DEFAULT 0,
    due_at          timestamptz NOT NULL,
    fired_at        timestamptz NOT NULL,
    late            boolean     NOT NULL,
    open            boolean     NOT NULL,
    message         text        NOT NULL
);
CREATE INDEX alerts_by_tenant ON alerts (tenant, open, seq);
CREATE INDEX alerts_by_clock ON alerts (clock_id) WHERE open;
