-- What a shadow contract (<partner>.shadow.toml) would have done differently with a partner's
-- live requests: one row per request that differed, kept until the shadow is promoted or
-- dropped. Every process on the database adds to it; GET /admin/partners/{id}/shadow lists it.
CREATE TABLE shadow_diffs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner       TEXT NOT NULL,
    shadow_sha256 TEXT NOT NULL,
    at            BIGINT NOT NULL,
    request_id    TEXT NOT NULL,
    kind          TEXT NOT NULL,
    detail        TEXT NOT NULL
);
CREATE INDEX shadow_diffs_partner ON shadow_diffs (partner, shadow_sha256, id);
