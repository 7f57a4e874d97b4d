-- The audit log: who read, changed or was refused what. Entries are written by the service that
-- acts (a change's in the same transaction as the change; a read's before the answer is sent)
-- and never change: UPDATE, DELETE and TRUNCATE are refused by a trigger (and not granted).
CREATE TABLE audit_log (
    id          uuid        PRIMARY KEY,
    -- '' for a call whose municipality is unknown (no valid token).
    tenant      text        NOT NULL,
    at          timestamptz NOT NULL,
    issuer      text        NOT NULL,
    subject     text        NOT NULL,
    name        text,
    roles       text[]      NOT NULL,
    client_id   text,
    -- read, change or refused.
    action      text        NOT NULL CHECK (action IN ('read', 'change', 'refused')),
    rpc         text        NOT NULL,
    objects     text[]      NOT NULL,
    -- ok, or the gRPC status code of a refusal.
    result      text        NOT NULL,
    reason      text,
    trace_id    text,
    -- What changed, with personal data left out.
    changes     jsonb,
    -- The writing transaction: entries are chained in commit order (see src/audit.rs).
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX audit_log_by_xid ON audit_log (xid);
CREATE INDEX audit_log_by_object ON audit_log USING gin (objects);

-- The hash chain, per tenant: entry `seq` hashes the previous hash and the entry's canonical
-- form. Written only by the chainer, one at a time.
CREATE TABLE audit_chain (
    tenant      text        NOT NULL,
    seq         bigint      NOT NULL,
    entry_id    uuid        NOT NULL UNIQUE REFERENCES audit_log (id),
    prev_hash   bytea       NOT NULL,
    hash        bytea       NOT NULL,
    PRIMARY KEY (tenant, seq)
);

-- Where the chainer has read to (every entry of a transaction below it is chained).
CREATE TABLE audit_chain_cursor (
    one         boolean     PRIMARY KEY DEFAULT true CHECK (one),
    chained_to  xid8        NOT NULL
);

CREATE FUNCTION lots_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION lots_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION lots_append_only();
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION lots_append_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION lots_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_chain FROM PUBLIC;
