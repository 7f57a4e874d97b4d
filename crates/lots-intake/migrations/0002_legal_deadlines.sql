-- Legal deadlines (PBL): when the application became complete, and the one allowed extension.
ALTER TABLE cases ADD COLUMN application_complete_at timestamptz;
ALTER TABLE cases ADD COLUMN deadline_extended_at timestamptz;
ALTER TABLE cases ADD COLUMN extension_reason text;
