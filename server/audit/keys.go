package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"
)

// MasterSize is the length in bytes of the cluster's audit master secret.
const MasterSize = 32

// HMACPrefix starts every HMAC'd value in an event.
const HMACPrefix = "hmac-sha256:"

// Keys are the audit keys derived from the cluster's audit master secret:
// one to HMAC sensitive values, one to authenticate checkpoints and
// outcomes. A nil *Keys means SecretHub is sealed. Keys never print.
type Keys struct {
	value      [sha256.Size]byte
	checkpoint [sha256.Size]byte
	// valueMACs and checkpointMACs keep keyed HMAC states for reuse: each
	// request takes several HMACs, and a fresh state costs two SHA-256
	// digests and their pads.
	valueMACs, checkpointMACs sync.Pool
}

// NewKeys derives the audit keys from the master secret. A master shorter
// than MasterSize is a programming error and panics (without its value).
func NewKeys(master []byte) *Keys {
	if len(master) < MasterSize {
		panic(fmt.Sprintf("audit: master secret has %d bytes, need %d", len(master), MasterSize))
	}
	k := &Keys{}
	copy(k.value[:], macOf(master, []byte("secrethub audit hmac")))
	copy(k.checkpoint[:], macOf(master, []byte("secrethub audit checkpoint")))
	k.valueMACs.New = func() any { return hmac.New(sha256.New, k.value[:]) }
	k.checkpointMACs.New = func() any { return hmac.New(sha256.New, k.checkpoint[:]) }
	return k
}

// HMAC returns "hmac-sha256:<hex>" of value under the value key: how a
// sensitive value appears in the audit log, and what sys/audit-hash
// returns so an operator can search for a known value.
func (k *Keys) HMAC(value string) string {
	m := k.valueMACs.Get().(hash.Hash)
	defer k.valueMACs.Put(m)
	m.Reset()
	io.WriteString(m, value)
	var sum [sha256.Size]byte
	return HMACPrefix + hex.EncodeToString(m.Sum(sum[:0]))
}

// mac authenticates the concatenation of parts under the checkpoint key,
// as hex. Nil keys (sealed) give "".
func (k *Keys) mac(parts ...[]byte) string {
	if k == nil {
		return ""
	}
	m := k.checkpointMACs.Get().(hash.Hash)
	defer k.checkpointMACs.Put(m)
	m.Reset()
	for _, p := range parts {
		m.Write(p)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0]))
}

// String keeps key material out of logs and error messages.
func (k *Keys) String() string { return "audit.Keys{…}" }

// GoString keeps key material out of %#v.
func (k *Keys) GoString() string { return k.String() }

func macOf(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}
