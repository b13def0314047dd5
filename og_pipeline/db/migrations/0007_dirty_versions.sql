-- Dirty markers carry a version. Every write that marks a contact gives its marker a new version
-- (ON CONFLICT (customer_id) DO UPDATE SET version = EXCLUDED.version), and the stats step
-- deletes a marker only while it still has the version the step read in its snapshot. Without
-- it, a change committed to an already-marked contact while the stats ran left no new marker,
-- the step then deleted the old one, and the contact's stats stayed wrong until it changed again.
--
-- Values from a sequence are unique but not in commit order, so the stats step compares versions
-- for equality only, never "older than". `marked_at` stays the time of the first mark since the
-- last recompute (how long a contact has waited); only `version` moves.
CREATE SEQUENCE og.dirty_contacts_version_seq AS bigint;
ALTER TABLE og.dirty_contacts
    ADD COLUMN version bigint NOT NULL DEFAULT nextval('og.dirty_contacts_version_seq');
ALTER SEQUENCE og.dirty_contacts_version_seq OWNED BY og.dirty_contacts.version;
