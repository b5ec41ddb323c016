package seal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/barrier"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/seal"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

func clock() time.Time { return t0 }

func bg() context.Context { return context.Background() }

// rootToken is a stored root token as initialization writes it; its hash is
// random so several initializations never collide.
func rootToken() storage.Token {
	return storage.Token{Hash: rand.Text(), Accessor: rand.Text(), Policies: []string{"root"}, DisplayName: "root", CreatedAt: t0}
}

// initialized returns a sealed Manager over a fresh SQLite store that has
// been initialized with the given split, and the key shares.
func initialized(t *testing.T, shares, threshold int) (*seal.Manager, *storage.DB, [][]byte) {
	t.Helper()
	db := storagetest.SQLite(t)
	m := seal.New(db, clock)
	res, err := m.Init(bg(), shares, threshold, rootToken())
	if err != nil {
		t.Fatalf("Init(%d, %d): %v", shares, threshold, err)
	}
	return m, db, res.Keys
}

// unsealWith feeds every key to m and requires it to end unsealed.
func unsealWith(t *testing.T, m *seal.Manager, keys ...[]byte) {
	t.Helper()
	var st seal.Status
	var err error
	for _, k := range keys {
		if st, err = m.Unseal(bg(), k); err != nil {
			t.Fatalf("Unseal: %v", err)
		}
	}
	if st.Sealed || m.Sealed() {
		t.Fatalf("still sealed after %d shares: %+v", len(keys), st)
	}
}

func encrypt(t *testing.T, m *seal.Manager, path, value string) []byte {
	t.Helper()
	ct, err := m.Encrypt(path, []byte(value))
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return ct
}

func mustDecrypt(t *testing.T, m *seal.Manager, path string, ct []byte, want string) {
	t.Helper()
	pt, err := m.Decrypt(bg(), path, ct)
	if err != nil || string(pt) != want {
		t.Fatalf("Decrypt(%q) = %q, %v; want %q", path, pt, err, want)
	}
}

func status(t *testing.T, m *seal.Manager) seal.Status {
	t.Helper()
	st, err := m.Status(bg())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// termOf reads the key term named in a barrier ciphertext's header.
func termOf(ct []byte) uint32 { return binary.BigEndian.Uint32(ct[1:5]) }

func TestInitValidatesTheSplit(t *testing.T) {
	cases := []struct {
		name              string
		shares, threshold int
		ok                bool
	}{
		{"zero shares are refused", 0, 0, false},
		{"negative shares are refused", -1, 1, false},
		{"more than 255 shares are refused", 256, 3, false},
		{"a zero threshold is refused", 5, 0, false},
		{"a negative threshold is refused", 5, -3, false},
		{"a threshold above the shares is refused", 5, 6, false},
		{"threshold 1 with several shares is refused", 5, 1, false},
		{"threshold 1 with two shares is refused", 2, 1, false},
		{"one share with threshold 2 is refused", 1, 2, false},
		{"one share with threshold 1 is allowed", 1, 1, true},
		{"two shares with threshold 2 are allowed", 2, 2, true},
		{"five shares with threshold 3 are allowed", 5, 3, true},
		{"255 shares with threshold 255 are allowed", 255, 255, true},
		{"255 shares with threshold 2 are allowed", 255, 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := storagetest.SQLite(t)
			m := seal.New(db, clock)
			res, err := m.Init(bg(), c.shares, c.threshold, rootToken())
			if !c.ok {
				if fault.KindOf(err) != fault.Invalid {
					t.Fatalf("Init(%d, %d) = %v; want an Invalid fault", c.shares, c.threshold, err)
				}
				if _, err := db.SealConfig(bg()); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("a refused init stored a seal config: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Init(%d, %d): %v", c.shares, c.threshold, err)
			}
			if len(res.Keys) != c.shares {
				t.Fatalf("got %d keys, want %d", len(res.Keys), c.shares)
			}
			st := status(t, m)
			if !st.Initialized || !st.Sealed || st.Shares != c.shares || st.Threshold != c.threshold || st.Type != seal.TypeShamir {
				t.Fatalf("status after init = %+v", st)
			}
		})
	}
}

func TestInit(t *testing.T) {
	db := storagetest.SQLite(t)
	m := seal.New(db, clock)
	root := rootToken()
	res, err := m.Init(bg(), 5, 3, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every share is 33 bytes and no two are alike", func(t *testing.T) {
		seen := map[string]bool{}
		for i, k := range res.Keys {
			if len(k) != barrier.KeySize+1 {
				t.Fatalf("share %d is %d bytes, want %d", i, len(k), barrier.KeySize+1)
			}
			if seen[string(k)] {
				t.Fatalf("share %d repeats an earlier share", i)
			}
			seen[string(k)] = true
		}
	})
	t.Run("the node stays sealed after init", func(t *testing.T) {
		if !m.Sealed() {
			t.Fatal("Init unsealed the node")
		}
		if _, err := m.Encrypt("p", []byte("x")); !errors.Is(err, seal.ErrSealed) {
			t.Fatalf("Encrypt after init: %v, want ErrSealed", err)
		}
	})
	t.Run("the seal config, keyring and root token are stored", func(t *testing.T) {
		cfg, err := db.SealConfig(bg())
		if err != nil || cfg.SecretShares != 5 || cfg.SecretThreshold != 3 || cfg.Type != seal.TypeShamir || !cfg.CreatedAt.Equal(t0) {
			t.Fatalf("SealConfig = %+v, %v", cfg, err)
		}
		if blob, err := db.Keyring(bg()); err != nil || len(blob) == 0 {
			t.Fatalf("Keyring = %x, %v", blob, err)
		}
		if tok, err := db.TokenByHash(bg(), root.Hash); err != nil || tok.Accessor != root.Accessor {
			t.Fatalf("root token = %+v, %v", tok, err)
		}
	})
	t.Run("no share and no reconstruction of the root key is stored", func(t *testing.T) {
		blob, _ := db.Keyring(bg())
		for _, k := range res.Keys {
			if bytes.Contains(blob, k[:barrier.KeySize]) {
				t.Fatal("the stored keyring contains a key share")
			}
		}
	})
	t.Run("initializing twice is refused", func(t *testing.T) {
		if _, err := m.Init(bg(), 5, 3, rootToken()); !errors.Is(err, seal.ErrAlreadyInitialized) {
			t.Fatalf("second Init: %v, want ErrAlreadyInitialized", err)
		}
	})
	t.Run("initializing from another node over the same store is refused", func(t *testing.T) {
		other := seal.New(db, clock)
		if _, err := other.Init(bg(), 1, 1, rootToken()); !errors.Is(err, seal.ErrAlreadyInitialized) {
			t.Fatalf("Init on another node: %v, want ErrAlreadyInitialized", err)
		}
		if blob, _ := db.Keyring(bg()); blob == nil {
			t.Fatal("keyring gone")
		}
		unsealWith(t, other, res.Keys[:3]...) // the original shares still open it
	})
	t.Run("a refused second init is an Invalid fault", func(t *testing.T) {
		_, err := m.Init(bg(), 5, 3, rootToken())
		if fault.KindOf(err) != fault.Invalid {
			t.Fatalf("kind = %v, want Invalid", fault.KindOf(err))
		}
	})
}

func TestInitWithOneShareReturnsTheRootKey(t *testing.T) {
	m, db, keys := initialized(t, 1, 1)
	if len(keys) != 1 || len(keys[0]) != barrier.KeySize {
		t.Fatalf("keys = %d of %d bytes; want one of %d", len(keys), len(keys[0]), barrier.KeySize)
	}
	blob, err := db.Keyring(bg())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the single key opens the stored keyring directly", func(t *testing.T) {
		if _, err := barrier.Unwrap(keys[0], blob); err != nil {
			t.Fatalf("Unwrap with the single key: %v", err)
		}
	})
	t.Run("the single key unseals in one step", func(t *testing.T) {
		st, err := m.Unseal(bg(), keys[0])
		if err != nil || st.Sealed || st.Progress != 0 {
			t.Fatalf("Unseal = %+v, %v", st, err)
		}
	})
	t.Run("a 33-byte key is refused when the key is the root key", func(t *testing.T) {
		fresh := seal.New(db, clock)
		if _, err := fresh.Unseal(bg(), append(bytes.Clone(keys[0]), 1)); fault.KindOf(err) != fault.Invalid {
			t.Fatalf("Unseal with 33 bytes: %v, want Invalid", err)
		}
	})
}

// postgresNodes opens n connection pools to one fresh, migrated PostgreSQL
// database, as n Core nodes sharing it would.
func postgresNodes(t *testing.T, n int) []*storage.DB {
	t.Helper()
	url := storagetest.PostgresURL(t)
	dbs := make([]*storage.DB, n)
	for i := range dbs {
		db, err := storage.Open(bg(), storage.Config{DatabaseURL: url, PoolSize: 4, ConnectTimeout: 5 * time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.MigrateUp(bg()); err != nil {
			t.Fatal(err)
		}
		dbs[i] = db
	}
	return dbs
}

func TestInitRaceOverOnePostgres(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprintf("round %d: exactly one of two nodes initializing at once wins", round), func(t *testing.T) {
			dbs := postgresNodes(t, 2)
			nodes := []*seal.Manager{seal.New(dbs[0], clock), seal.New(dbs[1], clock)}
			var (
				wg      sync.WaitGroup
				start   = make(chan struct{})
				results = make([]seal.InitResult, 2)
				errs    = make([]error, 2)
			)
			for i, n := range nodes {
				wg.Go(func() {
					<-start
					results[i], errs[i] = n.Init(bg(), 3, 2, rootToken())
				})
			}
			close(start)
			wg.Wait()
			winners := 0
			var keys [][]byte
			for i, err := range errs {
				switch {
				case err == nil:
					winners++
					keys = results[i].Keys
				case !errors.Is(err, seal.ErrAlreadyInitialized):
					t.Fatalf("node %d: %v, want success or ErrAlreadyInitialized", i, err)
				}
			}
			if winners != 1 {
				t.Fatalf("%d nodes won the init race, want exactly 1 (errors %v)", winners, errs)
			}
			for i, n := range nodes {
				if st := status(t, n); !st.Initialized || st.Shares != 3 || st.Threshold != 2 {
					t.Fatalf("node %d status %+v", i, st)
				}
				unsealWith(t, n, keys[:2]...) // the winner's shares open both nodes
			}
		})
	}
}

func TestUnsealProgress(t *testing.T) {
	m, _, keys := initialized(t, 5, 3)

	st, err := m.Unseal(bg(), keys[0])
	if err != nil {
		t.Fatal(err)
	}
	nonce := st.Nonce
	t.Run("the first share starts progress with a nonce", func(t *testing.T) {
		if !st.Sealed || st.Progress != 1 || st.Threshold != 3 || st.Shares != 5 || nonce == "" {
			t.Fatalf("status after one share = %+v", st)
		}
		if got := status(t, m); got.Progress != 1 || got.Nonce != nonce {
			t.Fatalf("Status = %+v, want progress 1 nonce %s", got, nonce)
		}
	})
	t.Run("the same share again does not count", func(t *testing.T) {
		st, err := m.Unseal(bg(), bytes.Clone(keys[0]))
		if err != nil || st.Progress != 1 || st.Nonce != nonce || !st.Sealed {
			t.Fatalf("duplicate share: %+v, %v; want progress 1", st, err)
		}
	})
	t.Run("a share of the wrong length is refused without counting", func(t *testing.T) {
		for _, bad := range [][]byte{nil, keys[1][:barrier.KeySize], append(bytes.Clone(keys[1]), 0)} {
			_, err := m.Unseal(bg(), bad)
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("Unseal(%d bytes) = %v; want Invalid", len(bad), err)
			}
		}
		if got := status(t, m); got.Progress != 1 || got.Nonce != nonce {
			t.Fatalf("progress after refused shares = %+v", got)
		}
	})
	t.Run("a second share advances progress under the same nonce", func(t *testing.T) {
		st, err := m.Unseal(bg(), keys[1])
		if err != nil || st.Progress != 2 || st.Nonce != nonce || !st.Sealed {
			t.Fatalf("second share: %+v, %v", st, err)
		}
	})
	t.Run("the threshold share unseals and clears progress", func(t *testing.T) {
		st, err := m.Unseal(bg(), keys[4])
		if err != nil || st.Sealed || st.Progress != 0 || st.Nonce != "" {
			t.Fatalf("third share: %+v, %v", st, err)
		}
	})
	t.Run("a share sent while unsealed changes nothing", func(t *testing.T) {
		st, err := m.Unseal(bg(), []byte("garbage of any length"))
		if err != nil || st.Sealed || st.Progress != 0 {
			t.Fatalf("Unseal while unsealed: %+v, %v", st, err)
		}
	})
	t.Run("a new unseal after sealing gets a new nonce", func(t *testing.T) {
		m.Seal()
		st, err := m.Unseal(bg(), keys[2])
		if err != nil || st.Progress != 1 || st.Nonce == "" || st.Nonce == nonce {
			t.Fatalf("after reseal: %+v, %v; want progress 1 with a nonce other than %s", st, err, nonce)
		}
	})
}

func TestResetUnseal(t *testing.T) {
	m, _, keys := initialized(t, 3, 2)
	if _, err := m.Unseal(bg(), keys[0]); err != nil {
		t.Fatal(err)
	}
	st, err := m.ResetUnseal(bg())
	t.Run("reset discards progress and nonce", func(t *testing.T) {
		if err != nil || st.Progress != 0 || st.Nonce != "" || !st.Sealed {
			t.Fatalf("ResetUnseal = %+v, %v", st, err)
		}
	})
	t.Run("after a reset the threshold is counted from zero", func(t *testing.T) {
		st, err := m.Unseal(bg(), keys[1])
		if err != nil || st.Progress != 1 || !st.Sealed {
			t.Fatalf("first share after reset: %+v, %v", st, err)
		}
		unsealWith(t, m, keys[2])
	})
}

func TestUnsealBeforeInit(t *testing.T) {
	m := seal.New(storagetest.SQLite(t), clock)
	t.Run("status reports uninitialized and sealed", func(t *testing.T) {
		st := status(t, m)
		if st.Initialized || !st.Sealed || st.Type != seal.TypeShamir || st.Progress != 0 {
			t.Fatalf("Status = %+v", st)
		}
	})
	t.Run("unsealing is refused as not initialized", func(t *testing.T) {
		if _, err := m.Unseal(bg(), make([]byte, 33)); !errors.Is(err, seal.ErrNotInitialized) {
			t.Fatalf("Unseal: %v, want ErrNotInitialized", err)
		}
	})
	t.Run("rotating is refused as sealed", func(t *testing.T) {
		if _, err := m.Rotate(bg()); !errors.Is(err, seal.ErrSealed) {
			t.Fatalf("Rotate: %v, want ErrSealed", err)
		}
	})
}

func TestUnsealWithForeignShares(t *testing.T) {
	_, db, keys := initialized(t, 5, 3)
	_, _, foreign := initialized(t, 5, 3)
	cases := []struct {
		name   string
		shares [][]byte
	}{
		{"three shares of another init fail", foreign[:3]},
		{"two own shares and one foreign fail", [][]byte{keys[0], keys[1], foreign[2]}},
		{"one own share and two foreign fail", [][]byte{foreign[0], keys[1], foreign[3]}},
		{"a forged share of random bytes fails", [][]byte{keys[0], keys[1], randomShare(t)}},
		{"a share altered but for its x-coordinate fails", [][]byte{keys[0], keys[1], altered(keys[1])}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := seal.New(db, clock)
			for _, k := range c.shares[:len(c.shares)-1] {
				if _, err := m.Unseal(bg(), k); err != nil {
					t.Fatal(err)
				}
			}
			st, err := m.Unseal(bg(), c.shares[len(c.shares)-1])
			if !errors.Is(err, seal.ErrUnsealFailed) {
				t.Fatalf("Unseal = %+v, %v; want ErrUnsealFailed", st, err)
			}
			if got := status(t, m); !got.Sealed || got.Progress != 0 || got.Nonce != "" {
				t.Fatalf("status after a failed unseal = %+v; want sealed with progress reset", got)
			}
			unsealWith(t, m, keys[2], keys[3], keys[4]) // the right shares still work afterwards
		})
	}
}

func randomShare(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, barrier.KeySize+1)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// altered changes a share's value but keeps its last byte, the
// x-coordinate Shamir combines it by.
func altered(share []byte) []byte {
	out := bytes.Clone(share)
	out[0] ^= 0xff
	return out
}

func TestStorageFailuresAreNotMistakenForAnUninitializedStore(t *testing.T) {
	db, err := storage.Open(bg(), storage.Config{DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MigrateUp(bg()); err != nil {
		t.Fatal(err)
	}
	m := seal.New(db, clock)
	db.Close()
	cases := []struct {
		name string
		call func() error
	}{
		{"status reports the storage error", func() error { _, err := m.Status(bg()); return err }},
		{"init reports the storage error instead of initializing", func() error { _, err := m.Init(bg(), 1, 1, rootToken()); return err }},
		{"unseal reports the storage error", func() error { _, err := m.Unseal(bg(), make([]byte, 32)); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil || errors.Is(err, seal.ErrNotInitialized) || errors.Is(err, seal.ErrAlreadyInitialized) {
				t.Fatalf("got %v, want the storage error", err)
			}
		})
	}
}

func TestAnyThresholdOfSharesUnseals(t *testing.T) {
	_, db, keys := initialized(t, 5, 3)
	for a := 0; a < 5; a++ {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				t.Run(fmt.Sprintf("shares %d, %d and %d unseal", a+1, b+1, c+1), func(t *testing.T) {
					m := seal.New(db, clock)
					for i, k := range [][]byte{keys[c], keys[a], keys[b]} {
						st, err := m.Unseal(bg(), k)
						if err != nil {
							t.Fatal(err)
						}
						if i < 2 && (!st.Sealed || st.Progress != i+1) {
							t.Fatalf("after %d shares: %+v", i+1, st)
						}
					}
					if m.Sealed() {
						t.Fatal("still sealed after three shares")
					}
				})
			}
		}
	}
}

func TestParseKey(t *testing.T) {
	// These bytes encode with '+' and '/' in standard base64 and '-' and '_'
	// in the URL alphabet, so each variant is really exercised.
	key := bytes.Repeat([]byte{0xfb, 0xef, 0xbe}, 11)
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"lower-case hex is accepted", hex.EncodeToString(key), true},
		{"upper-case hex is accepted", strings.ToUpper(hex.EncodeToString(key)), true},
		{"hex with surrounding whitespace is accepted", "  " + hex.EncodeToString(key) + "\n", true},
		{"standard base64 is accepted", base64.StdEncoding.EncodeToString(key), true},
		{"standard base64 without padding is accepted", base64.RawStdEncoding.EncodeToString(key[:32]), true},
		{"URL-safe base64 is accepted", base64.URLEncoding.EncodeToString(key), true},
		{"URL-safe base64 without padding is accepted", base64.RawURLEncoding.EncodeToString(key[:32]), true},
		{"an empty key is refused", "", false},
		{"a key of only whitespace is refused", " \t\n", false},
		{"text that is neither hex nor base64 is refused", "not a key!", false},
		{"base64 with an invalid character is refused", base64.StdEncoding.EncodeToString(key)[:20] + "*" + base64.StdEncoding.EncodeToString(key)[21:], false},
		{"a mix of both base64 alphabets is refused", "+/-_" + base64.StdEncoding.EncodeToString(key)[4:], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := seal.ParseKey(c.in)
			if !c.ok {
				if fault.KindOf(err) != fault.Invalid {
					t.Fatalf("ParseKey(%q) = %x, %v; want an Invalid fault", c.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", c.in, err)
			}
			if want := key[:len(got)]; len(got) < 32 || !bytes.Equal(got, want) {
				t.Fatalf("ParseKey(%q) = %x, want %x", c.in, got, want)
			}
		})
	}
	t.Run("a share given as hex or base64 unseals alike", func(t *testing.T) {
		m, _, keys := initialized(t, 3, 2)
		a, err := seal.ParseKey(hex.EncodeToString(keys[0]))
		if err != nil {
			t.Fatal(err)
		}
		b, err := seal.ParseKey(base64.StdEncoding.EncodeToString(keys[1]))
		if err != nil {
			t.Fatal(err)
		}
		unsealWith(t, m, a, b)
	})
}

func TestSealDropsTheKeyring(t *testing.T) {
	m, _, keys := initialized(t, 3, 2)
	unsealWith(t, m, keys[0], keys[1])
	ct := encrypt(t, m, "p", "value")
	if _, err := m.Unseal(bg(), keys[2]); err != nil { // no progress while unsealed
		t.Fatal(err)
	}
	m.Seal()
	cases := []struct {
		name string
		call func() error
	}{
		{"Encrypt is refused as sealed", func() error { _, err := m.Encrypt("p", []byte("x")); return err }},
		{"Decrypt is refused as sealed", func() error { _, err := m.Decrypt(bg(), "p", ct); return err }},
		{"Rotate is refused as sealed", func() error { _, err := m.Rotate(bg()); return err }},
		{"KeyStatus is refused as sealed", func() error { _, err := m.KeyStatus(); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, seal.ErrSealed) {
				t.Fatalf("got %v, want ErrSealed", err)
			}
		})
	}
	t.Run("the sealed error is an Unavailable fault with the runbook's message", func(t *testing.T) {
		_, err := m.Encrypt("p", nil)
		if fault.KindOf(err) != fault.Unavailable || fault.Message(err) != "SecretHub is sealed" {
			t.Fatalf("kind %v message %q", fault.KindOf(err), fault.Message(err))
		}
	})
	t.Run("status reports sealed and initialized", func(t *testing.T) {
		if st := status(t, m); !st.Sealed || !st.Initialized || !m.Sealed() {
			t.Fatalf("Status = %+v", st)
		}
	})
	t.Run("sealing twice is harmless", func(t *testing.T) {
		m.Seal()
		if !m.Sealed() {
			t.Fatal("not sealed")
		}
	})
	t.Run("sealing discards an unseal in progress", func(t *testing.T) {
		if _, err := m.Unseal(bg(), keys[0]); err != nil {
			t.Fatal(err)
		}
		m.Seal()
		if st := status(t, m); st.Progress != 0 || st.Nonce != "" {
			t.Fatalf("progress survived Seal: %+v", st)
		}
	})
	t.Run("unsealing again opens data written before sealing", func(t *testing.T) {
		unsealWith(t, m, keys[2], keys[0])
		mustDecrypt(t, m, "p", ct, "value")
	})
}

func TestRotate(t *testing.T) {
	m, db, keys := initialized(t, 3, 2)
	unsealWith(t, m, keys[0], keys[1])
	before := encrypt(t, m, "p", "before")
	blobBefore, _ := db.Keyring(bg())

	term, err := m.Rotate(bg())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("rotation returns the new term", func(t *testing.T) {
		if term.Number != 2 || !term.Created.Equal(t0) {
			t.Fatalf("Rotate = %+v, want term 2 created %v", term, t0)
		}
		if ks, err := m.KeyStatus(); err != nil || ks != term {
			t.Fatalf("KeyStatus = %+v, %v; want %+v", ks, err, term)
		}
	})
	t.Run("data from before the rotation stays readable", func(t *testing.T) {
		mustDecrypt(t, m, "p", before, "before")
	})
	t.Run("new data is sealed with the new term", func(t *testing.T) {
		after := encrypt(t, m, "q", "after")
		if termOf(before) != 1 || termOf(after) != 2 {
			t.Fatalf("terms: before %d, after %d", termOf(before), termOf(after))
		}
		mustDecrypt(t, m, "q", after, "after")
	})
	t.Run("the rotated keyring is stored wrapped by the same root key", func(t *testing.T) {
		blob, err := db.Keyring(bg())
		if err != nil || bytes.Equal(blob, blobBefore) {
			t.Fatalf("stored keyring unchanged by rotation (%v)", err)
		}
		restarted := seal.New(db, clock)
		unsealWith(t, restarted, keys[1], keys[2])
		if ks, _ := restarted.KeyStatus(); ks.Number != 2 {
			t.Fatalf("after restart the active term is %d, want 2", ks.Number)
		}
		mustDecrypt(t, restarted, "p", before, "before")
	})
}

func TestAnotherNodeReadsDataAfterRotation(t *testing.T) {
	a, db, keys := initialized(t, 3, 2)
	b := seal.New(db, clock)
	unsealWith(t, a, keys[0], keys[1])
	unsealWith(t, b, keys[1], keys[2])
	old := encrypt(t, b, "p", "from b before")

	if _, err := a.Rotate(bg()); err != nil {
		t.Fatal(err)
	}
	fresh := encrypt(t, a, "q", "from a after")

	t.Run("the other node decrypts a term it had not loaded by reloading", func(t *testing.T) {
		if ks, _ := b.KeyStatus(); ks.Number != 1 {
			t.Fatalf("b already knows term %d before reading", ks.Number)
		}
		mustDecrypt(t, b, "q", fresh, "from a after")
		if ks, _ := b.KeyStatus(); ks.Number != 2 {
			t.Fatalf("b's active term after reload = %d, want 2", ks.Number)
		}
	})
	t.Run("the rotating node still reads the other node's older data", func(t *testing.T) {
		mustDecrypt(t, a, "p", old, "from b before")
	})
	t.Run("a term no node ever made stays unknown after the reload", func(t *testing.T) {
		forged := bytes.Clone(fresh)
		binary.BigEndian.PutUint32(forged[1:5], 9)
		if _, err := b.Decrypt(bg(), "q", forged); !errors.Is(err, barrier.ErrUnknownTerm) {
			t.Fatalf("Decrypt of term 9: %v, want ErrUnknownTerm", err)
		}
	})
	t.Run("a node that rotates after another keeps both new terms", func(t *testing.T) {
		term, err := b.Rotate(bg())
		if err != nil || term.Number != 3 {
			t.Fatalf("b.Rotate = %+v, %v; want term 3", term, err)
		}
		mustDecrypt(t, b, "q", fresh, "from a after")
		mustDecrypt(t, a, "r", encrypt(t, b, "r", "term 3"), "term 3")
	})
}

func TestConcurrentRotateOverOnePostgres(t *testing.T) {
	dbs := postgresNodes(t, 2)
	dbA, dbB := dbs[0], dbs[1]
	a, b := seal.New(dbA, clock), seal.New(dbB, clock)
	res, err := a.Init(bg(), 3, 2, rootToken())
	if err != nil {
		t.Fatal(err)
	}
	unsealWith(t, a, res.Keys[0], res.Keys[1])
	unsealWith(t, b, res.Keys[1], res.Keys[2])

	const rounds = 5
	type sealed struct {
		path string
		ct   []byte
	}
	var written []sealed
	for round := range rounds {
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			terms [2]barrier.TermInfo
			errs  [2]error
			cts   [2][]byte
		)
		for i, m := range []*seal.Manager{a, b} {
			wg.Go(func() {
				<-start
				if terms[i], errs[i] = m.Rotate(bg()); errs[i] == nil {
					cts[i], errs[i] = m.Encrypt(fmt.Sprintf("n%d/r%d", i, round), []byte("v"))
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range 2 {
			if errs[i] != nil {
				t.Fatalf("round %d node %d: %v", round, i, errs[i])
			}
			written = append(written, sealed{fmt.Sprintf("n%d/r%d", i, round), cts[i]})
		}
		if terms[0].Number == terms[1].Number {
			t.Fatalf("round %d: both nodes report term %d", round, terms[0].Number)
		}
	}
	t.Run("both nodes' rotations succeed and no term is lost", func(t *testing.T) {
		blob, err := dbA.Keyring(bg())
		if err != nil {
			t.Fatal(err)
		}
		fresh := seal.New(dbB, clock)
		unsealWith(t, fresh, res.Keys[0], res.Keys[2])
		ks, _ := fresh.KeyStatus()
		if want := uint32(1 + 2*rounds); ks.Number != want || len(blob) == 0 {
			t.Fatalf("active term after %d concurrent rotation pairs = %d, want %d", rounds, ks.Number, want)
		}
		for _, w := range written {
			for _, m := range []*seal.Manager{a, b, fresh} {
				mustDecrypt(t, m, w.path, w.ct, "v")
			}
		}
	})
}

func TestRestartIsInitializedAndSealed(t *testing.T) {
	m, db, keys := initialized(t, 3, 2)
	unsealWith(t, m, keys[0], keys[2])
	ct := encrypt(t, m, "p", "survives restart")

	restarted := seal.New(db, nil)
	t.Run("a new manager over the same store is initialized and sealed", func(t *testing.T) {
		st := status(t, restarted)
		if !st.Initialized || !st.Sealed || st.Shares != 3 || st.Threshold != 2 || st.Progress != 0 {
			t.Fatalf("Status = %+v", st)
		}
	})
	t.Run("it refuses a new init", func(t *testing.T) {
		if _, err := restarted.Init(bg(), 1, 1, rootToken()); !errors.Is(err, seal.ErrAlreadyInitialized) {
			t.Fatalf("Init: %v", err)
		}
	})
	t.Run("it unseals with the original shares and reads old data", func(t *testing.T) {
		unsealWith(t, restarted, keys[1], keys[0])
		mustDecrypt(t, restarted, "p", ct, "survives restart")
	})
}

// Decrypt of a term the node does not know reloads the keyring under the
// lock; a Seal right after must not leave it dereferencing a nil state.
func TestDecryptRacingSealNeverPanics(t *testing.T) {
	m, _, keys := initialized(t, 1, 1)
	unsealWith(t, m, keys[0])
	unknown := encrypt(t, m, "p", "x")
	binary.BigEndian.PutUint32(unknown[1:5], 99)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			m.Seal()
			_, _ = m.Unseal(bg(), keys[0])
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
	}()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		_, err := m.Decrypt(bg(), "p", unknown)
		if !errors.Is(err, barrier.ErrUnknownTerm) && !errors.Is(err, seal.ErrSealed) {
			t.Fatalf("Decrypt while sealing and unsealing: %v", err)
		}
	}
}

func TestReloadMovesAnotherNodeToTheNewestTerm(t *testing.T) {
	a, db, keys := initialized(t, 3, 2)
	b := seal.New(db, clock)
	if err := b.Reload(bg()); !errors.Is(err, seal.ErrSealed) {
		t.Fatalf("Reload while sealed = %v, want ErrSealed", err)
	}
	unsealWith(t, a, keys[0], keys[1])
	unsealWith(t, b, keys[1], keys[2])
	if _, err := a.Rotate(bg()); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(bg()); err != nil {
		t.Fatal(err)
	}
	ct := encrypt(t, b, "p", "after reload")
	if term := binary.BigEndian.Uint32(ct[1:5]); term != 2 {
		t.Fatalf("b encrypts with term %d after Reload, want 2", term)
	}
	mustDecrypt(t, a, "p", ct, "after reload")
}
