package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/secrethub/secrethub/server/fault"
)

// Key types.
const (
	KeyRSA     = "rsa"
	KeyEC      = "ec"
	KeyEd25519 = "ed25519"
	// KeyAny, for a role, lets sign accept a CSR of any supported key.
	KeyAny = "any"
)

// KeySpec is a key type and size. Bits is the RSA modulus, the EC curve
// (256, 384, 521) or 0 for Ed25519.
type KeySpec struct {
	Type string
	Bits int
}

// Normalize fills defaults (rsa 2048, ec 256) and refuses what cannot be
// generated: an unknown type or a size the type does not have.
func (k KeySpec) Normalize(allowAny bool) (KeySpec, error) {
	switch k.Type {
	case "":
		k.Type = KeyRSA
		fallthrough
	case KeyRSA:
		switch k.Bits {
		case 0:
			k.Bits = 2048
		case 2048, 3072, 4096:
		default:
			return k, fault.Invalidf("key_bits %v is not an RSA size: use 2048, 3072 or 4096", fault.Number(k.Bits))
		}
	case KeyEC:
		switch k.Bits {
		case 0:
			k.Bits = 256
		case 256, 384, 521:
		default:
			return k, fault.Invalidf("key_bits %v is not an EC curve: use 256, 384 or 521", fault.Number(k.Bits))
		}
	case KeyEd25519:
		if k.Bits != 0 && k.Bits != 256 {
			return k, fault.Invalidf("key_bits %v does not apply to ed25519 (leave it out)", fault.Number(k.Bits))
		}
		k.Bits = 0
	case KeyAny:
		if !allowAny {
			return k, fault.Invalidf(`key_type "any" is only for roles`)
		}
		k.Bits = 0
	default:
		return k, fault.Invalidf("key_type %q is not supported: use rsa, ec or ed25519", fault.Input(clip(k.Type)))
	}
	return k, nil
}

// Generate makes a new private key of the spec (normalized first).
func (k KeySpec) Generate() (crypto.Signer, error) {
	switch k.Type {
	case KeyRSA:
		return rsa.GenerateKey(rand.Reader, k.Bits)
	case KeyEC:
		return ecdsa.GenerateKey(curve(k.Bits), rand.Reader)
	case KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("pki: cannot generate a %q key", k.Type)
}

func curve(bits int) elliptic.Curve {
	switch bits {
	case 384:
		return elliptic.P384()
	case 521:
		return elliptic.P521()
	}
	return elliptic.P256()
}

// SpecOf describes a public key; ok is false for a kind SecretHub does not
// issue for.
func SpecOf(pub crypto.PublicKey) (KeySpec, bool) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return KeySpec{KeyRSA, p.N.BitLen()}, true
	case *ecdsa.PublicKey:
		return KeySpec{KeyEC, p.Curve.Params().BitSize}, true
	case ed25519.PublicKey:
		return KeySpec{KeyEd25519, 0}, true
	}
	return KeySpec{}, false
}

// marshalKey encodes a private key as PKCS #8 DER.
func marshalKey(key crypto.Signer) ([]byte, error) { return x509.MarshalPKCS8PrivateKey(key) }

// parseKey decodes PKCS #8 DER into a signer.
func parseKey(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: stored key of type %T cannot sign", k)
	}
	return s, nil
}

// keyPEM is a private key as PEM, the way issue hands it to the caller.
func keyPEM(key crypto.Signer) (pemText, keyType string, err error) {
	der, err := marshalKey(key)
	if err != nil {
		return "", "", err
	}
	spec, _ := SpecOf(key.Public())
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), spec.Type, nil
}

func certPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// clip shortens caller input quoted in an error message.
func clip(s string) string { return fault.Clip(s, 64) }
