// Package barrier encrypts everything SecretHub stores as secret material.
//
// A Keyring holds numbered AES-256 key terms. New data is always sealed with
// the newest term; older terms stay so that data written before a rotation
// still opens. Every ciphertext is bound to the storage path it is written to
// (the additional authenticated data), so a row copied to another path fails
// to decrypt instead of revealing its value there.
package barrier

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// KeySize is the size in bytes of every AES-256 key the barrier uses,
// including the root key that encrypts the keyring itself.
const KeySize = 32

const (
	formatVersion = 1
	headerSize    = 1 + 4 // format version, key term
	nonceSize     = 12
)

var (
	// ErrUnknownTerm means the ciphertext was sealed with a key term this
	// keyring does not hold (another node may have rotated since it loaded).
	ErrUnknownTerm = errors.New("barrier: unknown key term")
	// ErrDecrypt means the ciphertext is malformed, was tampered with, or was
	// stored under a different path.
	ErrDecrypt = errors.New("barrier: message authentication failed")
)

// Term is one generation of the data encryption key.
type Term struct {
	Number  uint32    `json:"term"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

// Keyring is an immutable set of key terms. Rotate returns a new Keyring, so
// a Keyring can be shared between goroutines without locking.
type Keyring struct {
	terms  map[uint32]cipher.AEAD
	raw    []Term
	active uint32
}

// NewKeyring returns a keyring with a single fresh random term 1.
func NewKeyring(now time.Time) (*Keyring, error) {
	key, err := RandomKey()
	if err != nil {
		return nil, err
	}
	return fromTerms([]Term{{Number: 1, Key: key, Created: now.UTC()}})
}

// RandomKey returns KeySize bytes from the system's secure random source.
func RandomKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("barrier: reading random key: %w", err)
	}
	return key, nil
}

func fromTerms(terms []Term) (*Keyring, error) {
	if len(terms) == 0 {
		return nil, errors.New("barrier: keyring has no terms")
	}
	k := &Keyring{terms: make(map[uint32]cipher.AEAD, len(terms))}
	for _, t := range terms {
		if _, dup := k.terms[t.Number]; dup {
			return nil, fmt.Errorf("barrier: duplicate key term %d", t.Number)
		}
		aead, err := newAEAD(t.Key)
		if err != nil {
			return nil, err
		}
		k.terms[t.Number] = aead
		k.raw = append(k.raw, t)
		if t.Number > k.active {
			k.active = t.Number
		}
	}
	sort.Slice(k.raw, func(i, j int) bool { return k.raw[i].Number < k.raw[j].Number })
	return k, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("barrier: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	return cipher.NewGCM(block)
}

// ActiveTerm is the term new data is encrypted with.
func (k *Keyring) ActiveTerm() uint32 { return k.active }

// Terms describes the key terms (numbers and creation times, never keys).
func (k *Keyring) Terms() []TermInfo {
	out := make([]TermInfo, len(k.raw))
	for i, t := range k.raw {
		out[i] = TermInfo{Number: t.Number, Created: t.Created}
	}
	return out
}

// TermInfo is the public description of a key term.
type TermInfo struct {
	Number  uint32
	Created time.Time
}

// Rotate returns a keyring with one more term, which becomes the active one.
func (k *Keyring) Rotate(now time.Time) (*Keyring, error) {
	key, err := RandomKey()
	if err != nil {
		return nil, err
	}
	terms := append(append([]Term(nil), k.raw...), Term{Number: k.active + 1, Key: key, Created: now.UTC()})
	return fromTerms(terms)
}

// Derive returns a KeySize key for label, derived (HKDF-SHA256) from the
// keyring's first term: the same on every node and for the keyring's life,
// since rotation adds terms and keeps the old ones, and out of reach of
// anyone without the keyring. Different labels give independent keys.
func (k *Keyring) Derive(label string) ([]byte, error) {
	first := k.raw[0]
	for _, t := range k.raw {
		if t.Number < first.Number {
			first = t
		}
	}
	return hkdf.Key(sha256.New, first.Key, nil, "secrethub "+label, KeySize)
}

// Encrypt seals plaintext with the active term, bound to path.
func (k *Keyring) Encrypt(path string, plaintext []byte) ([]byte, error) {
	return seal(k.terms[k.active], k.active, path, plaintext)
}

// Decrypt opens a ciphertext produced by Encrypt for the same path.
func (k *Keyring) Decrypt(path string, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < headerSize+nonceSize || ciphertext[0] != formatVersion {
		return nil, ErrDecrypt
	}
	term := binary.BigEndian.Uint32(ciphertext[1:headerSize])
	aead, ok := k.terms[term]
	if !ok {
		return nil, fmt.Errorf("%w %d", ErrUnknownTerm, term)
	}
	return open(aead, path, ciphertext)
}

func seal(aead cipher.AEAD, term uint32, path string, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerSize+nonceSize, headerSize+nonceSize+len(plaintext)+aead.Overhead())
	out[0] = formatVersion
	binary.BigEndian.PutUint32(out[1:headerSize], term)
	nonce := out[headerSize : headerSize+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("barrier: reading nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, []byte(path)), nil
}

func open(aead cipher.AEAD, path string, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < headerSize+nonceSize {
		return nil, ErrDecrypt
	}
	nonce := ciphertext[headerSize : headerSize+nonceSize]
	pt, err := aead.Open(nil, nonce, ciphertext[headerSize+nonceSize:], []byte(path))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// keyringPath is the additional data binding the stored keyring blob.
const keyringPath = "core/keyring"

// Wrap serializes the keyring and encrypts it under the root key, ready to be
// stored. The root key itself is never stored.
func (k *Keyring) Wrap(rootKey []byte) ([]byte, error) {
	aead, err := newAEAD(rootKey)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(struct {
		Terms []Term `json:"terms"`
	}{k.raw})
	if err != nil {
		return nil, fmt.Errorf("barrier: encoding keyring: %w", err)
	}
	defer zero(plain)
	return seal(aead, 0, keyringPath, plain)
}

// Unwrap decrypts a stored keyring with the root key. A wrong root key
// yields ErrDecrypt.
func Unwrap(rootKey, blob []byte) (*Keyring, error) {
	aead, err := newAEAD(rootKey)
	if err != nil {
		return nil, err
	}
	if len(blob) < headerSize || blob[0] != formatVersion {
		return nil, ErrDecrypt
	}
	plain, err := open(aead, keyringPath, blob)
	if err != nil {
		return nil, err
	}
	defer zero(plain)
	var doc struct {
		Terms []Term `json:"terms"`
	}
	if err := json.Unmarshal(plain, &doc); err != nil {
		return nil, fmt.Errorf("barrier: decoding keyring: %w", err)
	}
	return fromTerms(doc.Terms)
}

// Destroy overwrites the raw term keys this keyring holds. Keyrings made by
// Rotate share term keys with their predecessor, so only the keyring being
// dropped for good (at seal) is destroyed. The cipher objects keep their own
// expanded keys, which Go gives no way to wipe; they become garbage with
// the keyring.
func (k *Keyring) Destroy() {
	for i := range k.raw {
		zero(k.raw[i].Key)
	}
}

// Zero overwrites a key held in memory once it is no longer needed.
func Zero(b []byte) { zero(b) }

func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
