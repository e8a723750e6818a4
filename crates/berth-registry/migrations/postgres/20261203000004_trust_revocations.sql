-- Revocations of a removed trust rule ('trust' + rule id): the SQLite
-- migration of the same name says more.
ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('subject', 'login', 'pat', 'trust', 'repository'));
