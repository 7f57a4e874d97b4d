-- Row-level security by tenant (lots_tenant_scope, platform migration 9002).
SELECT lots_tenant_scope('officers');
SELECT lots_tenant_scope('busy');
SELECT lots_tenant_scope('cases');
SELECT lots_tenant_scope('meetings');
SELECT lots_tenant_scope('bookings');
SELECT lots_tenant_scope('tasks');
SELECT lots_tenant_scope('company_officers');
SELECT lots_tenant_scope('task_changes');
SELECT lots_tenant_scope('command_replies');
