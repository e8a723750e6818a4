-- Who opened each upload session (the token's subject; NULL without access
-- control), so that open sessions can be capped per user and per repository,
-- and the indexes those counts and the staging-file reconciliation read.
ALTER TABLE uploads ADD COLUMN subject TEXT;
CREATE INDEX uploads_by_subject ON uploads (subject);
CREATE INDEX uploads_by_repository ON uploads (repository);
CREATE INDEX uploads_by_staging ON uploads (staging);
