-- A credential may be bound to one major version of its partner's contract (when two are live
-- side by side): its tokens carry the binding, so the gateway serves that version without an
-- Ebond-Contract-Version header. NULL: the partner's default version.
ALTER TABLE credentials ADD COLUMN contract_major BIGINT;
ALTER TABLE access_tokens ADD COLUMN contract_major BIGINT;
