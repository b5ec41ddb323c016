package barrier

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func newKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := NewKeyring(t0)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func encrypt(t testing.TB, k *Keyring, path string, plaintext []byte) []byte {
	t.Helper()
	ct, err := k.Encrypt(path, plaintext)
	if err != nil {
		t.Fatalf("Encrypt(%q): %v", path, err)
	}
	return ct
}

// termOf reads the key term a ciphertext names in its header.
func termOf(ct []byte) uint32 { return binary.BigEndian.Uint32(ct[1:headerSize]) }

func TestNewKeyring(t *testing.T) {
	local := time.Date(2026, 11, 29, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	k, err := NewKeyring(local)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a new keyring has exactly term 1, active", func(t *testing.T) {
		if k.ActiveTerm() != 1 {
			t.Fatalf("ActiveTerm = %d, want 1", k.ActiveTerm())
		}
		if terms := k.Terms(); len(terms) != 1 || terms[0].Number != 1 {
			t.Fatalf("Terms = %+v, want only term 1", terms)
		}
	})
	t.Run("the creation time is recorded in UTC", func(t *testing.T) {
		got := k.Terms()[0].Created
		if got.Location() != time.UTC || !got.Equal(local) {
			t.Fatalf("Created = %v, want %v in UTC", got, local)
		}
	})
	t.Run("two new keyrings have different keys", func(t *testing.T) {
		other := newKeyring(t)
		if bytes.Equal(k.raw[0].Key, other.raw[0].Key) {
			t.Fatal("two keyrings share a key")
		}
		ct := encrypt(t, k, "p", []byte("v"))
		if _, err := other.Decrypt("p", ct); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("another keyring's term 1 opened the ciphertext: %v", err)
		}
	})
}

func TestRandomKey(t *testing.T) {
	a, err := RandomKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := RandomKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != KeySize || len(b) != KeySize {
		t.Fatalf("key sizes %d, %d; want %d", len(a), len(b), KeySize)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two random keys are equal")
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	k := newKeyring(t)
	cases := []struct {
		name      string
		path      string
		plaintext []byte
	}{
		{"a short value at a secret path round-trips", "secrets/static/prod/db#1", []byte(`{"password":"hunter2"}`)},
		{"an empty value round-trips", "secrets/static/empty#1", []byte{}},
		{"a nil value round-trips as empty", "secrets/static/nil#1", nil},
		{"binary data with zero bytes round-trips", "bin", []byte{0, 1, 2, 0xff, 0, 0}},
		{"a value under the empty path round-trips", "", []byte("no path")},
		{"a value under a unicode path round-trips", "secrets/static/café/ключ#3", []byte("ünïcödé")},
		{"a 1 MiB value round-trips", "big", bytes.Repeat([]byte("0123456789abcdef"), 1<<16)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct := encrypt(t, k, c.path, c.plaintext)
			if want := headerSize + nonceSize + len(c.plaintext) + 16; len(ct) != want {
				t.Fatalf("ciphertext is %d bytes, want %d (header, nonce, data, tag)", len(ct), want)
			}
			if len(c.plaintext) >= 8 && bytes.Contains(ct, c.plaintext) {
				t.Fatal("the ciphertext contains the plaintext")
			}
			got, err := k.Decrypt(c.path, ct)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if !bytes.Equal(got, c.plaintext) {
				t.Fatalf("Decrypt = %q, want %q", got, c.plaintext)
			}
		})
	}
}

func TestEncryptUsesAFreshNonce(t *testing.T) {
	k := newKeyring(t)
	seen := map[string]bool{}
	nonces := map[string]bool{}
	for i := range 100 {
		ct := encrypt(t, k, "p", []byte("same plaintext"))
		if seen[string(ct)] {
			t.Fatalf("encryption %d repeated an earlier ciphertext", i)
		}
		nonce := string(ct[headerSize : headerSize+nonceSize])
		if nonces[nonce] {
			t.Fatalf("encryption %d repeated an earlier nonce", i)
		}
		seen[string(ct)], nonces[nonce] = true, true
	}
}

func TestDecryptRejects(t *testing.T) {
	k := newKeyring(t)
	const path = "secrets/static/prod/db#1"
	ct := encrypt(t, k, path, []byte("the secret value"))
	flip := func(i int) []byte {
		c := bytes.Clone(ct)
		c[i] ^= 0x01
		return c
	}
	withTerm := func(term uint32) []byte {
		c := bytes.Clone(ct)
		binary.BigEndian.PutUint32(c[1:headerSize], term)
		return c
	}
	cases := []struct {
		name       string
		path       string
		ciphertext []byte
		want       error
	}{
		{"a ciphertext read back under another path fails", "secrets/static/prod/db#2", ct, ErrDecrypt},
		{"a ciphertext read back under a path prefix fails", "secrets/static/prod/db", ct, ErrDecrypt},
		{"a ciphertext read back under the empty path fails", "", ct, ErrDecrypt},
		{"a flipped bit in the nonce fails", path, flip(headerSize), ErrDecrypt},
		{"a flipped bit in the encrypted data fails", path, flip(headerSize + nonceSize + 3), ErrDecrypt},
		{"a flipped bit in the authentication tag fails", path, flip(len(ct) - 1), ErrDecrypt},
		{"an unknown format version fails", path, flip(0), ErrDecrypt},
		{"a ciphertext cut by one byte fails", path, ct[:len(ct)-1], ErrDecrypt},
		{"a ciphertext cut to header and nonce fails", path, ct[:headerSize+nonceSize], ErrDecrypt},
		{"a ciphertext cut inside the nonce fails", path, ct[:headerSize+3], ErrDecrypt},
		{"a ciphertext cut to the version byte fails", path, ct[:1], ErrDecrypt},
		{"an empty ciphertext fails", path, []byte{}, ErrDecrypt},
		{"a nil ciphertext fails", path, nil, ErrDecrypt},
		{"garbage text fails", path, []byte("this is not a ciphertext at all, just text"), ErrDecrypt},
		{"an appended byte fails", path, append(bytes.Clone(ct), 0), ErrDecrypt},
		{"a term the keyring never had fails as unknown", path, withTerm(7), ErrUnknownTerm},
		{"term 0, the keyring blob's own term, fails as unknown", path, withTerm(0), ErrUnknownTerm},
		{"the largest term number fails as unknown", path, withTerm(^uint32(0)), ErrUnknownTerm},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pt, err := k.Decrypt(c.path, c.ciphertext)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decrypt error = %v, want %v", err, c.want)
			}
			if pt != nil {
				t.Fatalf("Decrypt returned plaintext %q along with the error", pt)
			}
		})
	}
	t.Run("a failed decryption leaves the ciphertext readable at its own path", func(t *testing.T) {
		if got, err := k.Decrypt(path, ct); err != nil || string(got) != "the secret value" {
			t.Fatalf("Decrypt = %q, %v", got, err)
		}
	})
	t.Run("errors say nothing about the key or the plaintext", func(t *testing.T) {
		_, err := k.Decrypt("elsewhere", ct)
		msg := err.Error()
		if strings.Contains(msg, "secret value") || strings.Contains(msg, hex.EncodeToString(k.raw[0].Key)) {
			t.Fatalf("error leaks material: %q", msg)
		}
	})
}

func TestRotate(t *testing.T) {
	old := newKeyring(t)
	before := encrypt(t, old, "p", []byte("before rotation"))
	later := t0.Add(time.Hour)
	k, err := old.Rotate(later)
	if err != nil {
		t.Fatal(err)
	}
	after := encrypt(t, k, "p", []byte("after rotation"))

	t.Run("rotation makes a new term the active one", func(t *testing.T) {
		if k.ActiveTerm() != 2 {
			t.Fatalf("ActiveTerm = %d, want 2", k.ActiveTerm())
		}
		terms := k.Terms()
		if len(terms) != 2 || terms[0].Number != 1 || terms[1].Number != 2 || !terms[1].Created.Equal(later) {
			t.Fatalf("Terms = %+v, want terms 1 and 2 (created %v)", terms, later)
		}
	})
	t.Run("the new term has a new key", func(t *testing.T) {
		if bytes.Equal(k.raw[0].Key, k.raw[1].Key) {
			t.Fatal("the rotated term reuses the old key")
		}
	})
	t.Run("data encrypted before the rotation still decrypts", func(t *testing.T) {
		if got, err := k.Decrypt("p", before); err != nil || string(got) != "before rotation" {
			t.Fatalf("Decrypt = %q, %v", got, err)
		}
	})
	t.Run("data encrypted after the rotation names the new term", func(t *testing.T) {
		if termOf(before) != 1 || termOf(after) != 2 {
			t.Fatalf("terms in headers: before %d, after %d; want 1 and 2", termOf(before), termOf(after))
		}
		if got, err := k.Decrypt("p", after); err != nil || string(got) != "after rotation" {
			t.Fatalf("Decrypt = %q, %v", got, err)
		}
	})
	t.Run("the keyring before the rotation is unchanged and does not know the new term", func(t *testing.T) {
		if old.ActiveTerm() != 1 || len(old.Terms()) != 1 {
			t.Fatalf("old keyring changed: active %d, terms %+v", old.ActiveTerm(), old.Terms())
		}
		if _, err := old.Decrypt("p", after); !errors.Is(err, ErrUnknownTerm) {
			t.Fatalf("old keyring on new data: %v, want ErrUnknownTerm", err)
		}
	})
	t.Run("a term's key only opens its own ciphertexts", func(t *testing.T) {
		forged := bytes.Clone(before)
		binary.BigEndian.PutUint32(forged[1:headerSize], 2)
		if _, err := k.Decrypt("p", forged); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("term 1 data relabelled as term 2: %v, want ErrDecrypt", err)
		}
	})
	t.Run("many rotations keep every term", func(t *testing.T) {
		cur := k
		for range 5 {
			if cur, err = cur.Rotate(later); err != nil {
				t.Fatal(err)
			}
		}
		if cur.ActiveTerm() != 7 || len(cur.Terms()) != 7 {
			t.Fatalf("after 5 more rotations: active %d, %d terms; want 7, 7", cur.ActiveTerm(), len(cur.Terms()))
		}
		for _, ct := range [][]byte{before, after} {
			if _, err := cur.Decrypt("p", ct); err != nil {
				t.Fatalf("Decrypt of term %d data: %v", termOf(ct), err)
			}
		}
	})
}

func TestTermsNeverExposeKeys(t *testing.T) {
	k, err := newKeyring(t).Rotate(t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("TermInfo has no field that could carry key bytes", func(t *testing.T) {
		typ := reflect.TypeFor[TermInfo]()
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Type.Kind() == reflect.Slice || f.Type.Kind() == reflect.Array || f.Type.Kind() == reflect.String {
				t.Fatalf("TermInfo.%s (%s) could carry a key", f.Name, f.Type)
			}
		}
	})
	printed, err := json.Marshal(k.Terms())
	if err != nil {
		t.Fatal(err)
	}
	printed = append(printed, fmt.Sprintf("%+v %#v", k.Terms(), k.Terms())...)
	for _, term := range k.raw {
		for _, enc := range []string{hex.EncodeToString(term.Key), base64.StdEncoding.EncodeToString(term.Key), string(term.Key)} {
			t.Run(fmt.Sprintf("term %d's key appears in no printed or JSON form of Terms", term.Number), func(t *testing.T) {
				if bytes.Contains(printed, []byte(enc)) {
					t.Fatalf("Terms output contains a key: %s", printed)
				}
			})
		}
	}
}

func TestWrapUnwrap(t *testing.T) {
	rootKey, err := RandomKey()
	if err != nil {
		t.Fatal(err)
	}
	k1 := newKeyring(t)
	ct1 := encrypt(t, k1, "p", []byte("term one"))
	k, err := k1.Rotate(t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	k, err = k.Rotate(t0.Add(2 * time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ct3 := encrypt(t, k, "p", []byte("term three"))
	blob, err := k.Wrap(rootKey)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("unwrapping keeps every term, its creation time and the active term", func(t *testing.T) {
		got, err := Unwrap(rootKey, blob)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Terms(), k.Terms()) || got.ActiveTerm() != 3 {
			t.Fatalf("unwrapped terms %+v active %d; want %+v active 3", got.Terms(), got.ActiveTerm(), k.Terms())
		}
		for _, c := range []struct {
			ct   []byte
			want string
		}{{ct1, "term one"}, {ct3, "term three"}} {
			if pt, err := got.Decrypt("p", c.ct); err != nil || string(pt) != c.want {
				t.Fatalf("unwrapped keyring Decrypt = %q, %v; want %q", pt, err, c.want)
			}
		}
		// And the other way round: data sealed by the unwrapped copy opens in the original.
		if pt, err := k.Decrypt("q", encrypt(t, got, "q", []byte("x"))); err != nil || string(pt) != "x" {
			t.Fatalf("original keyring on the unwrapped copy's data: %q, %v", pt, err)
		}
	})
	t.Run("the wrapped blob holds no key in the clear", func(t *testing.T) {
		for _, term := range k.raw {
			for _, enc := range [][]byte{term.Key, []byte(base64.StdEncoding.EncodeToString(term.Key))} {
				if bytes.Contains(blob, enc) {
					t.Fatalf("blob contains term %d's key", term.Number)
				}
			}
		}
		if bytes.Contains(blob, rootKey) {
			t.Fatal("blob contains the root key")
		}
	})
	t.Run("wrapping twice gives different blobs that both unwrap", func(t *testing.T) {
		again, err := k.Wrap(rootKey)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(again, blob) {
			t.Fatal("two wraps are identical: the nonce is not fresh")
		}
		if _, err := Unwrap(rootKey, again); err != nil {
			t.Fatal(err)
		}
	})

	otherRoot, err := RandomKey()
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(blob)
	tampered[len(tampered)-5] ^= 0x80
	cases := []struct {
		name    string
		rootKey []byte
		blob    []byte
		want    error // nil: any error
	}{
		{"a wrong root key fails with ErrDecrypt", otherRoot, blob, ErrDecrypt},
		{"a tampered blob fails with ErrDecrypt", rootKey, tampered, ErrDecrypt},
		{"a truncated blob fails with ErrDecrypt", rootKey, blob[:len(blob)-1], ErrDecrypt},
		{"a blob cut to its header fails with ErrDecrypt", rootKey, blob[:headerSize], ErrDecrypt},
		{"an empty blob fails with ErrDecrypt", rootKey, nil, ErrDecrypt},
		{"a blob of another format version fails with ErrDecrypt", rootKey, append([]byte{2}, blob[1:]...), ErrDecrypt},
		{"a data ciphertext is not a keyring", rootKey, ct3, ErrDecrypt},
		{"a root key of the wrong size is refused", rootKey[:16], blob, nil},
		{"an empty root key is refused", nil, blob, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Unwrap(c.rootKey, c.blob)
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Unwrap = %v, %v; want error %v", got, err, c.want)
			}
		})
	}
	t.Run("wrapping with a root key of the wrong size is refused", func(t *testing.T) {
		if _, err := k.Wrap(rootKey[:31]); err == nil {
			t.Fatal("Wrap accepted a 31-byte root key")
		}
	})
}

// wrapDoc seals an arbitrary keyring document the way Wrap does, to check
// that Unwrap validates what it decrypts.
func wrapDoc(t *testing.T, rootKey []byte, doc string) []byte {
	t.Helper()
	aead, err := newAEAD(rootKey)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := seal(aead, 0, keyringPath, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

func TestUnwrapValidatesTheKeyringDocument(t *testing.T) {
	rootKey, err := RandomKey()
	if err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KeySize))
	short := base64.StdEncoding.EncodeToString([]byte("short"))
	cases := []struct {
		name string
		doc  string
	}{
		{"a document that is not JSON is refused", `not json`},
		{"a keyring without terms is refused", `{"terms":[]}`},
		{"a keyring document without a terms field is refused", `{}`},
		{"a keyring with a duplicate term is refused", `{"terms":[{"term":1,"key":"` + key + `"},{"term":1,"key":"` + key + `"}]}`},
		{"a term with a short key is refused", `{"terms":[{"term":1,"key":"` + short + `"}]}`},
		{"a term without a key is refused", `{"terms":[{"term":1}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if k, err := Unwrap(rootKey, wrapDoc(t, rootKey, c.doc)); err == nil {
				t.Fatalf("Unwrap accepted %s: %+v", c.doc, k.Terms())
			}
		})
	}
	t.Run("terms stored out of order are sorted and the highest is active", func(t *testing.T) {
		key2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, KeySize))
		doc := `{"terms":[{"term":5,"key":"` + key2 + `"},{"term":2,"key":"` + key + `"}]}`
		k, err := Unwrap(rootKey, wrapDoc(t, rootKey, doc))
		if err != nil {
			t.Fatal(err)
		}
		terms := k.Terms()
		if k.ActiveTerm() != 5 || len(terms) != 2 || terms[0].Number != 2 || terms[1].Number != 5 {
			t.Fatalf("active %d, terms %+v; want active 5, terms [2 5]", k.ActiveTerm(), terms)
		}
		if termOf(encrypt(t, k, "p", nil)) != 5 {
			t.Fatal("new data is not sealed with the highest term")
		}
		next, err := k.Rotate(t0)
		if err != nil || next.ActiveTerm() != 6 {
			t.Fatalf("rotating after term 5 gave term %d, %v; want 6", next.ActiveTerm(), err)
		}
	})
}

func TestZero(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
	}{
		{"a key is overwritten with zeros", bytes.Repeat([]byte{0xab}, KeySize)},
		{"an empty slice is left alone", []byte{}},
		{"a nil slice is left alone", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			Zero(c.in)
			if !bytes.Equal(c.in, make([]byte, len(c.in))) {
				t.Fatalf("after Zero: %x", c.in)
			}
		})
	}
}

func FuzzDecrypt(f *testing.F) {
	k, err := NewKeyring(t0)
	if err != nil {
		f.Fatal(err)
	}
	const path = "secrets/static/prod/db#1"
	valid, err := k.Encrypt(path, []byte("fuzz seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(path, valid)
	f.Add("other", valid)
	f.Add(path, valid[:headerSize+nonceSize])
	f.Add(path, []byte{})
	f.Add("", []byte{formatVersion, 0, 0, 0, 1})
	f.Add(path, []byte("garbage garbage garbage garbage"))
	f.Fuzz(func(t *testing.T, p string, ct []byte) {
		pt, err := k.Decrypt(p, ct)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrUnknownTerm) {
				t.Fatalf("Decrypt error %v is neither ErrDecrypt nor ErrUnknownTerm", err)
			}
			if pt != nil {
				t.Fatalf("plaintext %q returned with an error", pt)
			}
			return
		}
		// Without the key nothing but the genuine ciphertext at its own path opens.
		if p != path || !bytes.Equal(ct, valid) || string(pt) != "fuzz seed" {
			t.Fatalf("Decrypt(%q, %x) = %q: a forged ciphertext opened", p, ct, pt)
		}
	})
}

func TestDestroyWipesTermKeys(t *testing.T) {
	k, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, err = k.Rotate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k.Destroy()
	for _, term := range k.raw {
		if !bytes.Equal(term.Key, make([]byte, KeySize)) {
			t.Fatalf("term %d key survived Destroy", term.Number)
		}
	}
}

// A derived key is fixed for a keyring's life (rotation keeps the first
// term), independent per label, and different in another keyring.
func TestDeriveIsStableAcrossRotationAndSeparatesLabels(t *testing.T) {
	k, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Derive("audit master")
	if err != nil || len(a) != KeySize {
		t.Fatalf("derive: %d bytes, %v", len(a), err)
	}
	rotated, err := k.Rotate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := rotated.Derive("audit master")
	other, _ := k.Derive("something else")
	k2, _ := NewKeyring(time.Now())
	elsewhere, _ := k2.Derive("audit master")
	switch {
	case !bytes.Equal(a, again):
		t.Fatal("a rotation changed the derived key")
	case bytes.Equal(a, other):
		t.Fatal("two labels derived the same key")
	case bytes.Equal(a, elsewhere):
		t.Fatal("two keyrings derived the same key")
	case bytes.Equal(a, k.raw[0].Key):
		t.Fatal("the derived key is the term's own key")
	}
}
