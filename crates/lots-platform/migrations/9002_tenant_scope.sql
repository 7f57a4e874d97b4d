-- Row-level security by tenant, defined once for every service's tables: a connection sees a
-- row only while its scope (lots.tenant, set by lots-platform on every connection it hands out)
-- is the row's tenant or '*' (background work that serves every tenant). A query that forgets
-- its tenant filter sees nothing more. FORCE applies it to the table's owner too.
CREATE FUNCTION lots_tenant_scope(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_scope ON %s USING (tenant = current_setting(''lots.tenant'', true)'
        ' OR current_setting(''lots.tenant'', true) = ''*'')', tbl);
END
$$;
