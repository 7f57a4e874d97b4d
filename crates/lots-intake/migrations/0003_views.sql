-- The last version intake emitted into each consuming service's view (lots-events `Views`),
-- so every event can say which one precedes it there.
ALTER TABLE cases ADD COLUMN views text NOT NULL DEFAULT '{}';
