-- Gallring: when a closed or withdrawn case's personal data was erased.
ALTER TABLE cases ADD COLUMN erased_at timestamptz;
CREATE INDEX cases_to_erase ON cases (tenant, updated_at) WHERE status IN ('closed', 'withdrawn') AND erased_at IS NULL;
