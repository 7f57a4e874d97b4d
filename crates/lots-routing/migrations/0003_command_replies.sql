-- The answer to every command a tenant's writer applied, by the command's id, so a command
-- that is retried (its reply was lost, or the writer moved to another replica) is applied
-- once and answered with its first result. Pruned after a day.
CREATE TABLE command_replies (
    id       uuid        PRIMARY KEY,
    tenant   text        NOT NULL,
    reply    text        NOT NULL,
    done_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX command_replies_done_at ON command_replies (tenant, done_at);
