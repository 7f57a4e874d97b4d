-- Routing owns officers, their calendars, meetings and tasks (schema `routing`).

-- Officers as configured; `active = false` once removed from the configuration (tasks stay).
CREATE TABLE officers (
    tenant           text        NOT NULL,
    id               text        NOT NULL,
    name             text        NOT NULL,
    email            text        NOT NULL,
    unit             text        NOT NULL,
    competences      text[]      NOT NULL,
    capacity         integer     NOT NULL,
    active           boolean     NOT NULL DEFAULT true,
    last_assigned_at timestamptz,
    -- Last task_changes.seq of this officer; bumped under the row lock, so in commit order.
    change_seq       bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id)
);

-- Busy time from calendars (iCalendar files, the admin API) and absences.
CREATE TABLE busy (
    id          bigserial   PRIMARY KEY,
    tenant      text        NOT NULL,
    officer_id  text        NOT NULL,
    source      text        NOT NULL,
    during      tstzrange   NOT NULL,
    note        text,
    FOREIGN KEY (tenant, officer_id) REFERENCES officers (tenant, id)
);
CREATE INDEX busy_by_officer ON busy USING gist (during);
CREATE INDEX busy_by_officer_id ON busy (tenant, officer_id);

-- Routing's copy of what it needs from case.registered.
CREATE TABLE cases (
    id              uuid        PRIMARY KEY,
    tenant          text        NOT NULL,
    reference       text        NOT NULL,
    case_type       text        NOT NULL,
    org_nr          text        NOT NULL,
    company_name    text        NOT NULL,
    contact_name    text        NOT NULL,
    contact_email   text        NOT NULL,
    registered_at   timestamptz NOT NULL,
    -- open, unroutable, ended (withdrawn or closed)
    state           text        NOT NULL DEFAULT 'open',
    unroutable_reason text,
    -- Number of events routing has emitted for this case.
    version         bigint      NOT NULL DEFAULT 0
);
CREATE INDEX cases_by_company ON cases (tenant, org_nr);

CREATE TABLE meetings (
    id          uuid        PRIMARY KEY,
    case_id     uuid        NOT NULL REFERENCES cases (id),
    tenant      text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('proposed', 'booked', 'cancelled')),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    location    text        NOT NULL,
    sequence    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- One live meeting per case: a redelivered case.registered cannot book a second.
CREATE UNIQUE INDEX meetings_one_live_per_case ON meetings (case_id) WHERE status <> 'cancelled';

-- An officer's booked meeting time. The exclusion constraint is the guarantee against double
-- booking: two cases routed at the same moment cannot both hold overlapping time.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
CREATE TABLE bookings (
    meeting_id  uuid        NOT NULL REFERENCES meetings (id),
    tenant      text        NOT NULL,
    officer_id  text        NOT NULL,
    during      tstzrange   NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
        tenant public.gist_text_ops WITH =,
        officer_id public.gist_text_ops WITH =,
        during WITH &&
    ) WHERE (active)
);
CREATE INDEX bookings_by_meeting ON bookings (meeting_id);

CREATE TABLE tasks (
    id          uuid        PRIMARY KEY,
    case_id     uuid        NOT NULL REFERENCES cases (id),
    meeting_id  uuid        NOT NULL REFERENCES meetings (id),
    tenant      text        NOT NULL,
    officer_id  text        NOT NULL,
    unit        text        NOT NULL,
    competence  text        NOT NULL,
    optional    boolean     NOT NULL DEFAULT false,
    status      text        NOT NULL CHECK (status IN ('offered', 'accepted', 'declined', 'completed', 'cancelled')),
    reason      text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX tasks_by_officer ON tasks (tenant, officer_id, status);
CREATE INDEX tasks_by_meeting ON tasks (meeting_id);
-- One open seat per officer and meeting.
CREATE UNIQUE INDEX tasks_one_open_per_officer ON tasks (meeting_id, officer_id)
    WHERE status IN ('offered', 'accepted');

-- Who has served a company in a competence: continuity (the company keeps its kommunkontakt)
-- is one index lookup, however many cases the company has had.
CREATE TABLE company_officers (
    tenant      text        NOT NULL,
    org_nr      text        NOT NULL,
    competence  text        NOT NULL,
    officer_id  text        NOT NULL,
    last_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant, org_nr, competence, officer_id)
);

-- Every change to an officer's tasks, numbered per officer in commit order (the officer row
-- is locked while numbering): what WatchTasks replays after a cursor.
CREATE TABLE task_changes (
    tenant      text        NOT NULL,
    officer_id  text        NOT NULL,
    seq         bigint      NOT NULL,
    task_id     uuid        NOT NULL REFERENCES tasks (id),
    kind        text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, officer_id, seq)
);
