-- Lifecycle calls (await, resume, close, withdraw, complete, extend) by idempotency key, so a
-- retried call is applied once. Holds no personal data: a retry answers with the case as stored.
CREATE TABLE lifecycle_requests (
    tenant           text        NOT NULL,
    idempotency_key  text        NOT NULL,
    case_id          uuid        NOT NULL,
    fingerprint      text        NOT NULL,
    done_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, idempotency_key)
);
