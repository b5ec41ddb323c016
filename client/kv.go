package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// KV is the static (versioned key/value) secrets API under /v1/secrets/.
// Paths are bare secret paths such as "prod/db".
type KV struct{ c *Client }

// KV returns the static secrets API.
func (c *Client) KV() *KV { return &KV{c: c} }

// KVVersion describes one version of a secret.
type KVVersion struct {
	Version        int               `json:"version"`
	CreatedTime    Time              `json:"created_time"`
	DeletionTime   Time              `json:"deletion_time"`
	Destroyed      bool              `json:"destroyed"`
	CustomMetadata map[string]string `json:"custom_metadata"`
}

// KVSecret is one version of a secret with its data.
type KVSecret struct {
	Data     map[string]any `json:"data"`
	Metadata KVVersion      `json:"metadata"`
}

// KVMetadata is a secret's settings and version history.
type KVMetadata struct {
	CASRequired        bool                 `json:"cas_required"`
	CreatedTime        Time                 `json:"created_time"`
	CurrentVersion     int                  `json:"current_version"`
	CustomMetadata     map[string]string    `json:"custom_metadata"`
	DeleteVersionAfter string               `json:"delete_version_after"`
	MaxVersions        int                  `json:"max_versions"`
	OldestVersion      int                  `json:"oldest_version"`
	UpdatedTime        Time                 `json:"updated_time"`
	Versions           map[string]KVVersion `json:"versions"`
}

// KVPutOptions qualifies a write.
type KVPutOptions struct {
	// CAS, when set, must equal the secret's current version (0: the
	// secret must not exist yet), or the write fails with 409.
	CAS *int
}

// KVMetadataInput changes a secret's settings; nil fields stay unchanged.
type KVMetadataInput struct {
	MaxVersions    *int              `json:"max_versions,omitempty"`
	CASRequired    *bool             `json:"cas_required,omitempty"`
	CustomMetadata map[string]string `json:"custom_metadata,omitempty"`
}

func secretURL(api, path string) string { return "secrets/" + api + "/" + escapePath(path) }

// Get reads a version of the secret at path (version 0: the current one).
// A missing, deleted or destroyed version is an error matching ErrNotFound.
func (kv *KV) Get(ctx context.Context, path string, version int) (*KVSecret, error) {
	req := request{method: http.MethodGet, path: secretURL("static", path)}
	if version > 0 {
		req.query = url.Values{"version": {strconv.Itoa(version)}}
	}
	var out KVSecret
	if err := kv.c.data(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Put writes data as a new version of the secret at path.
func (kv *KV) Put(ctx context.Context, path string, data map[string]any, opts KVPutOptions) (*KVVersion, error) {
	body := struct {
		Data    map[string]any `json:"data"`
		Options struct {
			CAS *int `json:"cas,omitempty"`
		} `json:"options"`
	}{Data: data}
	body.Options.CAS = opts.CAS
	return kv.version(ctx, request{method: http.MethodPost, path: secretURL("static", path), body: body})
}

// Delete soft-deletes the current version of the secret at path.
func (kv *KV) Delete(ctx context.Context, path string) error {
	return kv.c.do(ctx, request{method: http.MethodDelete, path: secretURL("static", path)}, nil)
}

// List returns the keys directly under prefix: secret names, and folder
// names ending in "/". An empty prefix lists the top level; nothing there
// is an error matching ErrNotFound.
func (kv *KV) List(ctx context.Context, prefix string) ([]string, error) {
	p := strings.Trim(prefix, "/")
	if p != "" {
		p += "/"
	}
	var out struct {
		Keys []string `json:"keys"`
	}
	if err := kv.c.data(ctx, request{method: "LIST", path: secretURL("static", p)}, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// Metadata reads the settings and version history of the secret at path.
func (kv *KV) Metadata(ctx context.Context, path string) (*KVMetadata, error) {
	var out KVMetadata
	if err := kv.c.data(ctx, request{method: http.MethodGet, path: secretURL("metadata", path)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutMetadata creates or changes the settings of the secret at path.
func (kv *KV) PutMetadata(ctx context.Context, path string, in KVMetadataInput) error {
	return kv.c.do(ctx, request{method: http.MethodPost, path: secretURL("metadata", path), body: in}, nil)
}

// DeleteMetadata removes the secret at path with every version, for good.
func (kv *KV) DeleteMetadata(ctx context.Context, path string) error {
	return kv.c.do(ctx, request{method: http.MethodDelete, path: secretURL("metadata", path)}, nil)
}

// DeleteVersions soft-deletes the given versions.
func (kv *KV) DeleteVersions(ctx context.Context, path string, versions []int) error {
	return kv.versions(ctx, "delete", path, versions)
}

// Undelete restores soft-deleted versions.
func (kv *KV) Undelete(ctx context.Context, path string, versions []int) error {
	return kv.versions(ctx, "undelete", path, versions)
}

// Destroy erases the data of the given versions for good.
func (kv *KV) Destroy(ctx context.Context, path string, versions []int) error {
	return kv.versions(ctx, "destroy", path, versions)
}

func (kv *KV) versions(ctx context.Context, api, path string, versions []int) error {
	body := struct {
		Versions []int `json:"versions"`
	}{versions}
	return kv.c.do(ctx, request{method: http.MethodPost, path: secretURL(api, path), body: body}, nil)
}

// Rollback writes the data of an earlier version as a new current version.
func (kv *KV) Rollback(ctx context.Context, path string, version int) (*KVVersion, error) {
	body := struct {
		Version int `json:"version"`
	}{version}
	return kv.version(ctx, request{method: http.MethodPost, path: secretURL("rollback", path), body: body})
}

func (kv *KV) version(ctx context.Context, req request) (*KVVersion, error) {
	var out KVVersion
	if err := kv.c.data(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
