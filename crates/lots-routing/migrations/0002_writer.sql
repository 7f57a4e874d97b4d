-- One writer per tenant: the lease that says which routing replica writes a tenant now.
-- `epoch` grows on every takeover; a writer renews with its epoch in each batch transaction,
-- so a writer that lost its lease cannot commit another batch.
CREATE TABLE writer_leases (
    tenant      text        PRIMARY KEY,
    holder      uuid        NOT NULL,
    epoch       bigint      NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Per case: the last version routing emitted into each consuming service's view (lots-events
-- `Views`), and the officer who owns the case (the coordinating seat).
ALTER TABLE cases ADD COLUMN views text NOT NULL DEFAULT '{}';
ALTER TABLE cases ADD COLUMN owner_officer text;
