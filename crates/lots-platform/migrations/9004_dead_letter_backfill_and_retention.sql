-- Dead letters stored before 9003 get their tenant, case, producer and version from their
-- payload where it is a readable event (a payload that is not stays without a tenant).
SELECT set_config('lots.tenant', '*', true);
DO $$
DECLARE
    r record;
    p jsonb;
BEGIN
    FOR r IN SELECT event_id, payload FROM dead_letter WHERE tenant = '' AND case_id IS NULL LOOP
        BEGIN
            p := convert_from(r.payload, 'UTF8')::jsonb;
            UPDATE dead_letter SET
                tenant = COALESCE(p->>'tenant', ''),
                event_type = COALESCE(p->>'type', ''),
                case_id = (p->>'case_id')::uuid,
                source = p->>'source',
                version = (p->>'version')::bigint
            WHERE event_id = r.event_id;
        EXCEPTION WHEN others THEN
            -- Not a Lotsen event: it keeps no tenant.
            NULL;
        END;
    END LOOP;
END
$$;

-- Retention deletes by age: these keep its batches from scanning whole tables.
CREATE INDEX inbox_by_age ON inbox (handled_at);
CREATE INDEX outbox_sent_by_age ON outbox (sent_at) WHERE status = 'sent';
CREATE INDEX dead_letter_resolved_by_age ON dead_letter (resolved_at) WHERE status <> 'open';
