-- The transaction that wrote each alert, so watchers follow alerts in commit order: every alert
-- whose transaction is older than a snapshot's xmin is visible in it (see src/watch.rs).
-- Added without a default first, so existing rows are not rewritten; NULL means "written long
-- before any watcher's snapshot".
ALTER TABLE alerts ADD COLUMN xid xid8;
ALTER TABLE alerts ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX alerts_by_xid ON alerts (xid);
