package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/secrets"
)

// kvVersion is a version's metadata as Vault's KV v2 reports it.
type kvVersion struct {
	CreatedTime    string            `json:"created_time"`
	CustomMetadata map[string]string `json:"custom_metadata"`
	DeletionTime   string            `json:"deletion_time"`
	Destroyed      bool              `json:"destroyed"`
	Version        int               `json:"version"`
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func versionOut(v secrets.VersionInfo) kvVersion {
	return kvVersion{
		CreatedTime: formatTime(v.CreatedTime), CustomMetadata: v.CustomMetadata,
		DeletionTime: formatTime(v.DeletionTime), Destroyed: v.Destroyed, Version: v.Version,
	}
}

func (s *Server) handleKVRead(w http.ResponseWriter, r *http.Request) error {
	path := resourceOf(r)
	version, err := intParam(r, "version")
	if err != nil {
		return err
	}
	v, err := s.kv.Get(r.Context(), path, version)
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"data": v.Data, "metadata": versionOut(v.VersionInfo)})
	return nil
}

type kvWriteRequest struct {
	Data    map[string]any `json:"data"`
	Options struct {
		CAS *int `json:"cas"`
	} `json:"options"`
}

func (s *Server) handleKVWrite(w http.ResponseWriter, r *http.Request) error {
	path := resourceOf(r)
	var req kvWriteRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Data == nil {
		return fault.Invalidf(`no data provided: send {"data": {"key": "value"}}`)
	}
	cas := req.Options.CAS
	st := stateOf(r.Context())
	put := s.kv.Put
	switch {
	case st.createOnly:
		// Allowed to create but not to update: the write must not replace
		// a secret, even one created since authorization looked.
		if cas != nil && *cas != 0 {
			return auth.ErrPermissionDenied
		}
		cas = new(int)
	case st.updateOnly:
		// Allowed to update but not to create: nor may it recreate a
		// secret deleted since authorization looked.
		put = s.kv.Update
	}
	v, err := put(r.Context(), path, req.Data, cas)
	if err != nil {
		return deniedOnRace(st, err)
	}
	s.respondData(w, r, versionOut(v))
	return nil
}

// deniedOnRace reports a write restricted to creating (or to updating)
// that found its target existing (or gone) by the time it ran as what it
// is for the caller: an operation they may not perform.
func deniedOnRace(st *reqState, err error) error {
	kind := fault.KindOf(err)
	if (st.createOnly && kind == fault.Conflict) || (st.updateOnly && kind == fault.NotFound) {
		return auth.ErrPermissionDenied
	}
	return err
}

func (s *Server) handleKVDelete(w http.ResponseWriter, r *http.Request) error {
	path := resourceOf(r)
	if err := s.kv.Delete(r.Context(), path); err != nil {
		return err
	}
	respondNoContent(w)
	return nil
}

func (s *Server) handleKVList(w http.ResponseWriter, r *http.Request) error {
	prefix := resourceOf(r)
	keys, err := s.kv.List(r.Context(), prefix)
	if err != nil {
		return err
	}
	s.respondData(w, r, map[string]any{"keys": keys})
	return nil
}

func (s *Server) handleKVMetadataRead(w http.ResponseWriter, r *http.Request) error {
	path := resourceOf(r)
	m, err := s.kv.Metadata(r.Context(), path)
	if err != nil {
		return err
	}
	versions := make(map[string]kvVersion, len(m.Versions))
	for _, v := range m.Versions {
		versions[strconv.Itoa(v.Version)] = versionOut(v)
	}
	s.respondData(w, r, map[string]any{
		"cas_required": m.CASRequired, "created_time": formatTime(m.CreatedTime),
		"current_version": m.CurrentVersion, "custom_metadata": m.CustomMetadata,
		"delete_version_after": "0s", "max_versions": m.MaxVersions,
		"oldest_version": m.OldestVersion, "updated_time": formatTime(m.UpdatedTime),
		"versions": versions,
	})
	return nil
}

type kvMetadataRequest struct {
	MaxVersions    *int              `json:"max_versions"`
	CASRequired    *bool             `json:"cas_required"`
	CustomMetadata map[string]string `json:"custom_metadata"`
}

func (s *Server) handleKVMetadataWrite(w http.ResponseWriter, r *http.Request) error {
	path := resourceOf(r)
	var req kvMetadataRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	st := stateOf(r.Context())
	err := s.kv.Configure(r.Context(), path, secrets.Settings{
		MaxVersions: req.MaxVersions, CASRequired: req.CASRequired, CustomMetadata: req.CustomMetadata,
		CreateOnly: st.createOnly, UpdateOnly: st.updateOnly,
	})
	if err != nil {
		return deniedOnRace(st, err)
	}
	respondNoContent(w)
	return nil
}

func (s *Server) handleKVMetadataDelete(w http.ResponseWriter, r *http.Request) error {
	path := resourceOf(r)
	if err := s.kv.DeleteAll(r.Context(), path); err != nil {
		return err
	}
	respondNoContent(w)
	return nil
}

type kvVersionsRequest struct {
	Versions []int `json:"versions"`
}

// versionsAction runs one of the {"versions": [...]} operations.
func (s *Server) versionsAction(w http.ResponseWriter, r *http.Request, op func(path string, versions []int) error) error {
	path := resourceOf(r)
	var req kvVersionsRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := op(path, req.Versions); err != nil {
		return err
	}
	respondNoContent(w)
	return nil
}

func (s *Server) handleKVDeleteVersions(w http.ResponseWriter, r *http.Request) error {
	return s.versionsAction(w, r, func(path string, v []int) error { return s.kv.DeleteVersions(r.Context(), path, v) })
}

func (s *Server) handleKVUndelete(w http.ResponseWriter, r *http.Request) error {
	return s.versionsAction(w, r, func(path string, v []int) error { return s.kv.Undelete(r.Context(), path, v) })
}

func (s *Server) handleKVDestroy(w http.ResponseWriter, r *http.Request) error {
	return s.versionsAction(w, r, func(path string, v []int) error { return s.kv.Destroy(r.Context(), path, v) })
}

type kvRollbackRequest struct {
	Version int `json:"version"`
}

func (s *Server) handleKVRollback(w http.ResponseWriter, r *http.Request) error {
	path := resourceOf(r)
	var req kvRollbackRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	v, err := s.kv.Rollback(r.Context(), path, req.Version)
	if err != nil {
		return err
	}
	s.respondData(w, r, versionOut(v))
	return nil
}
