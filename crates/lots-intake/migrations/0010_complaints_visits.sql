-- Klagomål and company visits: intake records them; sla keeps their commitments from the events.

CREATE TABLE complaints (
    id                   uuid        PRIMARY KEY,
    tenant               text        NOT NULL,
    reference            text        NOT NULL,
    ref_year             integer     NOT NULL,
    ref_number           bigint      NOT NULL,
    category             text        NOT NULL,
    channel              text        NOT NULL,
    status               text        NOT NULL CHECK (status IN ('registered', 'acknowledged', 'answered', 'closed')),
    about_case_id        uuid,
    about_case_reference text        NOT NULL DEFAULT '',
    about_unit           text        NOT NULL DEFAULT '',
    about_officer        text        NOT NULL DEFAULT '',
    description          text        NOT NULL,
    anonymous            boolean     NOT NULL,
    -- Empty for an anonymous complaint: no contact is stored.
    contact_name         text        NOT NULL DEFAULT '',
    contact_phone        text        NOT NULL DEFAULT '',
    contact_email        text        NOT NULL DEFAULT '',
    org_nr               text        NOT NULL DEFAULT '',
    company_name         text        NOT NULL DEFAULT '',
    secrecy              boolean     NOT NULL,
    handler              text        NOT NULL,
    handler_unit         text        NOT NULL,
    -- Why it was last handed to another officer.
    reassign_reason      text,
    answer               text,
    action_taken         text,
    registered_at        timestamptz NOT NULL,
    acknowledged_at      timestamptz,
    answered_at          timestamptz,
    closed_at            timestamptz,
    updated_at           timestamptz NOT NULL,
    registered_by        text        NOT NULL,
    -- Events intake has emitted for the complaint, and the last version in each consumer's view.
    version              bigint      NOT NULL,
    views                text        NOT NULL DEFAULT '{}',
    idempotency_key      text        NOT NULL,
    request_fingerprint  text        NOT NULL,
    erased_at            timestamptz,
    CONSTRAINT complaints_idempotency_key UNIQUE (tenant, idempotency_key),
    CONSTRAINT complaints_reference UNIQUE (reference)
);
CREATE INDEX complaints_by_tenant ON complaints (tenant, id DESC);
CREATE INDEX complaints_by_case ON complaints (about_case_id) WHERE about_case_id IS NOT NULL;

CREATE TABLE visits (
    id                   uuid        PRIMARY KEY,
    tenant               text        NOT NULL,
    reference            text        NOT NULL,
    ref_year             integer     NOT NULL,
    ref_number           bigint      NOT NULL,
    org_nr               text        NOT NULL,
    company_name         text        NOT NULL,
    visit_date           date        NOT NULL,
    kind                 text        NOT NULL CHECK (kind IN ('lotsande', 'other')),
    participants         text[]      NOT NULL,
    -- [{"name": …, "role": …}]
    company_participants text        NOT NULL,
    topics               text[]      NOT NULL,
    notes                text        NOT NULL,
    story                text        NOT NULL DEFAULT '',
    story_consent        boolean     NOT NULL DEFAULT false,
    registered_at        timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    registered_by        text        NOT NULL,
    version              bigint      NOT NULL,
    views                text        NOT NULL DEFAULT '{}',
    idempotency_key      text        NOT NULL,
    request_fingerprint  text        NOT NULL,
    erased_at            timestamptz,
    CONSTRAINT visits_idempotency_key UNIQUE (tenant, idempotency_key),
    CONSTRAINT visits_reference UNIQUE (reference)
);
CREATE INDEX visits_by_tenant ON visits (tenant, visit_date, id);

CREATE TABLE visit_follow_ups (
    id          uuid        PRIMARY KEY,
    tenant      text        NOT NULL,
    visit_id    uuid        NOT NULL REFERENCES visits (id),
    number      integer     NOT NULL,
    what        text        NOT NULL,
    owner       text        NOT NULL,
    owner_unit  text        NOT NULL,
    due_date    date        NOT NULL,
    done_at     timestamptz,
    done_note   text,
    UNIQUE (visit_id, number)
);
CREATE INDEX visit_follow_ups_open ON visit_follow_ups (tenant, owner) WHERE done_at IS NULL;

-- Reference numbers per register ('K' klagomål, 'B' besök), tenant and year, without gaps.
CREATE TABLE series_counter (
    tenant  text    NOT NULL,
    series  text    NOT NULL,
    year    integer NOT NULL,
    last    bigint  NOT NULL,
    PRIMARY KEY (tenant, series, year)
);

SELECT lots_tenant_scope('complaints');
SELECT lots_tenant_scope('visits');
SELECT lots_tenant_scope('visit_follow_ups');
SELECT lots_tenant_scope('series_counter');
