-- Intake owns company cases. Tables live in the `intake` schema (the pool's search_path).

CREATE TABLE cases (
    id                  uuid PRIMARY KEY,
    tenant              text        NOT NULL,
    reference           text        NOT NULL,
    ref_year            integer     NOT NULL,
    ref_number          bigint      NOT NULL,
    org_nr              text        NOT NULL,
    legal_form          text        NOT NULL,
    company_name        text        NOT NULL,
    contact_name        text        NOT NULL,
    contact_phone       text        NOT NULL,
    contact_email       text        NOT NULL,
    case_type           text        NOT NULL,
    description         text        NOT NULL,
    channel             text        NOT NULL,
    status              text        NOT NULL CHECK (status IN ('registered', 'routed', 'meeting_booked',
                            'in_progress', 'decided', 'closed', 'waiting_for_company', 'withdrawn', 'unroutable')),
    -- While waiting for the company: the status to return to.
    resume_status       text,
    waiting_reason      text,
    outcome             text,
    decision            text,
    -- Number of events intake has emitted for this case (the per-case event version).
    version             bigint      NOT NULL,
    idempotency_key     text        NOT NULL,
    request_fingerprint text        NOT NULL,
    registered_by       text        NOT NULL,
    registered_at       timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CONSTRAINT cases_idempotency_key UNIQUE (tenant, idempotency_key),
    CONSTRAINT cases_reference UNIQUE (reference),
    CONSTRAINT cases_reference_number UNIQUE (tenant, ref_year, ref_number)
);

CREATE INDEX cases_by_tenant ON cases (tenant, id DESC);
CREATE INDEX cases_by_org_nr ON cases (org_nr, id DESC);

-- Last reference number handed out per tenant and year. Incremented in the case's own
-- transaction, so a rolled-back registration leaves no gap and concurrent ones serialize.
CREATE TABLE reference_counter (
    tenant  text    NOT NULL,
    year    integer NOT NULL,
    last    bigint  NOT NULL,
    PRIMARY KEY (tenant, year)
);
