-- How a token was obtained (token, approle, admin), recorded when it is made:
-- the audit log's auth_method and token lookup's path come from it. Before,
-- they were inferred from the display name and metadata, which whoever
-- creates a token chooses, so a created token could pass for an admin or
-- AppRole login. Tokens made before keep what that inference said.
ALTER TABLE tokens ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'token';
UPDATE tokens SET auth_method = 'approle' WHERE meta LIKE '%"role_name":%';
UPDATE tokens SET auth_method = 'admin' WHERE auth_method = 'token' AND display_name LIKE 'token-admin-%';
