-- Row-level security by tenant (lots_tenant_scope, platform migration 9002).
SELECT lots_tenant_scope('cases');
SELECT lots_tenant_scope('clocks');
SELECT lots_tenant_scope('alerts');
