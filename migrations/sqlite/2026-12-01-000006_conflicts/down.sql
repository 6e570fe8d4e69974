DROP TABLE conflict_fields;
DROP TABLE conflicts;
ALTER TABLE journal DROP COLUMN version;
ALTER TABLE xrefs DROP COLUMN seen_version;
ALTER TABLE tickets DROP COLUMN open_conflicts;
ALTER TABLE tickets DROP COLUMN field_stamps;
