-- Who sits at each case's dukat bord (from case.routed): a handläggare may read the cases they
-- sit on, an enhetschef those with a seat in their units.
CREATE TABLE case_seats (
    tenant     text NOT NULL,
    case_id    uuid NOT NULL,
    officer_id text NOT NULL,
    unit       text NOT NULL,
    PRIMARY KEY (case_id, officer_id)
);
CREATE INDEX case_seats_by_officer ON case_seats (tenant, officer_id);
CREATE INDEX case_seats_by_unit ON case_seats (tenant, unit);
SELECT lots_tenant_scope('case_seats');
