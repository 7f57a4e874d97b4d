-- Row-level security: a connection sees a tenant's rows only while its scope (lots.tenant, set
-- by lots-platform for every connection it hands out) is that tenant or '*' (background work
-- that serves every tenant). A query that forgets its tenant filter sees nothing more.
ALTER TABLE cases ENABLE ROW LEVEL SECURITY;
ALTER TABLE cases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON cases USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE lifecycle_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE lifecycle_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON lifecycle_requests USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
