// Package secrets holds SecretHub's secret engines. static.go is the
// versioned key/value store at /v1/secrets/static/<path>: every write makes
// a new version, encrypted by the barrier with the path and version as
// additional data, and old versions are kept up to a limit.
package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// DefaultMaxVersions is how many versions a secret keeps unless configured.
const DefaultMaxVersions = 10

// MaxVersion is the largest version number a secret can reach (the
// storage column is a 32-bit integer on both engines).
const MaxVersion = math.MaxInt32

// MaxVersionsLimit bounds a secret's max_versions setting.
const MaxVersionsLimit = 1000

// Errors callers branch on.
var (
	ErrNotFound     = fault.New(fault.NotFound, "secret not found")
	ErrDeleted      = fault.New(fault.NotFound, "secret version is deleted")
	ErrDestroyed    = fault.New(fault.NotFound, "secret version is destroyed")
	ErrCASRequired  = fault.New(fault.Invalid, "check-and-set parameter required for this secret: send options.cas")
	errCASConflict  = "check-and-set parameter did not match the current version "
	errVersionRange = "versions must be whole numbers between 1 and 2147483647"
)

// Store is what the static engine needs from storage.
type Store interface {
	PutSecretVersion(ctx context.Context, p storage.PutSecret) (storage.PutResult, error)
	GetSecretVersion(ctx context.Context, path string, version int) (storage.SecretVersionRead, error)
	MarkVersionsDeleted(ctx context.Context, path string, versions []int, at time.Time) error
	DestroyVersions(ctx context.Context, path string, versions []int) error
	SecretMetadata(ctx context.Context, path string) (storage.Secret, []storage.SecretVersion, error)
	ConfigureSecret(ctx context.Context, path string, set storage.SecretSettings) error
	DeleteSecret(ctx context.Context, path string) error
	SecretPaths(ctx context.Context, prefix string) ([]string, error)
	SecretExists(ctx context.Context, path string) (bool, error)
}

// Barrier encrypts and decrypts values bound to a storage path.
type Barrier interface {
	Encrypt(path string, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, path string, ciphertext []byte) ([]byte, error)
}

// Static is the versioned key/value engine.
type Static struct {
	store       Store
	barrier     Barrier
	now         func() time.Time
	maxVersions int
}

// NewStatic returns the engine; maxVersions <= 0 means DefaultMaxVersions.
func NewStatic(store Store, b Barrier, now func() time.Time, maxVersions int) *Static {
	if now == nil {
		now = time.Now
	}
	if maxVersions <= 0 {
		maxVersions = DefaultMaxVersions
	}
	return &Static{store: store, barrier: b, now: now, maxVersions: maxVersions}
}

// barrierPath is the additional data a version is encrypted under, so a
// ciphertext moved to another path or version no longer decrypts.
func barrierPath(path string, version int) string {
	return "secrets/static/" + path + "#" + strconv.Itoa(version)
}

// VersionInfo describes one version.
type VersionInfo struct {
	Version      int
	CreatedTime  time.Time
	DeletionTime time.Time // zero when not deleted
	Destroyed    bool
	// CustomMetadata is the secret's (not the version's), reported with
	// reads and writes as Vault does.
	CustomMetadata map[string]string
}

// Value is a decrypted version.
type Value struct {
	Data map[string]any
	VersionInfo
}

// Put writes data as a new version. cas, when set, must equal the current
// version (0: the secret must not exist yet).
func (s *Static) Put(ctx context.Context, path string, data map[string]any, cas *int) (VersionInfo, error) {
	return s.put(ctx, path, data, cas, false)
}

// Update is Put for a secret that must already exist: ErrNotFound instead
// of creating it.
func (s *Static) Update(ctx context.Context, path string, data map[string]any, cas *int) (VersionInfo, error) {
	return s.put(ctx, path, data, cas, true)
}

func (s *Static) put(ctx context.Context, path string, data map[string]any, cas *int, mustExist bool) (VersionInfo, error) {
	if cas != nil && (*cas < 0 || *cas > MaxVersion) {
		return VersionInfo{}, fault.Invalidf("options.cas must be between 0 and %d", MaxVersion)
	}
	plain, err := json.Marshal(data)
	if err != nil {
		return VersionInfo{}, fault.Invalidf("data cannot be stored: %v", err)
	}
	now := s.now().UTC()
	res, err := s.store.PutSecretVersion(ctx, storage.PutSecret{
		Path: path, CAS: cas, Now: now, DefaultMaxVersions: s.maxVersions, MustExist: mustExist,
		Seal: func(version int) ([]byte, error) { return s.barrier.Encrypt(barrierPath(path, version), plain) },
	})
	var mismatch *storage.CASMismatchError
	switch {
	case errors.As(err, &mismatch):
		return VersionInfo{}, fault.Wrap(fault.Conflict, errCASConflict+"(current version is "+strconv.Itoa(mismatch.Current)+")", err)
	case errors.Is(err, storage.ErrCASRequired):
		return VersionInfo{}, ErrCASRequired
	case errors.Is(err, storage.ErrNotFound):
		return VersionInfo{}, ErrNotFound
	case err != nil:
		return VersionInfo{}, err
	}
	return VersionInfo{Version: res.Version, CreatedTime: now.Truncate(time.Microsecond), CustomMetadata: res.CustomMetadata}, nil
}

// Get reads a version (0: the current one). Deleted and destroyed versions
// are not found.
func (s *Static) Get(ctx context.Context, path string, version int) (Value, error) {
	if version < 0 || version > MaxVersion {
		return Value{}, fault.Invalidf("version must be between 0 (the current one) and %d", MaxVersion)
	}
	r, err := s.store.GetSecretVersion(ctx, path, version)
	if errors.Is(err, storage.ErrNotFound) {
		return Value{}, ErrNotFound
	}
	if err != nil {
		return Value{}, err
	}
	info := VersionInfo{Version: r.Version, CreatedTime: r.CreatedAt, DeletionTime: r.DeletedAt, Destroyed: r.Destroyed, CustomMetadata: r.CustomMetadata}
	switch {
	case r.Destroyed:
		return Value{VersionInfo: info}, ErrDestroyed
	case !r.DeletedAt.IsZero():
		return Value{VersionInfo: info}, ErrDeleted
	}
	plain, err := s.barrier.Decrypt(ctx, barrierPath(path, r.Version), r.Ciphertext)
	if err != nil {
		return Value{}, err
	}
	// Numbers stay json.Number: a float64 would round big integers and
	// long decimals, and refuse values beyond its range outright.
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return Value{}, err
	}
	return Value{Data: data, VersionInfo: info}, nil
}

// Delete soft-deletes the current version; it can be undeleted.
func (s *Static) Delete(ctx context.Context, path string) error {
	err := s.store.MarkVersionsDeleted(ctx, path, nil, s.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil // deleting what is not there is done
	}
	return err
}

// DeleteVersions soft-deletes specific versions.
func (s *Static) DeleteVersions(ctx context.Context, path string, versions []int) error {
	if err := checkVersions(versions); err != nil {
		return err
	}
	return s.mapMissing(s.store.MarkVersionsDeleted(ctx, path, versions, s.now()))
}

// Undelete restores soft-deleted versions.
func (s *Static) Undelete(ctx context.Context, path string, versions []int) error {
	if err := checkVersions(versions); err != nil {
		return err
	}
	return s.mapMissing(s.store.MarkVersionsDeleted(ctx, path, versions, time.Time{}))
}

// Destroy erases versions' data for good.
func (s *Static) Destroy(ctx context.Context, path string, versions []int) error {
	if err := checkVersions(versions); err != nil {
		return err
	}
	return s.mapMissing(s.store.DestroyVersions(ctx, path, versions))
}

func (s *Static) mapMissing(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

func checkVersions(versions []int) error {
	if len(versions) == 0 {
		return fault.Invalidf("versions is required: a list of version numbers")
	}
	if len(versions) > MaxVersionsLimit {
		return fault.Invalidf("at most %d versions per request", MaxVersionsLimit)
	}
	for _, v := range versions {
		if v <= 0 || v > MaxVersion {
			return fault.Invalidf("%s", errVersionRange)
		}
	}
	return nil
}

// Rollback writes the data of an earlier version as a new current version.
func (s *Static) Rollback(ctx context.Context, path string, version int) (VersionInfo, error) {
	if version <= 0 || version > MaxVersion {
		return VersionInfo{}, fault.Invalidf("version is required and must be between 1 and %d", MaxVersion)
	}
	old, err := s.Get(ctx, path, version)
	switch {
	case errors.Is(err, ErrDeleted), errors.Is(err, ErrDestroyed):
		return VersionInfo{}, fault.Invalidf("cannot roll back to version %v: it is deleted or destroyed", fault.Number(version))
	case err != nil:
		return VersionInfo{}, err
	}
	current, err := s.store.GetSecretVersion(ctx, path, 0)
	if err != nil {
		return VersionInfo{}, s.mapMissing(err)
	}
	cas := current.CurrentVersion
	return s.Put(ctx, path, old.Data, &cas)
}

// Metadata is a secret's settings and version history.
type Metadata struct {
	Path           string
	CurrentVersion int
	OldestVersion  int
	MaxVersions    int
	CASRequired    bool
	CustomMetadata map[string]string
	CreatedTime    time.Time
	UpdatedTime    time.Time
	Versions       []VersionInfo
}

// Metadata reads a secret's metadata.
func (s *Static) Metadata(ctx context.Context, path string) (Metadata, error) {
	rec, versions, err := s.store.SecretMetadata(ctx, path)
	if err != nil {
		return Metadata{}, s.mapMissing(err)
	}
	m := Metadata{
		Path: rec.Path, CurrentVersion: rec.CurrentVersion, MaxVersions: rec.MaxVersions,
		CASRequired: rec.CASRequired, CustomMetadata: rec.CustomMetadata,
		CreatedTime: rec.CreatedAt, UpdatedTime: rec.UpdatedAt,
	}
	for _, v := range versions {
		m.Versions = append(m.Versions, VersionInfo{Version: v.Version, CreatedTime: v.CreatedAt, DeletionTime: v.DeletedAt, Destroyed: v.Destroyed})
	}
	if len(m.Versions) > 0 {
		m.OldestVersion = m.Versions[0].Version
	}
	return m, nil
}

// Settings changes a secret's metadata; nil fields stay unchanged.
type Settings struct {
	MaxVersions    *int
	CASRequired    *bool
	CustomMetadata map[string]string
	// CreateOnly makes Configure fail with ErrExists if the secret exists;
	// UpdateOnly with ErrNotFound if it does not.
	CreateOnly bool
	UpdateOnly bool
}

// ErrExists is returned by a create-only Configure of an existing secret.
var ErrExists = fault.New(fault.Conflict, "secret already exists")

// Configure creates or updates a secret's settings.
func (s *Static) Configure(ctx context.Context, path string, set Settings) error {
	if set.MaxVersions != nil && (*set.MaxVersions < 0 || *set.MaxVersions > MaxVersionsLimit) {
		return fault.Invalidf("max_versions must be between 0 (server default) and %d", MaxVersionsLimit)
	}
	for k, v := range set.CustomMetadata {
		if k == "" || len(k) > 128 {
			return fault.Invalidf("custom_metadata keys must be 1 to 128 bytes")
		}
		if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return fault.Invalidf("custom_metadata keys and values must not contain NUL characters")
		}
	}
	err := s.store.ConfigureSecret(ctx, path, storage.SecretSettings{
		MaxVersions: set.MaxVersions, CASRequired: set.CASRequired, CustomMetadata: set.CustomMetadata,
		CreateOnly: set.CreateOnly, MustExist: set.UpdateOnly, Now: s.now(), DefaultMaxVersions: s.maxVersions,
	})
	switch {
	case errors.Is(err, storage.ErrConflict):
		return ErrExists
	case errors.Is(err, storage.ErrNotFound):
		return ErrNotFound
	}
	return err
}

// DeleteAll removes a secret with all versions and metadata.
func (s *Static) DeleteAll(ctx context.Context, path string) error {
	err := s.store.DeleteSecret(ctx, path)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// List returns the keys directly under prefix (a normalized prefix ending
// in "/" or empty): secret names, and folder names with a trailing "/".
// It returns ErrNotFound when nothing is there, as Vault does.
func (s *Static) List(ctx context.Context, prefix string) ([]string, error) {
	paths, err := s.store.SecretPaths(ctx, prefix)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var keys []string
	for _, p := range paths {
		rest := strings.TrimPrefix(p, prefix)
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i+1]
		}
		if rest != "" && !seen[rest] {
			seen[rest] = true
			keys = append(keys, rest)
		}
	}
	if len(keys) == 0 {
		return nil, ErrNotFound
	}
	sort.Strings(keys)
	return slices.Clip(keys), nil
}

// Exists reports whether a secret has any record at path, for deciding
// whether a write is a create or an update.
func (s *Static) Exists(ctx context.Context, path string) (bool, error) {
	return s.store.SecretExists(ctx, path)
}
