package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// testKeys are the keys of every test's cluster.
var testKeys = NewKeys([]byte("0123456789abcdef0123456789abcdef"))

func TestKeysDeriveSeparateKeysFromTheMaster(t *testing.T) {
	master := bytes.Repeat([]byte{7}, MasterSize)
	derive := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	k := NewKeys(master)
	valueKey := derive(master, "secrethub audit hmac")
	want := HMACPrefix + hex.EncodeToString(derive(valueKey, "s.token-value"))
	if got := k.HMAC("s.token-value"); got != want {
		t.Fatalf("HMAC = %s, want %s", got, want)
	}
	checkpointKey := derive(master, "secrethub audit checkpoint")
	if got, want := k.mac([]byte("ab"), []byte("c")), hex.EncodeToString(derive(checkpointKey, "abc")); got != want {
		t.Fatalf("MAC = %s, want %s", got, want)
	}
	if k.mac([]byte("abc")) == strings.TrimPrefix(k.HMAC("abc"), HMACPrefix) {
		t.Fatal("values and checkpoints are authenticated with the same key")
	}
	other := NewKeys(bytes.Repeat([]byte{8}, MasterSize))
	if other.HMAC("x") == k.HMAC("x") {
		t.Fatal("two masters give the same HMAC")
	}
	if (*Keys)(nil).mac([]byte("x")) != "" {
		t.Fatal("nil keys (sealed) made a MAC")
	}
}

func TestKeysNeverPrint(t *testing.T) {
	k := NewKeys(bytes.Repeat([]byte{0xAB}, MasterSize))
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, k)
		if strings.Contains(strings.ToLower(out), "ab") || strings.Contains(out, "[") {
			t.Errorf("%s prints key material: %s", format, out)
		}
	}
}

func TestAShortMasterIsRefused(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewKeys accepted a 16-byte master")
		}
	}()
	NewKeys(make([]byte, 16))
}

// The keys reuse their HMAC states: a reused state must start afresh, and
// goroutines must not share one.
func TestKeysReuseMACStatesSafely(t *testing.T) {
	master := bytes.Repeat([]byte{9}, MasterSize)
	k := NewKeys(master)
	want := map[string]string{}
	for _, v := range []string{"a", "bb", ""} {
		want[v] = NewKeys(master).HMAC(v) // each from a state never used before
	}
	wantMAC := NewKeys(master).mac([]byte("x"), []byte("y"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				for v, w := range want {
					if got := k.HMAC(v); got != w {
						t.Errorf("HMAC(%q) = %s, want %s", v, got, w)
						return
					}
				}
				if got := k.mac([]byte("x"), []byte("y")); got != wantMAC {
					t.Errorf("mac = %s, want %s", got, wantMAC)
					return
				}
			}
		}()
	}
	wg.Wait()
}
