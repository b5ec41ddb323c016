// Package seal guards the root key. It initializes a new SecretHub (root
// key split with Shamir's secret sharing), gathers unseal key shares, and
// while unsealed holds the root key and the barrier keyring in memory only.
// Sealing drops both.
package seal

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/vault/shamir"

	"github.com/secrethub/secrethub/server/barrier"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// TypeShamir is the seal type of key-share unsealing.
const TypeShamir = "shamir"

// Errors callers branch on.
var (
	ErrSealed             = fault.New(fault.Unavailable, "SecretHub is sealed")
	ErrNotInitialized     = fault.New(fault.Invalid, "SecretHub is not initialized")
	ErrAlreadyInitialized = fault.New(fault.Invalid, "SecretHub is already initialized")
	ErrUnsealFailed       = fault.New(fault.Invalid, "unseal failed: the key shares do not open this SecretHub's keyring; progress was reset")
)

// Store is what the seal needs from storage.
type Store interface {
	Initialize(ctx context.Context, b storage.Bootstrap) error
	SealConfig(ctx context.Context) (storage.SealConfig, error)
	Keyring(ctx context.Context) ([]byte, error)
	SwapKeyring(ctx context.Context, prev, next []byte, now time.Time) error
}

// Status is the seal status reported by sys/seal-status and sys/unseal.
type Status struct {
	Type        string
	Initialized bool
	Sealed      bool
	Threshold   int
	Shares      int
	Progress    int
	Nonce       string
}

// unsealed is the in-memory state that exists only while unsealed.
type unsealed struct {
	rootKey []byte
	keyring *barrier.Keyring
	blob    []byte // the stored (wrapped) form of keyring
}

// Manager is one node's seal. It is safe for concurrent use.
type Manager struct {
	store Store
	now   func() time.Time

	mu     sync.Mutex // guards config, shares, nonce, and changes to state
	config *storage.SealConfig
	shares [][]byte
	nonce  string
	state  atomic.Pointer[unsealed]
}

// New returns a sealed Manager over store.
func New(store Store, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	return &Manager{store: store, now: now}
}

// loadConfig returns the seal config, caching it once initialized. The
// boolean is false when the store is not initialized yet. Callers hold mu.
func (m *Manager) loadConfig(ctx context.Context) (*storage.SealConfig, bool, error) {
	if m.config != nil {
		return m.config, true, nil
	}
	cfg, err := m.store.SealConfig(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	m.config = &cfg
	return m.config, true, nil
}

// Status reports whether this node is initialized and sealed, and the
// progress of an unseal in flight.
func (m *Manager) Status(ctx context.Context) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statusLocked(ctx)
}

func (m *Manager) statusLocked(ctx context.Context) (Status, error) {
	st := Status{Type: TypeShamir, Sealed: m.state.Load() == nil}
	cfg, ok, err := m.loadConfig(ctx)
	if err != nil || !ok {
		return st, err
	}
	st.Type, st.Initialized = cfg.Type, true
	st.Threshold, st.Shares = cfg.SecretThreshold, cfg.SecretShares
	st.Progress, st.Nonce = len(m.shares), m.nonce
	return st, nil
}

// Sealed reports whether the barrier is closed on this node.
func (m *Manager) Sealed() bool { return m.state.Load() == nil }

// InitResult is returned once, at initialization.
type InitResult struct {
	// Keys are the unseal key shares; with one share it is the root key itself.
	Keys [][]byte
}

// Init creates the root key and the barrier keyring, splits the root key
// into shares of which threshold reconstruct it, and stores the wrapped
// keyring together with the root token. The node stays sealed.
func (m *Manager) Init(ctx context.Context, shares, threshold int, rootToken storage.Token) (InitResult, error) {
	if err := validateSplit(shares, threshold); err != nil {
		return InitResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok, err := m.loadConfig(ctx); err != nil {
		return InitResult{}, err
	} else if ok {
		return InitResult{}, ErrAlreadyInitialized
	}
	rootKey, err := barrier.RandomKey()
	if err != nil {
		return InitResult{}, err
	}
	defer barrier.Zero(rootKey)
	now := m.now().UTC()
	keyring, err := barrier.NewKeyring(now)
	if err != nil {
		return InitResult{}, err
	}
	blob, err := keyring.Wrap(rootKey)
	if err != nil {
		return InitResult{}, err
	}
	var keys [][]byte
	if shares == 1 {
		keys = [][]byte{append([]byte(nil), rootKey...)}
	} else if keys, err = shamir.Split(rootKey, shares, threshold); err != nil {
		return InitResult{}, fmt.Errorf("seal: splitting root key: %w", err)
	}
	cfg := storage.SealConfig{Type: TypeShamir, SecretShares: shares, SecretThreshold: threshold, CreatedAt: now}
	err = m.store.Initialize(ctx, storage.Bootstrap{Seal: cfg, Keyring: blob, RootToken: rootToken})
	if errors.Is(err, storage.ErrConflict) {
		return InitResult{}, ErrAlreadyInitialized
	}
	if err != nil {
		return InitResult{}, err
	}
	m.config = &cfg
	return InitResult{Keys: keys}, nil
}

func validateSplit(shares, threshold int) error {
	switch {
	case shares < 1 || shares > 255:
		return fault.Invalidf("secret_shares must be between 1 and 255, got %v", fault.Number(shares))
	case threshold < 1 || threshold > shares:
		return fault.Invalidf("secret_threshold must be between 1 and secret_shares (%v), got %v", fault.Number(shares), fault.Number(threshold))
	case threshold == 1 && shares > 1:
		return fault.Invalidf("secret_threshold must be at least 2 when secret_shares is more than 1")
	}
	return nil
}

// ParseKey decodes an unseal key given as hex or base64.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fault.Invalidf("missing unseal key: send {\"key\": \"<hex or base64 key share>\"}")
	}
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fault.Invalidf("unseal key is neither hex nor base64")
}

// Unseal adds one key share. When the threshold is reached the root key is
// reconstructed and the keyring opened; wrong shares reset the progress.
func (m *Manager) Unseal(ctx context.Context, key []byte) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg, ok, err := m.loadConfig(ctx)
	if err != nil {
		return Status{}, err
	}
	if !ok {
		return Status{}, ErrNotInitialized
	}
	if m.state.Load() != nil {
		return m.statusLocked(ctx)
	}
	want := barrier.KeySize + 1
	if cfg.SecretShares == 1 {
		want = barrier.KeySize
	}
	if len(key) != want {
		return Status{}, fault.Invalidf("unseal key must decode to %d bytes, got %d", want, len(key))
	}
	for _, s := range m.shares {
		if string(s) == string(key) {
			return m.statusLocked(ctx) // the same share twice does not count twice
		}
	}
	if len(m.shares) == 0 {
		m.nonce = uuid.NewString()
	}
	m.shares = append(m.shares, append([]byte(nil), key...))
	if len(m.shares) < cfg.SecretThreshold {
		return m.statusLocked(ctx)
	}

	rootKey, err := m.combineLocked(cfg)
	m.resetLocked()
	if err != nil {
		return Status{}, err
	}
	blob, err := m.store.Keyring(ctx)
	if err != nil {
		barrier.Zero(rootKey)
		return Status{}, err
	}
	keyring, err := barrier.Unwrap(rootKey, blob)
	if err != nil {
		barrier.Zero(rootKey)
		if errors.Is(err, barrier.ErrDecrypt) {
			return Status{}, ErrUnsealFailed
		}
		return Status{}, err
	}
	m.state.Store(&unsealed{rootKey: rootKey, keyring: keyring, blob: blob})
	return m.statusLocked(ctx)
}

func (m *Manager) combineLocked(cfg *storage.SealConfig) ([]byte, error) {
	if cfg.SecretShares == 1 {
		return append([]byte(nil), m.shares[0]...), nil
	}
	key, err := shamir.Combine(m.shares)
	if err != nil {
		return nil, ErrUnsealFailed
	}
	return key, nil
}

// ResetUnseal discards the key shares gathered so far.
func (m *Manager) ResetUnseal(ctx context.Context) (Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resetLocked()
	return m.statusLocked(ctx)
}

func (m *Manager) resetLocked() {
	for _, s := range m.shares {
		barrier.Zero(s)
	}
	m.shares, m.nonce = nil, ""
}

// Seal drops the root key and keyring from memory.
func (m *Manager) Seal() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.state.Swap(nil); st != nil {
		barrier.Zero(st.rootKey)
		st.keyring.Destroy()
	}
	m.resetLocked()
}

// Rotate adds a new key term to the keyring; new data is encrypted with it
// and old terms keep decrypting. It retries if another node rotates at the
// same moment.
func (m *Manager) Rotate(ctx context.Context) (barrier.TermInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for attempt := 0; attempt < 5; attempt++ {
		st := m.state.Load()
		if st == nil {
			return barrier.TermInfo{}, ErrSealed
		}
		if err := m.reloadLocked(ctx, st); err != nil {
			return barrier.TermInfo{}, err
		}
		st = m.state.Load()
		next, err := st.keyring.Rotate(m.now())
		if err != nil {
			return barrier.TermInfo{}, err
		}
		blob, err := next.Wrap(st.rootKey)
		if err != nil {
			return barrier.TermInfo{}, err
		}
		err = m.store.SwapKeyring(ctx, st.blob, blob, m.now())
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return barrier.TermInfo{}, err
		}
		m.state.Store(&unsealed{rootKey: st.rootKey, keyring: next, blob: blob})
		terms := next.Terms()
		return terms[len(terms)-1], nil
	}
	return barrier.TermInfo{}, fault.New(fault.Conflict, "the keyring changed repeatedly during rotation; try again")
}

// reloadLocked reads the stored keyring again (another node may have
// rotated) and installs it if it changed.
func (m *Manager) reloadLocked(ctx context.Context, st *unsealed) error {
	blob, err := m.store.Keyring(ctx)
	if err != nil {
		return err
	}
	if string(blob) == string(st.blob) {
		return nil
	}
	keyring, err := barrier.Unwrap(st.rootKey, blob)
	if err != nil {
		return fmt.Errorf("seal: stored keyring no longer opens with this node's root key: %w", err)
	}
	m.state.Store(&unsealed{rootKey: st.rootKey, keyring: keyring, blob: blob})
	return nil
}

// Reload picks up a keyring rotated by another node. Decrypt reloads on an
// unknown term by itself; calling Reload periodically also moves this node
// to the newest term for encryption.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.state.Load()
	if st == nil {
		return ErrSealed
	}
	return m.reloadLocked(ctx, st)
}

// KeyStatus describes the active key term.
func (m *Manager) KeyStatus() (barrier.TermInfo, error) {
	st := m.state.Load()
	if st == nil {
		return barrier.TermInfo{}, ErrSealed
	}
	terms := st.keyring.Terms()
	return terms[len(terms)-1], nil
}

// DeriveKey returns the key for label derived from the keyring (see
// barrier.Keyring.Derive): a secret every node of the cluster computes
// alike while unsealed, with nothing stored that could be lost or removed.
func (m *Manager) DeriveKey(label string) ([]byte, error) {
	st := m.state.Load()
	if st == nil {
		return nil, ErrSealed
	}
	return st.keyring.Derive(label)
}

// Encrypt seals plaintext for path with the active key term.
func (m *Manager) Encrypt(path string, plaintext []byte) ([]byte, error) {
	st := m.state.Load()
	if st == nil {
		return nil, ErrSealed
	}
	return st.keyring.Encrypt(path, plaintext)
}

// Decrypt opens a ciphertext stored at path. A term this node has not seen
// yet (rotated by another node) triggers one reload of the keyring.
func (m *Manager) Decrypt(ctx context.Context, path string, ciphertext []byte) ([]byte, error) {
	st := m.state.Load()
	if st == nil {
		return nil, ErrSealed
	}
	pt, err := st.keyring.Decrypt(path, ciphertext)
	if !errors.Is(err, barrier.ErrUnknownTerm) {
		return pt, err
	}
	m.mu.Lock()
	st = m.state.Load()
	if st == nil {
		m.mu.Unlock()
		return nil, ErrSealed
	}
	err = m.reloadLocked(ctx, st)
	// Read the reloaded state before unlocking: once the lock is released
	// the node may be sealed and the state gone.
	st = m.state.Load()
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return st.keyring.Decrypt(path, ciphertext)
}
