-- Row-level security: a connection sees a tenant's rows only while its scope (lots.tenant, set
-- by lots-platform for every connection it hands out) is that tenant or '*' (background work
-- that serves every tenant). A query that forgets its tenant filter sees nothing more.
ALTER TABLE officers ENABLE ROW LEVEL SECURITY;
ALTER TABLE officers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON officers USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE busy ENABLE ROW LEVEL SECURITY;
ALTER TABLE busy FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON busy USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE cases ENABLE ROW LEVEL SECURITY;
ALTER TABLE cases FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON cases USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE meetings ENABLE ROW LEVEL SECURITY;
ALTER TABLE meetings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON meetings USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE bookings ENABLE ROW LEVEL SECURITY;
ALTER TABLE bookings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON bookings USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tasks USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE company_officers ENABLE ROW LEVEL SECURITY;
ALTER TABLE company_officers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON company_officers USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE task_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE task_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON task_changes USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
ALTER TABLE command_replies ENABLE ROW LEVEL SECURITY;
ALTER TABLE command_replies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON command_replies USING (tenant = current_setting('lots.tenant', true) OR current_setting('lots.tenant', true) = '*');
