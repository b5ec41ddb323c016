package server_test

import (
	"crypto/x509"
	"fmt"
	"slices"
	"testing"

	"github.com/secrethub/secrethub/server"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

// publication is what a certificate says about where its issuer, CRLs and
// OCSP responder are.
type publication struct{ issuing, crl, ocsp []string }

func publicationOf(c *x509.Certificate) publication {
	return publication{c.IssuingCertificateURL, c.CRLDistributionPoints, c.OCSPServer}
}

func (p publication) equal(q publication) bool {
	return slices.Equal(p.issuing, q.issuing) && slices.Equal(p.crl, q.crl) && slices.Equal(p.ocsp, q.ocsp)
}

// urlsOf reads a config/urls answer.
func urlsOf(t *testing.T, r response) publication {
	t.Helper()
	d := r.Data(t)
	get := func(k string) []string {
		raw, ok := d[k].([]any)
		if !ok {
			t.Fatalf("%s is not a list: %v", k, d)
		}
		var out []string
		for _, v := range raw {
			out = append(out, v.(string))
		}
		return out
	}
	return publication{get("issuing_certificates"), get("crl_distribution_points"), get("ocsp_servers")}
}

// After config/urls is set, every certificate issued, signed or made an
// intermediate carries exactly those URLs (AIA caIssuers and OCSP, CRL
// distribution points); certificates made before carry none. A write
// changes only the lists it names; a bad URL is a 400 naming it and
// changes nothing.
func TestPKIConfigURLsReachIssuedCertificates(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		_, root := n.initUnseal(1, 1)
		n.setupPKI(root)
		mustStatus(t, n.do("POST", "/v1/pki/roles/web", root, `{"allow_any_name":true,"key_type":"ec"}`), 200)
		issue := func() *x509.Certificate {
			t.Helper()
			return pemCert(t, mustStatus(t, n.do("POST", "/v1/pki/issue/web", root, `{"common_name":"a.example.com"}`), 200).Data(t)["certificate"].(string))
		}
		before := issue()
		if got := urlsOf(t, mustStatus(t, n.do("GET", "/v1/pki/config/urls", root, ""), 200)); !got.equal(publication{}) {
			t.Fatalf("URLs before any were set: %+v", got)
		}

		want := publication{
			issuing: []string{"https://ca.example.com/v1/pki/ca/pem", "http://ca2.example.com/v1/pki/ca/pem"},
			crl:     []string{"http://ca.example.com/v1/pki/crl", "http://ca2.example.com/v1/pki/crl"},
			ocsp:    []string{"http://ca.example.com/v1/pki/ocsp"},
		}
		set := mustStatus(t, n.do("POST", "/v1/pki/config/urls", root, `{
			"issuing_certificates": ["https://ca.example.com/v1/pki/ca/pem", "http://ca2.example.com/v1/pki/ca/pem"],
			"crl_distribution_points": "http://ca.example.com/v1/pki/crl, http://ca2.example.com/v1/pki/crl",
			"ocsp_servers": ["http://ca.example.com/v1/pki/ocsp"]}`), 200)
		if got := urlsOf(t, set); !got.equal(want) {
			t.Fatalf("the write answered %+v, want %+v", got, want)
		}
		if got := urlsOf(t, mustStatus(t, n.do("GET", "/v1/pki/config/urls", root, ""), 200)); !got.equal(want) {
			t.Fatalf("GET answered %+v, want %+v", got, want)
		}

		csr, _ := newCSR(t, "b.example.com")
		made := map[string]*x509.Certificate{
			"an issued leaf": issue(),
			"a signed leaf":  pemCert(t, mustStatus(t, n.do("POST", "/v1/pki/sign/web", root, `{"csr":`+jsonString(csr)+`}`), 200).Data(t)["certificate"].(string)),
			"an intermediate": pemCert(t, mustStatus(t, n.do("POST", "/v1/pki/ca/intermediate/generate", root,
				`{"common_name":"Second Intermediate","key_type":"ec"}`), 200).Data(t)["certificate"].(string)),
		}
		for what, c := range made {
			if got := publicationOf(c); !got.equal(want) {
				t.Errorf("%s carries %+v, want %+v", what, got, want)
			}
		}
		if got := publicationOf(before); !got.equal(publication{}) {
			t.Errorf("the leaf issued before carries %+v", got)
		}

		for _, c := range []struct{ name, body, mention string }{
			{"a bad URL in a list is named with its place", `{"ocsp_servers":["http://ok.example.com","ftp://ca.example.com/ocsp"]}`, `ocsp_servers[1]: "ftp://ca.example.com/ocsp"`},
			{"a bad URL in a comma string is named", `{"issuing_certificates":"http://ok.example.com,/relative"}`, `issuing_certificates[1]: "/relative"`},
			{"a list that is not strings is refused", `{"crl_distribution_points":[1]}`, "crl_distribution_points"},
			{"templating is refused", `{"enable_templating":true}`, "enable_templating"},
			{"an unknown field is refused", `{"ocsp_server":["http://ocsp.example.com"]}`, "ocsp_server"},
		} {
			t.Run(c.name, func(t *testing.T) {
				mustError(t, n.do("POST", "/v1/pki/config/urls", root, c.body), 400, c.mention)
			})
		}
		if got := urlsOf(t, mustStatus(t, n.do("GET", "/v1/pki/config/urls", root, ""), 200)); !got.equal(want) {
			t.Fatalf("refused writes changed the URLs to %+v", got)
		}

		// A write names only what it changes; an empty list clears one.
		want.ocsp = nil
		if got := urlsOf(t, mustStatus(t, n.do("PUT", "/v1/pki/config/urls", root, `{"ocsp_servers":[],"enable_templating":false}`), 200)); !got.equal(want) {
			t.Fatalf("clearing ocsp_servers answered %+v, want %+v", got, want)
		}
		if got := publicationOf(issue()); !got.equal(want) {
			t.Fatalf("a leaf after clearing ocsp_servers carries %+v, want %+v", got, want)
		}
	})
}

// Nodes sharing the database: URLs set on one reach the next certificate
// the other issues, with no cache to expire.
func TestPKIConfigURLsReachOtherNodes(t *testing.T) {
	eachStorage(t, func(t *testing.T, _ storage.Config, open func() *storage.DB) {
		a := startNode(t, open(), server.Config{NodeName: "core-1"})
		keys, root := a.initUnseal(1, 1)
		a.setupPKI(root)
		mustStatus(t, a.do("POST", "/v1/pki/roles/web", root, `{"allow_any_name":true,"key_type":"ec"}`), 200)
		b := startNode(t, open(), server.Config{NodeName: "core-2"})
		mustStatus(t, b.do("POST", "/v1/sys/unseal", "", `{"key":"`+keys[0]+`"}`), 200)
		for k := range 3 {
			ocsp := fmt.Sprintf("http://ocsp%d.example.com", k)
			mustStatus(t, a.do("POST", "/v1/pki/config/urls", root, `{"ocsp_servers":["`+ocsp+`"]}`), 200)
			leaf := pemCert(t, mustStatus(t, b.do("POST", "/v1/pki/issue/web", root, `{"common_name":"b.example.com"}`), 200).Data(t)["certificate"].(string))
			if !slices.Equal(leaf.OCSPServer, []string{ocsp}) {
				t.Fatalf("the other node issued with OCSP %v, want %s", leaf.OCSPServer, ocsp)
			}
		}
	})
}

// config/urls is guarded by pki/config/urls: read for GET, update for
// POST; a token without them is refused.
func TestPKIConfigURLsPolicy(t *testing.T) {
	n := startNode(t, storagetest.SQLite(t), server.Config{})
	_, root := n.initUnseal(1, 1)
	mustStatus(t, n.do("PUT", "/v1/policies/urls-read", root, `{"rules":[{"path":"pki/config/urls","capabilities":["read"]}]}`), 204)
	mustStatus(t, n.do("PUT", "/v1/policies/urls-write", root, `{"rules":[{"path":"pki/config/urls","capabilities":["update"]}]}`), 204)
	mustStatus(t, n.do("PUT", "/v1/policies/issuers-admin", root, `{"rules":[{"path":"pki/config/issuers","capabilities":["read","update"]}]}`), 204)
	none, _ := n.createToken(root, `{"policies":["default"]}`)
	issuers, _ := n.createToken(root, `{"policies":["issuers-admin"]}`)
	reader, _ := n.createToken(root, `{"policies":["urls-read"]}`)
	writer, _ := n.createToken(root, `{"policies":["urls-write"]}`)
	body := `{"ocsp_servers":["http://ocsp.example.com"]}`
	for _, c := range []struct {
		name, method, token string
		status              int
	}{
		{"a token without rights cannot read", "GET", none, 403},
		{"a token without rights cannot write", "POST", none, 403},
		{"rights on config/issuers are not rights on config/urls", "POST", issuers, 403},
		{"read allows GET", "GET", reader, 200},
		{"read does not allow POST", "POST", reader, 403},
		{"update allows POST", "POST", writer, 200},
		{"update does not allow GET", "GET", writer, 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := n.do(c.method, "/v1/pki/config/urls", c.token, body)
			if c.status == 403 {
				mustError(t, r, 403, "permission denied")
				return
			}
			mustStatus(t, r, c.status)
		})
	}
}
