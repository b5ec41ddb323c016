package server

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/gorilla/mux"

	"github.com/secrethub/secrethub/server/audit"
)

// RouteInfo is one route as the router serves it, with what its
// authorization entry says.
type RouteInfo struct {
	Name    string
	Methods []string
	Path    string
	// HasAccess is true when the authorization table has an entry for the
	// route, and that entry is usable: public, or naming a resource (and,
	// for writes, able to tell create from update).
	HasAccess bool
	Public    bool
	// Login routes need no token but answer only while unsealed.
	Login bool
	// Published routes (PKI certificates, CRLs, OCSP) need no token but
	// answer only while unsealed.
	Published bool
}

// Routes walks the router and reports every route it would match.
func (s *Server) Routes() []RouteInfo {
	var out []RouteInfo
	_ = s.router.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, _ := rt.GetPathTemplate()
		methods, _ := rt.GetMethods()
		a, ok := s.access[rt.GetName()]
		usable := ok && (a.public || a.login || a.published || a.resource != nil) && (!a.write || a.exists != nil)
		out = append(out, RouteInfo{Name: rt.GetName(), Methods: methods, Path: path, HasAccess: usable, Public: ok && a.public, Login: ok && a.login, Published: ok && a.published})
		return nil
	})
	return out
}

// UngatedHandler serves one route with the caller's token authenticated
// but its policies not consulted. Until user policies exist no non-root
// token passes the policy gate of auth/token/create, yet the handler's own
// rules (a child gets only policies its parent has; orphans need sudo)
// must hold for the day one does.
func (s *Server) UngatedHandler(name string) http.Handler {
	for _, rt := range s.routes() {
		if rt.name != name {
			continue
		}
		return s.entry(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := stateOf(r.Context())
			id := presentedToken(r)
			tok, err := s.tokens.Authenticate(r.Context(), id, st.clientIP)
			if err != nil {
				s.respondError(w, r, err)
				return
			}
			st.token, st.tokenID = &tok, id
			if err := rt.handle(w, r); err != nil {
				s.respondError(w, r, err)
			}
		}))
	}
	panic("server: no route named " + name)
}

// nopAudit stores nothing: what a request costs without its audit event.
type nopAudit struct{ seq atomic.Int64 }

func (*nopAudit) SetKeys(*audit.Keys) {}
func (n *nopAudit) Append(context.Context, audit.Event) (int64, error) {
	return n.seq.Add(1), nil
}
func (n *nopAudit) Start(context.Context, audit.Event) (audit.Pending, error) {
	return nopPending(n.seq.Add(1)), nil
}

// nopPending is an event nopAudit did not store.
type nopPending int64

func (nopPending) Done(audit.Outcome) {}
func (p nopPending) Wait(context.Context) (int64, bool, error) {
	return int64(p), false, nil
}
func (*nopAudit) Complete(int64, audit.Outcome)             {}
func (*nopAudit) Record(context.Context, audit.Event) error { return nil }
func (n *nopAudit) Head() (int64, string)                   { return n.seq.Load(), "" }
func (*nopAudit) Close(context.Context) error               { return nil }

// realAudit keeps a node's audit log while a benchmark runs without it.
var realAudit = map[*Server]auditLog{}

// SwapAuditForBenchmark replaces the node's audit log with one that stores
// nothing (on) or puts the real one back (off). Only benchmarks can reach
// it: the shipped binary always audits. Call it while no request runs.
func (s *Server) SwapAuditForBenchmark(on bool) {
	if on {
		if _, isNop := s.audit.(*nopAudit); !isNop {
			realAudit[s], s.audit = s.audit, &nopAudit{}
		}
		return
	}
	if real, ok := realAudit[s]; ok {
		s.audit = real
		delete(realAudit, s)
	}
}

// PKIIssuerKey decrypts an issuer's private key (PKCS #8 DER), so tests
// can look for it where it must never be.
func (s *Server) PKIIssuerKey(ctx context.Context, id string) ([]byte, error) {
	row, err := s.db.PKIIssuer(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.seal.Decrypt(ctx, "pki/issuers/"+id+"/key", row.KeyCiphertext)
}
