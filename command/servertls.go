package command

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/secrethub/secrethub/server/metrics"
)

// servedCertificate is the certificate and key the server answers TLS
// handshakes with. reload reads the files again (on SIGHUP) and swaps the
// certificate in atomically: handshakes in progress keep the one they
// started with, later ones get the new one.
type servedCertificate struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
	// metrics, once set by report, are told each loaded certificate's expiry.
	metrics *metrics.Metrics
}

// loadServerTLS reads the server's certificate and key. Neither file
// means plain HTTP (a nil config); only one of them is a mistake. Errors
// name the files, never their content.
func loadServerTLS(certFile, keyFile string) (*tls.Config, *servedCertificate, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil, nil
	case keyFile == "":
		return nil, nil, errors.New("SECRETHUB_TLS_CERT_FILE is set but SECRETHUB_TLS_KEY_FILE is not: give both to serve HTTPS, or neither to serve HTTP")
	case certFile == "":
		return nil, nil, errors.New("SECRETHUB_TLS_KEY_FILE is set but SECRETHUB_TLS_CERT_FILE is not: give both to serve HTTPS, or neither to serve HTTP")
	}
	sc := &servedCertificate{certFile: certFile, keyFile: keyFile}
	if err := sc.reload(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return sc.current.Load(), nil
		},
	}
	return cfg, sc, nil
}

// reload reads the files again; on any error the current certificate
// stays in use.
func (sc *servedCertificate) reload() error {
	certPEM, err := os.ReadFile(sc.certFile)
	if err != nil {
		return fmt.Errorf("reading SECRETHUB_TLS_CERT_FILE: %w", err)
	}
	keyPEM, err := os.ReadFile(sc.keyFile)
	if err != nil {
		return fmt.Errorf("reading SECRETHUB_TLS_KEY_FILE: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("certificate %s with key %s: %w", sc.certFile, sc.keyFile, err)
	}
	sc.current.Store(&cert)
	sc.report(sc.metrics)
	return nil
}

// report sets m's certificate expiry gauge, now and after every reload.
func (sc *servedCertificate) report(m *metrics.Metrics) {
	sc.metrics = m
	if m == nil {
		return
	}
	m.EnableTLSCertExpiry()
	m.TLSCertExpiry.Set(float64(sc.current.Load().Leaf.NotAfter.Unix()))
}

// describe names the served certificate for the logs: serial and expiry.
func (sc *servedCertificate) describe() []any {
	leaf := sc.current.Load().Leaf
	return []any{"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z")}
}
