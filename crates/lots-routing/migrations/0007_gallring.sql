-- Gallring: when a case ended, and when its personal data was erased.
ALTER TABLE cases ADD COLUMN ended_at timestamptz;
ALTER TABLE cases ADD COLUMN erased_at timestamptz;
CREATE INDEX cases_to_erase ON cases (tenant, ended_at) WHERE state = 'ended' AND erased_at IS NULL;
