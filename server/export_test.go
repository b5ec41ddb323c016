package server

import (
	"net/http"

	"github.com/gorilla/mux"
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
}

// Routes walks the router and reports every route it would match.
func (s *Server) Routes() []RouteInfo {
	var out []RouteInfo
	_ = s.router.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, _ := rt.GetPathTemplate()
		methods, _ := rt.GetMethods()
		a, ok := s.access[rt.GetName()]
		usable := ok && (a.public || a.login || a.resource != nil) && (!a.write || a.exists != nil)
		out = append(out, RouteInfo{Name: rt.GetName(), Methods: methods, Path: path, HasAccess: usable, Public: ok && a.public, Login: ok && a.login})
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
