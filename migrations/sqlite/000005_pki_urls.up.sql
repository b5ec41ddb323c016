-- Where certificates say their issuer, CRLs and OCSP responder are published
-- (POST /v1/pki/config/urls): each a JSON list of absolute http(s) URLs,
-- written into every certificate issued afterwards as Authority Information
-- Access and CRL Distribution Points. Cluster-wide, so on pki_config's one row.
ALTER TABLE pki_config ADD COLUMN issuing_certificates TEXT NOT NULL DEFAULT '[]';
ALTER TABLE pki_config ADD COLUMN crl_distribution_points TEXT NOT NULL DEFAULT '[]';
ALTER TABLE pki_config ADD COLUMN ocsp_servers TEXT NOT NULL DEFAULT '[]';
