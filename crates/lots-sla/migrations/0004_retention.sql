-- Retention finds ended cases by their end event's time (see retention_jobs in app.rs).
CREATE INDEX case_events_ends ON case_events (at) WHERE kind IN ('case.closed', 'case.withdrawn');
