-- Chain heads of refused unknown callers (tenant '') were queued for a subject with an empty
-- token, which NATS refuses: drop them so they cannot hold up the relay.
DELETE FROM outbox WHERE status = 'pending' AND subject LIKE '%..audit.%';
