-- Complaints and visit follow-ups carry commitments like cases: they are rows of `cases` with
-- their own kind ('complaint', 'follow_up'); a follow-up's target is its due date in working
-- minutes from when it was added.
ALTER TABLE cases ADD COLUMN kind text NOT NULL DEFAULT 'case' CHECK (kind IN ('case', 'complaint', 'follow_up'));
ALTER TABLE cases ADD COLUMN anonymous boolean NOT NULL DEFAULT false;
ALTER TABLE cases ADD COLUMN target_minutes integer;
ALTER TABLE cases ADD COLUMN due_date date;
