-- Events carry a company key (a keyed hash of the organisation number) instead of the number,
-- which for a sole trader is a personnummer. Numbers stored before are erased; continuity
-- (who served a company before) starts anew, keyed by the company key.
SELECT set_config('lots.tenant', '*', true);
ALTER TABLE cases RENAME COLUMN org_nr TO company_key;
UPDATE cases SET company_key = '';
DELETE FROM company_officers;
ALTER TABLE company_officers RENAME COLUMN org_nr TO company_key;
