package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PKIURLs are where the engine's issuers, CRLs and OCSP responder are
// published: every certificate signed carries them (Authority Information
// Access and CRL Distribution Points). They are cluster-wide, stored on
// pki_config's one row; nil lists when none are set.
type PKIURLs struct {
	IssuingCertificates   []string
	CRLDistributionPoints []string
	OCSPServers           []string
}

// PKIURLsChange sets the lists that are not nil (an empty list clears
// one) and keeps the others, as Vault's config/urls write does.
type PKIURLsChange struct {
	IssuingCertificates   *[]string
	CRLDistributionPoints *[]string
	OCSPServers           *[]string
}

const pkiURLColumns = `issuing_certificates, crl_distribution_points, ocsp_servers`

// pkiIssuerColumnsOfI is pkiIssuerColumns qualified by the alias i, for
// the queries that join pki_config (which has an id too).
var pkiIssuerColumnsOfI = qualify("i", pkiIssuerColumns)

// pkiSigningColumnsOfI is pkiIssuerColumnsOfI without the CRL, which
// signing never needs and which grows with every revocation.
var pkiSigningColumnsOfI = strings.Replace(pkiIssuerColumnsOfI, "i.crl, ", "NULL, ", 1)

func qualify(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for k, p := range parts {
		parts[k] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// urlRow scans the three URL columns, NULL (no pki_config row) as none.
type urlRow struct{ issuing, crl, ocsp sql.NullString }

func (x *urlRow) dest() []any { return []any{&x.issuing, &x.crl, &x.ocsp} }

func (x *urlRow) urls() (PKIURLs, error) {
	var u PKIURLs
	for _, c := range []struct {
		col string
		raw sql.NullString
		dst *[]string
	}{
		{"issuing_certificates", x.issuing, &u.IssuingCertificates},
		{"crl_distribution_points", x.crl, &u.CRLDistributionPoints},
		{"ocsp_servers", x.ocsp, &u.OCSPServers},
	} {
		if !c.raw.Valid || c.raw.String == "" {
			continue
		}
		if err := json.Unmarshal([]byte(c.raw.String), c.dst); err != nil {
			return PKIURLs{}, fmt.Errorf("storage: pki_config.%s is not a JSON list: %w", c.col, err)
		}
		if len(*c.dst) == 0 {
			*c.dst = nil
		}
	}
	return u, nil
}

// urlParam is a list to store as JSON, or NULL (keep the stored one) for nil.
func urlParam(list *[]string) (sql.NullString, error) {
	if list == nil {
		return sql.NullString{}, nil
	}
	if len(*list) == 0 {
		return sql.NullString{String: "[]", Valid: true}, nil
	}
	b, err := json.Marshal(*list)
	return sql.NullString{String: string(b), Valid: true}, err
}

// UpdatePKIURLs applies change in one statement, so concurrent writes of
// different lists on several nodes both hold, and returns the lists now
// stored.
func (db *DB) UpdatePKIURLs(ctx context.Context, change PKIURLsChange) (PKIURLs, error) {
	var params [3]sql.NullString
	for k, list := range []*[]string{change.IssuingCertificates, change.CRLDistributionPoints, change.OCSPServers} {
		p, err := urlParam(list)
		if err != nil {
			return PKIURLs{}, err
		}
		params[k] = p
	}
	var row urlRow
	err := db.q().QueryRowContext(ctx, `INSERT INTO pki_config (id, `+pkiURLColumns+`)
		VALUES (1, COALESCE($1, '[]'), COALESCE($2, '[]'), COALESCE($3, '[]'))
		ON CONFLICT (id) DO UPDATE SET
			issuing_certificates = COALESCE($1, pki_config.issuing_certificates),
			crl_distribution_points = COALESCE($2, pki_config.crl_distribution_points),
			ocsp_servers = COALESCE($3, pki_config.ocsp_servers)
		RETURNING `+pkiURLColumns, params[0], params[1], params[2]).Scan(row.dest()...)
	if err != nil {
		return PKIURLs{}, classify(err)
	}
	return row.urls()
}

// PKIURLs reads the URLs; none set is not an error.
func (db *DB) PKIURLs(ctx context.Context) (PKIURLs, error) {
	var row urlRow
	err := db.q().QueryRowContext(ctx, `SELECT `+pkiURLColumns+` FROM pki_config WHERE id = 1`).Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return PKIURLs{}, nil
	}
	if err != nil {
		return PKIURLs{}, classify(err)
	}
	return row.urls()
}

// PKISigning is what issuance reads in one round trip: the issuer
// (without its CRL), the URLs the certificates it signs must carry, and the
// revocation of the certificate with the serial the caller asked about
// (the issuer's own, when the caller knows it).
type PKISigning struct {
	Issuer PKIIssuer
	URLs   PKIURLs
	// SerialIssued is true when the serial asked about is a certificate
	// stored here, SerialRevokedAt when it was revoked (zero: it was not).
	SerialIssued    bool
	SerialRevokedAt time.Time
}

// PKISigningIssuer reads an issuer as PKIIssuer does ("" : the default)
// and, in the same query, the URLs and the revocation of the certificate
// serial names ("" asks about none).
func (db *DB) PKISigningIssuer(ctx context.Context, id, serial string) (PKISigning, error) {
	var (
		row     issuerRow
		urls    urlRow
		issued  bool
		revoked sql.NullTime
		err     error
	)
	dest := append(append(row.dest(), urls.dest()...), &issued, &revoked)
	const cols = `, c.issuing_certificates, c.crl_distribution_points, c.ocsp_servers, r.serial IS NOT NULL, r.revoked_at`
	if id == "" {
		err = db.q().QueryRowContext(ctx, `SELECT `+pkiSigningColumnsOfI+cols+`
			FROM pki_config c JOIN pki_issuers i ON i.id = c.default_issuer
			LEFT JOIN certificates r ON r.serial = $1 WHERE c.id = 1`, serial).Scan(dest...)
	} else {
		err = db.q().QueryRowContext(ctx, `SELECT `+pkiSigningColumnsOfI+cols+`
			FROM pki_issuers i LEFT JOIN pki_config c ON c.id = 1
			LEFT JOIN certificates r ON r.serial = $2 WHERE i.id = $1`, id, serial).Scan(dest...)
	}
	if err != nil {
		return PKISigning{}, notFound(err)
	}
	u, err := urls.urls()
	if err != nil {
		return PKISigning{}, err
	}
	return PKISigning{Issuer: row.issuer(), URLs: u, SerialIssued: issued, SerialRevokedAt: timeOf(revoked)}, nil
}
