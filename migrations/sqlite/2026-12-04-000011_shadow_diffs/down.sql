DROP TABLE shadow_diffs;
