package pki

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"strings"

	"github.com/secrethub/secrethub/server/fault"
)

// newSerial is a random positive 128-bit serial number (the top bit clear,
// so its DER encoding never needs a sign byte and stays 16 bytes).
func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	if b[0] == 0 {
		b[0] = 0x01 // keep 16 significant bytes and never zero
	}
	return new(big.Int).SetBytes(b), nil
}

// FormatSerial writes a serial as Vault does: lowercase hex byte pairs
// separated by colons.
func FormatSerial(n *big.Int) string {
	raw := hex.EncodeToString(n.Bytes())
	if raw == "" {
		raw = "00"
	}
	var b strings.Builder
	for i := 0; i < len(raw); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(raw[i : i+2])
	}
	return b.String()
}

// ParseSerial accepts a serial as colon- or hyphen-separated hex pairs (any
// case) and returns it normalized, as stored.
func ParseSerial(s string) (string, *big.Int, error) {
	raw := strings.ToLower(strings.NewReplacer(":", "", "-", "").Replace(strings.TrimSpace(s)))
	if raw == "" || len(raw) > 64 || len(raw)%2 != 0 {
		return "", nil, fault.Invalidf("serial_number %q is not a serial: give hex byte pairs such as 1f:2a:…", fault.Input(clip(s)))
	}
	b, err := hex.DecodeString(raw)
	if err != nil {
		return "", nil, fault.Invalidf("serial_number %q is not a serial: give hex byte pairs such as 1f:2a:…", fault.Input(clip(s)))
	}
	n := new(big.Int).SetBytes(b)
	return FormatSerial(n), n, nil
}
