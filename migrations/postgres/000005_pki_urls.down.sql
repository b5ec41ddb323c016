ALTER TABLE pki_config DROP COLUMN ocsp_servers;
ALTER TABLE pki_config DROP COLUMN crl_distribution_points;
ALTER TABLE pki_config DROP COLUMN issuing_certificates;
