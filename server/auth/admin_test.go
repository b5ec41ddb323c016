package auth

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
	"github.com/secrethub/secrethub/storage/storagetest"
)

const (
	adminName     = "admin"
	adminPassword = "correct horse battery staple"
)

var (
	adminStart = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	loopback   = netip.MustParseAddr("127.0.0.1")
)

// hashOf is a bcrypt hash of password at the lowest cost, so tests are
// quick; x/crypto writes the $2a$ prefix.
func hashOf(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(h), "$2a$") {
		t.Fatalf("x/crypto made %.4s, want $2a$", h)
	}
	return string(h)
}

// adminFixture is an admin login over a fresh SQLite store, on a clock the
// test moves, counting the bcrypt comparisons it runs.
type adminFixture struct {
	db       *storage.DB
	now      time.Time
	tokens   *Tokens
	login    *AdminLogin
	compares atomic.Int32
}

func newAdminFixture(t *testing.T, username, hash string, ttl time.Duration) *adminFixture {
	t.Helper()
	f := &adminFixture{db: storagetest.SQLite(t), now: adminStart}
	clock := func() time.Time { return f.now }
	f.tokens = NewTokens(f.db, clock)
	login, err := NewAdminLogin(username, hash, f.tokens, f.db, ttl, clock)
	if err != nil {
		t.Fatalf("NewAdminLogin: %v", err)
	}
	login.compare = func(hash, password []byte) error {
		f.compares.Add(1)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	f.login = login
	return f
}

func (f *adminFixture) attempt(username, password string, client netip.Addr) (Issued, error) {
	return f.login.Login(context.Background(), username, password, client)
}

// comparesDuring counts the bcrypt comparisons fn runs.
func (f *adminFixture) comparesDuring(fn func()) int {
	before := f.compares.Load()
	fn()
	return int(f.compares.Load() - before)
}

func TestAdminLoginIssuesAnAdminToken(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 0)
	issued, err := f.attempt(adminName, adminPassword, loopback)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	tok := issued.Token
	if want := []string{AdminPolicy, DefaultPolicy}; !slices.Equal(tok.Policies, want) {
		t.Fatalf("policies = %q, want %q", tok.Policies, want)
	}
	if tok.TTL != 30*time.Minute || !tok.ExpiresAt.Equal(adminStart.Add(30*time.Minute)) || !tok.MaxExpiresAt.Equal(adminStart.Add(30*time.Minute)) {
		t.Fatalf("ttl %v, expires %v, max expires %v; want 30m from %v", tok.TTL, tok.ExpiresAt, tok.MaxExpiresAt, adminStart)
	}
	if tok.Meta["username"] != adminName || tok.DisplayName != "token-admin-admin" || tok.ParentAccessor != "" {
		t.Fatalf("meta %v, display name %q, parent %q", tok.Meta, tok.DisplayName, tok.ParentAccessor)
	}

	got, err := f.tokens.Authenticate(context.Background(), issued.ID, loopback)
	if err != nil {
		t.Fatalf("the issued token does not authenticate: %v", err)
	}
	if got.Accessor != tok.Accessor || !slices.Equal(got.Policies, tok.Policies) || got.Meta["username"] != adminName {
		t.Fatalf("stored token %+v differs from the issued one %+v", got, tok)
	}

	f.now = adminStart.Add(30 * time.Minute)
	if _, err := f.tokens.Authenticate(context.Background(), issued.ID, loopback); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("after 30 minutes: %v, want ErrInvalidToken", err)
	}
}

func TestAdminLoginUsesTheConfiguredTTL(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 10*time.Minute)
	issued, err := f.attempt(adminName, adminPassword, loopback)
	if err != nil {
		t.Fatal(err)
	}
	if issued.Token.TTL != 10*time.Minute || !issued.Token.MaxExpiresAt.Equal(adminStart.Add(10*time.Minute)) {
		t.Fatalf("ttl %v, max expires %v; want 10m", issued.Token.TTL, issued.Token.MaxExpiresAt)
	}
}

func TestAdminLoginFailuresLookAlike(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 0)
	cases := []struct {
		name, username, password string
	}{
		{"a wrong password", adminName, "wrong"},
		{"a wrong username", "root", adminPassword},
		{"both wrong", "root", "wrong"},
		{"a username differing only in case", "Admin", adminPassword},
		{"a prefix of the username", "adm", adminPassword},
		{"the username with more after it", "admin2", adminPassword},
		{"an empty username", "", adminPassword},
		{"an empty password", adminName, ""},
		{"the password with more after it", adminName, adminPassword + "!"},
	}
	for i, c := range cases {
		t.Run("refuses "+c.name, func(t *testing.T) {
			client := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
			var err error
			n := f.comparesDuring(func() { _, err = f.attempt(c.username, c.password, client) })
			if err != ErrInvalidAdminLogin {
				t.Fatalf("err = %v, want ErrInvalidAdminLogin itself", err)
			}
			if n != 1 {
				t.Fatalf("%d bcrypt comparisons, want exactly 1", n)
			}
			if c.password != "" && strings.Contains(err.Error(), c.password) {
				t.Fatalf("error %q holds the password", err)
			}
		})
	}
}

func TestAdminLoginWorkIsTheSameForUnknownUsers(t *testing.T) {
	hash := hashOf(t, adminPassword)
	f := newAdminFixture(t, adminName, hash, 0)
	var seen [][]byte
	f.login.compare = func(h, password []byte) error {
		f.compares.Add(1)
		seen = append(seen, h)
		return bcrypt.CompareHashAndPassword(h, password)
	}
	known := f.comparesDuring(func() { _, _ = f.attempt(adminName, "wrong", netip.MustParseAddr("192.0.2.1")) })
	unknown := f.comparesDuring(func() { _, _ = f.attempt("nobody", "wrong", netip.MustParseAddr("192.0.2.2")) })
	if known != 1 || unknown != 1 {
		t.Fatalf("bcrypt comparisons: %d for the known user, %d for an unknown one; want 1 and 1", known, unknown)
	}
	// Same hash, so the same cost and salt: the work cannot differ.
	if len(seen) != 2 || string(seen[0]) != hash || string(seen[1]) != hash {
		t.Fatal("the two logins compared against different hashes")
	}
}

func TestAdminLoginAcceptsEveryBcryptVersion(t *testing.T) {
	generated := hashOf(t, adminPassword)
	cases := []struct{ name, hash string }{
		{"$2a$ from x/crypto", generated},
		{"$2b$ (the $2a$ hash relabelled: same algorithm)", "$2b$" + generated[4:]},
		{"$2y$ (a $2b$ hash relabelled, as PHP and htpasswd write it)", "$2y$" + generated[4:]},
		// Made by libxcrypt: python3 -c 'import crypt; print(crypt.crypt(
		// "correct horse battery staple", "$2b$04$abcdefghijklmnopqrstuu"))',
		// and the same with $2y$: an implementation other than x/crypto.
		{"$2b$ from libxcrypt", "$2b$04$abcdefghijklmnopqrstuu7EJV7kdjBBQxyb0HjTh9KS7.Lah/6CG"},
		{"$2y$ from libxcrypt", "$2y$04$abcdefghijklmnopqrstuu7EJV7kdjBBQxyb0HjTh9KS7.Lah/6CG"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newAdminFixture(t, adminName, c.hash, 0)
			if _, err := f.attempt(adminName, adminPassword, loopback); err != nil {
				t.Fatalf("the right password: %v", err)
			}
			if _, err := f.attempt(adminName, "wrong", loopback); err != ErrInvalidAdminLogin {
				t.Fatalf("a wrong password: %v, want ErrInvalidAdminLogin", err)
			}
		})
	}
}

func TestNewAdminLoginRefusesBadConfiguration(t *testing.T) {
	good := hashOf(t, adminPassword)
	db := storagetest.SQLite(t)
	tokens := NewTokens(db, nil)
	cases := []struct {
		name, username, hash string
		ttl                  time.Duration
		names                string // what the error must mention
	}{
		{"a plain password", adminName, "hunter2-not-a-hash", 0, "ADMIN_PASSWORD_HASH"},
		{"an MD5 crypt hash", adminName, "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", 0, "ADMIN_PASSWORD_HASH"},
		{"an unknown bcrypt variant", adminName, "$2x$" + good[4:], 0, "ADMIN_PASSWORD_HASH"},
		{"a truncated hash", adminName, good[:59], 0, "ADMIN_PASSWORD_HASH"},
		{"a hash with a trailing newline", adminName, good + "\n", 0, "ADMIN_PASSWORD_HASH"},
		{"a hash with a one-digit cost", adminName, "$2b$4$" + good[7:] + "x", 0, "ADMIN_PASSWORD_HASH"},
		{"a cost below 4", adminName, "$2b$03$" + good[7:], 0, "ADMIN_PASSWORD_HASH"},
		{"a cost above 31", adminName, "$2b$32$" + good[7:], 0, "ADMIN_PASSWORD_HASH"},
		{"a cost of 16, a login of seconds", adminName, "$2b$16$" + good[7:], 0, "ADMIN_PASSWORD_HASH"},
		{"a cost of 31, a login of days", adminName, "$2b$31$" + good[7:], 0, "ADMIN_PASSWORD_HASH"},
		{"a hash without a username", "", good, 0, "ADMIN_USERNAME"},
		{"a username without a hash", adminName, "", 0, "ADMIN_PASSWORD_HASH"},
		{"a negative TTL", adminName, good, -time.Minute, "TTL"},
	}
	for _, c := range cases {
		t.Run("refuses "+c.name, func(t *testing.T) {
			login, err := NewAdminLogin(c.username, c.hash, tokens, db, c.ttl, nil)
			if err == nil || login != nil {
				t.Fatalf("NewAdminLogin = %v, %v; want an error", login, err)
			}
			if !strings.Contains(err.Error(), c.names) {
				t.Fatalf("error %q does not name %s", err, c.names)
			}
			if leaksPartOf(err.Error(), c.hash) {
				t.Fatalf("error %q repeats part of the hash", err)
			}
		})
	}
}

func TestAdminHashCostLimits(t *testing.T) {
	good := hashOf(t, adminPassword) // cost 4
	for _, cost := range []string{"04", "09", "10", "12", "15"} {
		hash := "$2b$" + cost + "$" + good[7:]
		if enabled, err := CheckAdminConfig(adminName, hash, 0); err != nil || !enabled {
			t.Fatalf("cost %s: %v, %v; want accepted", cost, enabled, err)
		}
	}
	_, err := CheckAdminConfig(adminName, "$2b$16$"+good[7:], 0)
	if err == nil || !strings.Contains(err.Error(), "ADMIN_PASSWORD_HASH") || !strings.Contains(err.Error(), "15") {
		t.Fatalf("cost 16: %v, want an error naming ADMIN_PASSWORD_HASH and the limit 15", err)
	}

	for hash, want := range map[string]int{
		good:                   4,
		"$2y$09$" + good[7:]:   9,
		"$2a$12$" + good[7:]:   12,
		"$2b$31$" + good[7:]:   31,
		"not a hash":           0,
		"$2b$12$" + good[7:59]: 0,
		"":                     0,
	} {
		if got := AdminHashCost(hash); got != want {
			t.Errorf("AdminHashCost(%.7s…) = %d, want %d", hash, got, want)
		}
	}
	if got := AdminHashCost(good); got >= MinRecommendedAdminHashCost {
		t.Fatalf("the tests' cost %d is not below the recommended %d", got, MinRecommendedAdminHashCost)
	}
}

// leaksPartOf reports whether msg holds 8 or more consecutive characters
// of secret.
func leaksPartOf(msg, secret string) bool {
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(msg, secret[i:i+8]) {
			return true
		}
	}
	return false
}

func TestAdminLoginIsDisabledWithoutConfiguration(t *testing.T) {
	login, err := NewAdminLogin("", "", NewTokens(storagetest.SQLite(t), nil), storagetest.SQLite(t), 0, nil)
	if err != nil || login != nil {
		t.Fatalf("NewAdminLogin with nothing configured = %v, %v; want nil, nil", login, err)
	}
	if _, err := login.Login(context.Background(), "admin", "anything", loopback); err != ErrAdminLoginDisabled {
		t.Fatalf("Login on a disabled admin = %v, want ErrAdminLoginDisabled", err)
	}
}

func TestAdminLoginIsRateLimitedWithoutBcrypt(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 0)
	attacker := netip.MustParseAddr("203.0.113.7")

	n := f.comparesDuring(func() {
		for range 5 {
			if _, err := f.attempt(adminName, "guess", attacker); err != ErrInvalidAdminLogin {
				t.Fatalf("guess: %v, want ErrInvalidAdminLogin", err)
			}
		}
	})
	if n != 5 {
		t.Fatalf("%d comparisons for 5 guesses, want 5", n)
	}

	var err error
	n = f.comparesDuring(func() { _, err = f.attempt(adminName, adminPassword, attacker) })
	if !errors.Is(err, ErrTooManyAttempts) || fault.KindOf(err) != fault.Limited {
		t.Fatalf("sixth attempt: %v, want ErrTooManyAttempts (Limited)", err)
	}
	if got := fault.RetryAfterOf(err); got != time.Minute {
		t.Fatalf("retry after %v, want 1m", got)
	}
	if n != 0 {
		t.Fatalf("a refused attempt ran %d bcrypt comparisons, want 0", n)
	}

	if _, err := f.attempt(adminName, adminPassword, netip.MustParseAddr("203.0.113.8")); err != nil {
		t.Fatalf("another client is refused too: %v", err)
	}

	f.now = f.now.Add(time.Minute)
	if _, err := f.attempt(adminName, adminPassword, attacker); err != nil {
		t.Fatalf("after the block: %v", err)
	}
}

func TestAdminLoginSuccessResetsTheClient(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 0)
	client := netip.MustParseAddr("2001:db8:1:2::10")
	for round := range 3 {
		for range 4 {
			if _, err := f.attempt(adminName, "typo", client); err != ErrInvalidAdminLogin {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if _, err := f.attempt(adminName, adminPassword, client); err != nil {
			t.Fatalf("round %d, the right password after 4 typos: %v", round, err)
		}
	}
}

func TestAdminLoginLimitsAnIPv6HostByItsSlash64(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 0)
	for i := range 5 {
		client := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 15: byte(i + 1)})
		if _, err := f.attempt(adminName, "guess", client); err != ErrInvalidAdminLogin {
			t.Fatalf("guess from %v: %v", client, err)
		}
	}
	if _, err := f.attempt(adminName, adminPassword, netip.MustParseAddr("2001:db8:1:2:abcd::1")); fault.KindOf(err) != fault.Limited {
		t.Fatalf("a new address in the same /64: %v, want refused", err)
	}
	if _, err := f.attempt(adminName, adminPassword, netip.MustParseAddr("2001:db8:1:3::1")); err != nil {
		t.Fatalf("the neighbouring /64: %v", err)
	}
}

// holdCompares makes the first n bcrypt comparisons wait until the
// returned release is called; started receives one value as each begins.
// Later comparisons run at once.
func (f *adminFixture) holdCompares(n int) (started <-chan struct{}, release func()) {
	begun := make(chan struct{}, n)
	gate := make(chan struct{})
	var calls atomic.Int32
	f.login.compare = func(hash, password []byte) error {
		f.compares.Add(1)
		if calls.Add(1) <= int32(n) {
			begun <- struct{}{}
			<-gate
		}
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	return begun, sync.OnceFunc(func() { close(gate) })
}

func TestAdminLoginCapsBcryptAtGOMAXPROCS(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 0)
	slots := runtime.GOMAXPROCS(0)
	if got := cap(f.login.slots); got != slots {
		t.Fatalf("%d bcrypt slots, want GOMAXPROCS = %d", got, slots)
	}
	f.login.slotWait = 20 * time.Millisecond

	started, release := f.holdCompares(slots)
	var wg sync.WaitGroup
	defer func() { release(); wg.Wait() }()
	for i := range slots {
		wg.Go(func() {
			if _, err := f.attempt(adminName, adminPassword, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})); err != nil {
				t.Errorf("login %d holding a slot: %v", i, err)
			}
		})
		<-started
	}

	client := netip.MustParseAddr("198.51.100.1")
	for range 10 { // more than the client's 5 attempts: a busy refusal is no guess
		var err error
		n := f.comparesDuring(func() { _, err = f.attempt(adminName, adminPassword, client) })
		if !errors.Is(err, ErrLoginBusy) || fault.KindOf(err) != fault.Limited {
			t.Fatalf("a login with every slot taken: %v, want ErrLoginBusy (Limited)", err)
		}
		if got := fault.RetryAfterOf(err); got != AdminBusyRetryAfter {
			t.Fatalf("retry after %v, want %v", got, AdminBusyRetryAfter)
		}
		if n != 0 {
			t.Fatalf("a busy refusal ran %d bcrypt comparisons, want 0", n)
		}
	}

	// The request's context ends the wait too, long before slotWait.
	f.login.slotWait = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.login.Login(ctx, adminName, adminPassword, client); !errors.Is(err, ErrLoginBusy) {
		t.Fatalf("a login whose request ends while waiting: %v, want ErrLoginBusy", err)
	}
	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if _, err := f.login.Login(cancelled, adminName, adminPassword, client); !errors.Is(err, ErrLoginBusy) {
		t.Fatalf("a login whose request has ended: %v, want ErrLoginBusy", err)
	}

	release()
	wg.Wait()
	if _, err := f.attempt(adminName, adminPassword, client); err != nil {
		t.Fatalf("once the slots are free, the busy client: %v", err)
	}
}

func TestAdminLoginRunsNoMoreBcryptAtOnceThanTheCap(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 0)
	f.login.slots = make(chan struct{}, 2)
	var running, most atomic.Int32
	f.login.compare = func(hash, password []byte) error {
		now := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if now <= m || most.CompareAndSwap(m, now) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := f.attempt(adminName, adminPassword, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})); err != nil {
				t.Errorf("login %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := most.Load(); got != 2 {
		t.Fatalf("%d bcrypt comparisons ran at once, want at most (and, with 20 logins, exactly) 2", got)
	}
}

func TestAdminLoginFailureBudgetPausesEveryClient(t *testing.T) {
	f := newAdminFixture(t, adminName, hashOf(t, adminPassword), 0)
	// client i is a fresh IPv6 /64 each time: the per-client limiter never
	// sees a second attempt.
	client := func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i >> 8), byte(i), 15: 1})
	}
	// Successes and refused attempts do not spend the budget.
	for i := range 10 {
		if _, err := f.attempt(adminName, adminPassword, client(1000+i)); err != nil {
			t.Fatalf("success %d: %v", i, err)
		}
	}
	blocked := netip.MustParseAddr("192.0.2.99")
	for range 5 {
		_, _ = f.attempt(adminName, "guess", blocked)
	}
	for range 20 {
		if _, err := f.attempt(adminName, "guess", blocked); !errors.Is(err, ErrTooManyAttempts) {
			t.Fatalf("a blocked client: %v", err)
		}
	}
	f.now = f.now.Add(10 * time.Second)
	for i := range AdminFailureBudget - 5 {
		if _, err := f.attempt(adminName, "guess", client(i)); err != ErrInvalidAdminLogin {
			t.Fatalf("guess %d of the budget: %v, want ErrInvalidAdminLogin", i+6, err)
		}
	}

	// The budget is spent 10 s into the minute: everyone waits 50 s, the
	// right password and never-seen clients included, without bcrypt.
	for _, c := range []netip.Addr{client(5000), netip.MustParseAddr("203.0.113.1"), loopback, {}} {
		var err error
		n := f.comparesDuring(func() { _, err = f.attempt(adminName, adminPassword, c) })
		if !errors.Is(err, ErrAdminLoginPaused) || fault.KindOf(err) != fault.Limited {
			t.Fatalf("%v after %d failures from all clients: %v, want ErrAdminLoginPaused (Limited)", c, AdminFailureBudget, err)
		}
		if got := fault.RetryAfterOf(err); got != 50*time.Second {
			t.Fatalf("retry after %v, want the 50s left of the minute", got)
		}
		if n != 0 {
			t.Fatalf("a paused login ran %d bcrypt comparisons", n)
		}
	}

	f.now = f.now.Add(50 * time.Second)
	if _, err := f.attempt(adminName, adminPassword, loopback); err != nil {
		t.Fatalf("after the minute: %v", err)
	}
}

// failingStore refuses every token.
type failingStore struct{}

func (failingStore) CreateToken(context.Context, storage.Token) error {
	return storage.ErrUnavailable
}

func TestAdminLoginReportsAStoreFailureWithoutTheToken(t *testing.T) {
	tokens := NewTokens(storagetest.SQLite(t), nil)
	login, err := NewAdminLogin(adminName, hashOf(t, adminPassword), tokens, failingStore{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = login.Login(context.Background(), adminName, adminPassword, loopback)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("err = %v, want storage.ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), tokenPrefix) || strings.Contains(err.Error(), adminPassword) {
		t.Fatalf("error %q holds a secret", err)
	}
}
