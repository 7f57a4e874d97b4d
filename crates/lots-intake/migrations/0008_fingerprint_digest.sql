-- Registration fingerprints are digests from now on (they held the organisation number and the
-- contact); a retry of a registration made before this version is answered as a reused key.
UPDATE cases SET request_fingerprint = md5(request_fingerprint) WHERE request_fingerprint LIKE '[%';
