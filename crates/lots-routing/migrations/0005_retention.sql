-- Retention deletes task changes by age (see lots_platform::retention).
CREATE INDEX task_changes_by_age ON task_changes (at);
