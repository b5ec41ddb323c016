package storage

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// PKIIssuer is a stored CA. KeyCiphertext is the private key as the
// barrier sealed it; storage never sees it in the clear. An issuer whose
// Certificate is empty is a key waiting for its CSR to be signed.
type PKIIssuer struct {
	ID            string
	CommonName    string
	KeyType       string
	KeyCiphertext []byte
	Certificate   string // PEM; empty while pending
	CAChain       string // PEM of the certificates above it, nearest first
	NotAfter      time.Time
	CRLNumber     int64
	CRL           []byte // DER of the latest CRL; nil before the first
	CRLNextUpdate time.Time
	CreatedAt     time.Time
}

// PKICertificate is an issued certificate (never its private key).
type PKICertificate struct {
	Serial      string
	IssuerID    string
	Subject     string
	SANs        string // JSON list
	NotBefore   time.Time
	NotAfter    time.Time
	RevokedAt   time.Time // zero: not revoked
	Certificate string    // PEM
}

// PKIRevoked is an entry of an issuer's CRL.
type PKIRevoked struct {
	Serial    string
	RevokedAt time.Time
}

// BuildCRL signs a new CRL for issuer, numbered number, listing revoked;
// it returns the DER and the CRL's next update.
type BuildCRL func(issuer PKIIssuer, number int64, revoked []PKIRevoked) (der []byte, nextUpdate time.Time, err error)

const pkiIssuerColumns = `id, common_name, key_type, key_ciphertext, certificate, ca_chain, not_after,
	crl_number, crl, crl_next_update, created_at`

const pkiCertColumns = `serial, issuer_id, subject, sans, not_before, not_after, revoked_at, certificate`

type issuerRow struct {
	i                 PKIIssuer
	cert              sql.NullString
	notAfter, nextUpd sql.NullTime
}

func (x *issuerRow) dest() []any {
	return []any{&x.i.ID, &x.i.CommonName, &x.i.KeyType, &x.i.KeyCiphertext, &x.cert, &x.i.CAChain, &x.notAfter,
		&x.i.CRLNumber, &x.i.CRL, &x.nextUpd, &x.i.CreatedAt}
}

func (x *issuerRow) issuer() PKIIssuer {
	i := x.i
	i.Certificate, i.NotAfter, i.CRLNextUpdate, i.CreatedAt = x.cert.String, timeOf(x.notAfter), timeOf(x.nextUpd), i.CreatedAt.UTC()
	return i
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// CreatePKIIssuer stores a new issuer (or pending key). With makeDefault,
// or when no default issuer exists yet and the issuer has a certificate,
// it becomes the default, in the same transaction.
func (db *DB) CreatePKIIssuer(ctx context.Context, i PKIIssuer, makeDefault bool) error {
	return db.inTx(ctx, func(tx querier) error {
		if err := insertIssuer(ctx, tx, i); err != nil || i.Certificate == "" {
			return err
		}
		return setDefaultIssuer(ctx, tx, i.ID, makeDefault)
	})
}

// CreatePKIIntermediate stores an intermediate generated here, records its
// certificate among its signer's (signed) and makes it the default, all in
// one transaction: a failure leaves neither an issuer nor a default
// without its certificate record.
func (db *DB) CreatePKIIntermediate(ctx context.Context, i PKIIssuer, signed PKICertificate) error {
	return db.inTx(ctx, func(tx querier) error {
		if err := insertIssuer(ctx, tx, i); err != nil {
			return err
		}
		if err := insertCertificate(ctx, tx, signed); err != nil {
			return err
		}
		return setDefaultIssuer(ctx, tx, i.ID, true)
	})
}

func insertIssuer(ctx context.Context, tx querier, i PKIIssuer) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO pki_issuers (`+pkiIssuerColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		i.ID, i.CommonName, i.KeyType, i.KeyCiphertext, nullString(i.Certificate), i.CAChain, nullTime(i.NotAfter),
		i.CRLNumber, i.CRL, nullTime(i.CRLNextUpdate), utc(i.CreatedAt))
	return err
}

// setDefaultIssuer makes id the default, or (force false) only when there
// is no default yet.
func setDefaultIssuer(ctx context.Context, tx querier, id string, force bool) error {
	q := `INSERT INTO pki_config (id, default_issuer) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET default_issuer = COALESCE(pki_config.default_issuer, excluded.default_issuer)`
	if force {
		q = `INSERT INTO pki_config (id, default_issuer) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET default_issuer = excluded.default_issuer`
	}
	_, err := tx.ExecContext(ctx, q, id)
	return err
}

// CompletePKIIssuer gives a pending issuer its signed certificate, chain,
// expiry and first CRL, and makes it the default. ErrNotFound if no pending
// issuer has that id.
func (db *DB) CompletePKIIssuer(ctx context.Context, i PKIIssuer) error {
	return db.inTx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, `UPDATE pki_issuers SET certificate = $2, ca_chain = $3, not_after = $4,
			crl_number = $5, crl = $6, crl_next_update = $7 WHERE id = $1 AND certificate IS NULL`,
			i.ID, i.Certificate, i.CAChain, utc(i.NotAfter), i.CRLNumber, i.CRL, utc(i.CRLNextUpdate))
		if err := affected(res, err); err != nil {
			return err
		}
		return setDefaultIssuer(ctx, tx, i.ID, true)
	})
}

// SetDefaultPKIIssuer makes an issuer with a certificate the default.
// ErrNotFound if there is none with that id.
func (db *DB) SetDefaultPKIIssuer(ctx context.Context, id string) error {
	return db.inTx(ctx, func(tx querier) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM pki_issuers WHERE id = $1 AND certificate IS NOT NULL`, id).Scan(&one); err != nil {
			return notFound(err)
		}
		return setDefaultIssuer(ctx, tx, id, true)
	})
}

// PKIIssuer reads one issuer or pending key by id; "" reads the default.
// ErrNotFound if absent (or no default is set).
func (db *DB) PKIIssuer(ctx context.Context, id string) (PKIIssuer, error) {
	var row issuerRow
	var err error
	if id == "" {
		err = db.q().QueryRowContext(ctx, `SELECT `+pkiIssuerColumns+` FROM pki_issuers
			WHERE id = (SELECT default_issuer FROM pki_config WHERE id = 1)`).Scan(row.dest()...)
	} else {
		err = db.q().QueryRowContext(ctx, `SELECT `+pkiIssuerColumns+` FROM pki_issuers WHERE id = $1`, id).Scan(row.dest()...)
	}
	if err != nil {
		return PKIIssuer{}, notFound(err)
	}
	return row.issuer(), nil
}

// PKIIssuers lists every issuer, pending keys included, oldest first, and
// the default issuer's id ("" when none).
func (db *DB) PKIIssuers(ctx context.Context) (issuers []PKIIssuer, defaultID string, err error) {
	rows, err := db.q().QueryContext(ctx, `SELECT `+pkiIssuerColumns+` FROM pki_issuers ORDER BY created_at, id`)
	if err != nil {
		return nil, "", classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var row issuerRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, "", classify(err)
		}
		issuers = append(issuers, row.issuer())
	}
	if err := rows.Err(); err != nil {
		return nil, "", classify(err)
	}
	var def sql.NullString
	err = db.q().QueryRowContext(ctx, `SELECT default_issuer FROM pki_config WHERE id = 1`).Scan(&def)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, "", classify(err)
	}
	return issuers, def.String, nil
}

// PKIIssuerExpiry is an issuer's id and the end of its certificate.
type PKIIssuerExpiry struct {
	ID       string
	NotAfter time.Time
}

// PKIIssuerExpiries lists the issuers that have a certificate with their
// expiry, oldest first, reading neither keys, certificates nor CRLs.
func (db *DB) PKIIssuerExpiries(ctx context.Context) ([]PKIIssuerExpiry, error) {
	rows, err := db.q().QueryContext(ctx, `SELECT id, not_after FROM pki_issuers
		WHERE certificate IS NOT NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []PKIIssuerExpiry
	for rows.Next() {
		var e PKIIssuerExpiry
		if err := rows.Scan(&e.ID, &e.NotAfter); err != nil {
			return nil, classify(err)
		}
		e.NotAfter = e.NotAfter.UTC()
		out = append(out, e)
	}
	return out, classify(rows.Err())
}

// PKIIssuerCertificate is an issuer's id and certificate.
type PKIIssuerCertificate struct {
	ID          string
	Certificate string // PEM
}

// PKIIssuerCertificates lists the issuers that have a certificate with it,
// oldest first, reading neither keys nor CRLs: OCSP indexes issuers by it.
func (db *DB) PKIIssuerCertificates(ctx context.Context) ([]PKIIssuerCertificate, error) {
	rows, err := db.q().QueryContext(ctx, `SELECT id, certificate FROM pki_issuers
		WHERE certificate IS NOT NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []PKIIssuerCertificate
	for rows.Next() {
		var c PKIIssuerCertificate
		if err := rows.Scan(&c.ID, &c.Certificate); err != nil {
			return nil, classify(err)
		}
		out = append(out, c)
	}
	return out, classify(rows.Err())
}

// PutPKIRole creates or replaces a role's settings document.
func (db *DB) PutPKIRole(ctx context.Context, name, document string, now time.Time) error {
	_, err := db.q().ExecContext(ctx, `INSERT INTO pki_roles (name, document, created_at, updated_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`,
		name, document, utc(now))
	return classify(err)
}

// PKIRole reads a role's settings document. ErrNotFound if absent.
func (db *DB) PKIRole(ctx context.Context, name string) (string, error) {
	var doc string
	if err := db.q().QueryRowContext(ctx, `SELECT document FROM pki_roles WHERE name = $1`, name).Scan(&doc); err != nil {
		return "", notFound(err)
	}
	return doc, nil
}

// PKIRoleNames lists the roles in byte order.
func (db *DB) PKIRoleNames(ctx context.Context) ([]string, error) {
	return sortedStrings(db.q().QueryContext(ctx, `SELECT name FROM pki_roles`))
}

// DeletePKIRole deletes a role. ErrNotFound if absent.
func (db *DB) DeletePKIRole(ctx context.Context, name string) error {
	res, err := db.q().ExecContext(ctx, `DELETE FROM pki_roles WHERE name = $1`, name)
	return affected(res, err)
}

// CreatePKICertificate records an issued certificate. ErrConflict if the
// serial exists; ErrNotFound if its issuer does not.
func (db *DB) CreatePKICertificate(ctx context.Context, c PKICertificate) error {
	return classify(insertCertificate(ctx, db.q(), c))
}

func insertCertificate(ctx context.Context, q querier, c PKICertificate) error {
	_, err := q.ExecContext(ctx, `INSERT INTO certificates (`+pkiCertColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		c.Serial, c.IssuerID, c.Subject, c.SANs, utc(c.NotBefore), utc(c.NotAfter), nullTime(c.RevokedAt), c.Certificate)
	return err
}

// PKICertificate reads a certificate by serial. ErrNotFound if absent.
func (db *DB) PKICertificate(ctx context.Context, serial string) (PKICertificate, error) {
	var (
		c       PKICertificate
		revoked sql.NullTime
	)
	err := db.q().QueryRowContext(ctx, `SELECT `+pkiCertColumns+` FROM certificates WHERE serial = $1`, serial).
		Scan(&c.Serial, &c.IssuerID, &c.Subject, &c.SANs, &c.NotBefore, &c.NotAfter, &revoked, &c.Certificate)
	if err != nil {
		return PKICertificate{}, notFound(err)
	}
	c.NotBefore, c.NotAfter, c.RevokedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), timeOf(revoked)
	return c, nil
}

// PKICertificateSerials lists every stored serial in byte order.
func (db *DB) PKICertificateSerials(ctx context.Context) ([]string, error) {
	return sortedStrings(db.q().QueryContext(ctx, `SELECT serial FROM certificates`))
}

// RevokePKICertificate marks a certificate revoked at at and, in the same
// transaction, stores its issuer's next CRL made by build. A certificate
// revoked already keeps its time and gets no new CRL; revoked tells which.
// ErrNotFound if the serial is unknown.
func (db *DB) RevokePKICertificate(ctx context.Context, serial string, at time.Time, build BuildCRL) (revoked bool, err error) {
	err = db.inTx(ctx, func(tx querier) error {
		var issuerID string
		err := tx.QueryRowContext(ctx, `UPDATE certificates SET revoked_at = $2 WHERE serial = $1 AND revoked_at IS NULL
			RETURNING issuer_id`, serial, utc(at)).Scan(&issuerID)
		if errors.Is(err, sql.ErrNoRows) {
			var one int
			return notFound(tx.QueryRowContext(ctx, `SELECT 1 FROM certificates WHERE serial = $1`, serial).Scan(&one))
		}
		if err != nil {
			return err
		}
		revoked = true
		return rebuildCRL(ctx, tx, issuerID, build)
	})
	return revoked, err
}

// RebuildPKICRL stores a new CRL for the issuer, numbered one past the last.
// ErrNotFound if the issuer does not exist or has no certificate.
func (db *DB) RebuildPKICRL(ctx context.Context, issuerID string, build BuildCRL) error {
	return db.inTx(ctx, func(tx querier) error { return rebuildCRL(ctx, tx, issuerID, build) })
}

// rebuildCRL takes the issuer's next CRL number (the update locks the row
// on PostgreSQL, so concurrent rebuilds queue and each sees the revocations
// committed before it), reads the revoked serials and stores the CRL build
// makes of them.
func rebuildCRL(ctx context.Context, tx querier, issuerID string, build BuildCRL) error {
	var row issuerRow
	err := tx.QueryRowContext(ctx, `UPDATE pki_issuers SET crl_number = crl_number + 1
		WHERE id = $1 AND certificate IS NOT NULL RETURNING `+pkiIssuerColumns, issuerID).Scan(row.dest()...)
	if err != nil {
		return notFound(err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT serial, revoked_at FROM certificates
		WHERE issuer_id = $1 AND revoked_at IS NOT NULL ORDER BY serial`, issuerID)
	if err != nil {
		return err
	}
	var revoked []PKIRevoked
	for rows.Next() {
		var r PKIRevoked
		if err := rows.Scan(&r.Serial, &r.RevokedAt); err != nil {
			rows.Close()
			return err
		}
		r.RevokedAt = r.RevokedAt.UTC()
		revoked = append(revoked, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	issuer := row.issuer()
	der, next, err := build(issuer, issuer.CRLNumber, revoked)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE pki_issuers SET crl = $2, crl_next_update = $3 WHERE id = $1`, issuerID, der, utc(next))
	return err
}

// DeleteExpiredPKICertificates removes the certificates that expired
// before before and returns the issuers they came from.
func (db *DB) DeleteExpiredPKICertificates(ctx context.Context, before time.Time) (removed int, issuers []string, err error) {
	err = db.inTx(ctx, func(tx querier) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM certificates WHERE not_after < $1 RETURNING issuer_id`, utc(before))
		if err != nil {
			return err
		}
		defer rows.Close()
		seen := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			removed++
			if !seen[id] {
				seen[id] = true
				issuers = append(issuers, id)
			}
		}
		return rows.Err()
	})
	return removed, issuers, err
}
