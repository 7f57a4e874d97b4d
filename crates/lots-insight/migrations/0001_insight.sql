-- The read side's models (schema `insight`). Every row is derived from events: `lots-insight
-- rebuild` empties these tables (and the inbox and cursors) and replays the stream.

-- A case or a complaint as the read side knows it.
CREATE TABLE cases (
    id                 uuid        PRIMARY KEY,
    tenant             text        NOT NULL,
    -- 'case' or 'complaint'.
    kind               text        NOT NULL,
    reference          text        NOT NULL,
    -- A case type key; 'klagomal' for a complaint.
    case_type          text        NOT NULL,
    company_key        text        NOT NULL DEFAULT '',
    company_name       text        NOT NULL DEFAULT '',
    legal_form         text        NOT NULL DEFAULT '',
    -- A legal person's organisation number (a sole trader's never reaches insight).
    org_nr             text,
    contact_name       text        NOT NULL DEFAULT '',
    contact_email      text        NOT NULL DEFAULT '',
    contact_phone      text        NOT NULL DEFAULT '',
    anonymous          boolean     NOT NULL DEFAULT false,
    registered_at      timestamptz NOT NULL,
    -- The company-facing status key (lots_domain::insight::STATUS_KEYS).
    status             text        NOT NULL,
    -- Where a case waiting for the company returns to.
    status_before_wait text,
    waiting_reason     text        NOT NULL DEFAULT '',
    -- The coordinating officer (företagslots) or complaint handler, and their unit.
    owner_officer      text        NOT NULL DEFAULT '',
    unit               text        NOT NULL DEFAULT '',
    meeting_id         uuid,
    meeting_starts_at  timestamptz,
    meeting_ends_at    timestamptz,
    meeting_location   text        NOT NULL DEFAULT '',
    meeting_booked     boolean     NOT NULL DEFAULT false,
    decided_at         timestamptz,
    ended_at           timestamptz,
    -- Gallring erased the personal data.
    erased             boolean     NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX cases_by_reference ON cases (tenant, reference);
CREATE INDEX cases_decided ON cases (tenant, decided_at) WHERE kind = 'case';

-- The company-facing status history.
CREATE TABLE history (
    event_id  uuid        PRIMARY KEY,
    case_id   uuid        NOT NULL REFERENCES cases (id),
    tenant    text        NOT NULL,
    at        timestamptz NOT NULL,
    status    text        NOT NULL
);
CREATE INDEX history_by_case ON history (case_id, at);

-- Every event of a case the clocks and breach reasons are computed from.
CREATE TABLE facts (
    event_id  uuid        PRIMARY KEY,
    case_id   uuid        NOT NULL REFERENCES cases (id),
    tenant    text        NOT NULL,
    kind      text        NOT NULL,
    at        timestamptz NOT NULL,
    -- The seats (task ids) it is about: a task event's one, a routing decision's required ones.
    tasks     text[]      NOT NULL DEFAULT '{}',
    recorded  bigserial
);
CREATE INDEX facts_by_case ON facts (case_id, at, recorded);

-- Seats at a case's dukat bord.
CREATE TABLE seats (
    task_id     uuid        PRIMARY KEY,
    case_id     uuid        NOT NULL REFERENCES cases (id),
    tenant      text        NOT NULL,
    meeting_id  uuid        NOT NULL,
    officer_id  text        NOT NULL,
    unit        text        NOT NULL,
    competence  text        NOT NULL,
    optional    boolean     NOT NULL DEFAULT false,
    -- offered, accepted, declined, completed or cancelled.
    state       text        NOT NULL
);
CREATE INDEX seats_by_case ON seats (case_id);

-- Each commitment of a case as evaluated at its latest event; a running clock whose due time
-- has passed since is broken (read time decides).
CREATE TABLE clocks (
    case_id          uuid        NOT NULL REFERENCES cases (id),
    tenant           text        NOT NULL,
    commitment       text        NOT NULL,
    name             text        NOT NULL,
    legal            boolean     NOT NULL,
    state            text        NOT NULL,
    started_at       timestamptz,
    stopped_at       timestamptz,
    due_at           timestamptz,
    -- Working time counted (pauses left out), up to the stop or the latest event.
    working_minutes  bigint      NOT NULL DEFAULT 0,
    -- Why it is broken, should it be: what stood at the due instant.
    reason           text,
    PRIMARY KEY (case_id, commitment)
);
CREATE INDEX clocks_by_tenant ON clocks (tenant, due_at);

-- The survey's NKI per Insikt area and period, as imported.
CREATE TABLE nki (
    tenant       text             NOT NULL,
    area         text             NOT NULL,
    period       text             NOT NULL,
    nki          double precision NOT NULL,
    respondents  integer          NOT NULL,
    imported_at  timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, area, period)
);

SELECT lots_tenant_scope('cases');
SELECT lots_tenant_scope('history');
SELECT lots_tenant_scope('facts');
SELECT lots_tenant_scope('seats');
SELECT lots_tenant_scope('clocks');
SELECT lots_tenant_scope('nki');
