package server

import (
	"net/http"

	"github.com/secrethub/secrethub/server/auth"
)

type adminLoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// handleAdminLogin exchanges ADMIN_USERNAME's password for a token with
// the admin policy. Failures are all the same 403; repeated failures from
// one client are refused with 429 before any password work.
func (s *Server) handleAdminLogin(w http.ResponseWriter, r *http.Request) error {
	if s.admin == nil {
		return auth.ErrAdminLoginDisabled
	}
	var req adminLoginRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	issued, err := s.admin.Login(r.Context(), req.Username, req.Password, stateOf(r.Context()).clientIP)
	if err != nil {
		return err
	}
	s.log.Info("admin login", "accessor", issued.Token.Accessor)
	s.respondAuth(w, r, s.authFor(issued.ID, issued.Token))
	return nil
}
