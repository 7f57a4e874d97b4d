-- 0008 ran without a row-level-security scope, so it saw no rows: digest the old registration
-- fingerprints (they held the organisation number and the contact) in every tenant.
SELECT set_config('lots.tenant', '*', true);
UPDATE cases SET request_fingerprint = md5(request_fingerprint) WHERE request_fingerprint LIKE '[%';
