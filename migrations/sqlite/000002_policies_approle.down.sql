DROP TABLE IF EXISTS approle_tokens;
DROP TABLE IF EXISTS approle_secret_ids;
DROP TABLE IF EXISTS approle_roles;
DROP TABLE IF EXISTS policies;
