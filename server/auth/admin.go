package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/storage"
)

// AdminPolicy is the policy an admin login's token carries.
const AdminPolicy = "admin"

// DefaultAdminTokenTTL is an admin token's lifetime when none is configured.
const DefaultAdminTokenTTL = 30 * time.Minute

// Errors callers branch on.
var (
	// ErrInvalidAdminLogin is every failed admin login, whether the
	// username, the password or both were wrong.
	ErrInvalidAdminLogin = fault.New(fault.Denied, "invalid username or password")
	// ErrAdminLoginDisabled answers a login when no admin is configured.
	ErrAdminLoginDisabled = fault.New(fault.NotFound, "admin login is not enabled on this server")
	// ErrAdminLoginPaused refuses every client while the failure budget
	// of the admin account (AdminFailureBudget) is spent.
	ErrAdminLoginPaused = fault.New(fault.Limited, "too many failed admin logins from all clients; admin login is paused, try again later or use another auth method")
	// ErrLoginBusy refuses a login that found every bcrypt slot taken.
	ErrLoginBusy = fault.New(fault.Limited, "the server is busy checking other logins; try again in a few seconds")
)

// Global limits on admin login, whatever the client. The per-client
// Limiter stops one address guessing, but every new IPv4 address or IPv6
// /64 gets its own attempts, each a bcrypt comparison, and one IPv6 /48
// holds 65,536 /64s.
const (
	// AdminFailureBudget failed admin logins, from all clients together,
	// within AdminFailureWindow refuse every client with 429
	// (ErrAdminLoginPaused) until the window ends. This gives up the
	// password login of the admin for a while to stop a distributed
	// guess; tokens and the other auth methods still work.
	AdminFailureBudget = 50
	AdminFailureWindow = time.Minute
	// AdminSlotWait is the longest a login waits for one of the
	// runtime.GOMAXPROCS(0) bcrypt slots before it is refused with 429
	// (ErrLoginBusy, retry after AdminBusyRetryAfter).
	AdminSlotWait       = 2 * time.Second
	AdminBusyRetryAfter = 3 * time.Second
)

// The bcrypt costs ADMIN_PASSWORD_HASH may have. Each step doubles the work
// of a login: cost 12 takes about 250 ms, 15 about 2 s, 20 about a minute.
const (
	// MaxAdminHashCost is the highest cost accepted: beyond it a login
	// takes several seconds of CPU, and slots of the global bcrypt cap.
	MaxAdminHashCost = 15
	// MinRecommendedAdminHashCost is the lowest cost that is not weak; a
	// lower one (down to bcrypt's minimum, 4) is accepted, for tests, but
	// start-up should warn about it (AdminHashCost).
	MinRecommendedAdminHashCost = 10
)

// bcryptHash is the modular crypt format of bcrypt: version, two-digit
// cost, 22 characters of salt and 31 of hash. $2y$ (PHP, htpasswd) is the
// same algorithm as $2b$, and x/crypto/bcrypt reads it as such.
var bcryptHash = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// TokenCreator stores a token; *storage.DB is one.
type TokenCreator interface {
	CreateToken(ctx context.Context, t storage.Token) error
}

// AdminLogin checks the configured admin's username and password
// (ADMIN_USERNAME, ADMIN_PASSWORD_HASH) and issues admin tokens. A nil
// *AdminLogin is a server without an admin: its Login always fails with
// ErrAdminLoginDisabled.
type AdminLogin struct {
	usernameSum  [sha256.Size]byte
	passwordHash []byte
	tokens       *Tokens
	store        TokenCreator
	ttl          time.Duration
	limiter      *Limiter
	budget       *failureBudget
	// slots holds one value per bcrypt comparison running: its capacity
	// caps them, so guesses cannot take every CPU.
	slots    chan struct{}
	slotWait time.Duration
	// compare is bcrypt.CompareHashAndPassword; tests count its calls.
	compare func(hash, password []byte) error
}

// NewAdminLogin checks the admin configuration. Both username and hash
// empty disable admin login: it returns a nil *AdminLogin and no error.
// A zero ttl means DefaultAdminTokenTTL; now is the clock of the failure
// limiter (time.Now when nil). Errors never repeat the hash.
func NewAdminLogin(username, passwordHash string, tokens *Tokens, store TokenCreator, ttl time.Duration, now func() time.Time) (*AdminLogin, error) {
	if enabled, err := CheckAdminConfig(username, passwordHash, ttl); err != nil || !enabled {
		return nil, err
	}
	if ttl == 0 {
		ttl = DefaultAdminTokenTTL
	}
	if tokens == nil || store == nil {
		return nil, errors.New("admin login needs a token service and a token store")
	}
	if now == nil {
		now = time.Now
	}
	return &AdminLogin{
		usernameSum:  sha256.Sum256([]byte(username)),
		passwordHash: []byte(passwordHash),
		tokens:       tokens,
		store:        store,
		ttl:          ttl,
		limiter:      NewLimiter(LimiterConfig{}, now),
		budget: &failureBudget{max: AdminFailureBudget, window: AdminFailureWindow, now: now,
			refused: ErrAdminLoginPaused},
		slots:    make(chan struct{}, runtime.GOMAXPROCS(0)),
		slotWait: AdminSlotWait,
		compare:  bcrypt.CompareHashAndPassword,
	}, nil
}

// CheckAdminConfig validates the admin login settings and reports whether
// they enable it (both empty: disabled). Errors name the setting and never
// repeat the hash.
func CheckAdminConfig(username, passwordHash string, ttl time.Duration) (enabled bool, err error) {
	switch {
	case username == "" && passwordHash == "":
		return false, nil
	case username == "":
		return false, errors.New("ADMIN_PASSWORD_HASH is set but ADMIN_USERNAME is empty: set both to enable admin login, or neither")
	case passwordHash == "":
		return false, errors.New("ADMIN_USERNAME is set but ADMIN_PASSWORD_HASH is empty: set both to enable admin login, or neither")
	case !bcryptHash.MatchString(passwordHash):
		return false, errors.New("ADMIN_PASSWORD_HASH is not a bcrypt hash: want 60 characters starting $2a$, $2b$ or $2y$ and a two-digit cost, such as the output of secrethub operator hash-password")
	}
	if cost := AdminHashCost(passwordHash); cost < bcrypt.MinCost || cost > MaxAdminHashCost {
		return false, fmt.Errorf("ADMIN_PASSWORD_HASH has a bcrypt cost outside %d to %d (it is %d): each step up doubles the time of every login; secrethub operator hash-password makes cost 12",
			bcrypt.MinCost, MaxAdminHashCost, cost)
	}
	if ttl < 0 {
		return false, errors.New("the admin token TTL must not be negative")
	}
	return true, nil
}

// AdminHashCost returns the bcrypt cost written in hash, 0 when hash is not
// a bcrypt hash. Start-up warns when it is below
// MinRecommendedAdminHashCost.
func AdminHashCost(hash string) int {
	if !bcryptHash.MatchString(hash) {
		return 0
	}
	cost, _ := strconv.Atoi(hash[4:6]) // two digits, by the pattern
	return cost
}

// Login checks username and password for a client and stores a new token
// with the admin (and default) policy, lasting the admin TTL. Every wrong
// credential is ErrInvalidAdminLogin, after the same work: one bcrypt
// comparison and a constant-time username check. Before any of that work,
// Login refuses with a Limited fault carrying a retry-after: a client
// that failed too often (ErrTooManyAttempts), everyone while the
// account's failure budget is spent (ErrAdminLoginPaused), and a login
// that got no bcrypt slot within AdminSlotWait or before ctx ended
// (ErrLoginBusy).
func (a *AdminLogin) Login(ctx context.Context, username, password string, client netip.Addr) (Issued, error) {
	if a == nil {
		return Issued{}, ErrAdminLoginDisabled
	}
	if err := a.check(ctx, username, password, client); err != nil {
		return Issued{}, err
	}

	issued, err := a.tokens.NewOrphan(LoginRequest{
		AuthMethod:  MethodAdmin,
		Policies:    []string{AdminPolicy},
		DisplayName: "admin-" + username,
		TTL:         a.ttl,
		MaxTTL:      a.ttl,
		Meta:        map[string]string{"username": username},
	})
	if err != nil {
		return Issued{}, err
	}
	if err := a.store.CreateToken(ctx, issued.Token); err != nil {
		return Issued{}, err
	}
	return issued, nil
}

// check admits the attempt and compares the credentials, holding a bcrypt
// slot only for that.
func (a *AdminLogin) check(ctx context.Context, username, password string, client netip.Addr) error {
	// Refusals that cost nothing come first, so a refused client never
	// waits for, or takes, a slot.
	if err := a.limiter.Check(client); err != nil {
		return err
	}
	if err := a.budget.check(); err != nil {
		return err
	}
	if err := a.acquireSlot(ctx); err != nil {
		return err
	}
	defer func() { <-a.slots }()
	// Counted only now: an attempt refused as busy was no guess. Both
	// checks are repeated, since other attempts ran while this one waited.
	ticket, err := a.budget.take()
	if err != nil {
		return err
	}
	if err := a.limiter.Admit(client); err != nil {
		a.budget.refund(ticket)
		return err
	}

	// Hashing both names first keeps the comparison's time independent of
	// the given name's length. The password is checked against the real
	// hash even when the name is wrong, so that case costs the same.
	given := sha256.Sum256([]byte(username))
	nameOK := subtle.ConstantTimeCompare(given[:], a.usernameSum[:])
	passwordOK := 0
	if a.compare(a.passwordHash, []byte(password)) == nil {
		passwordOK = 1
	}
	if nameOK&passwordOK != 1 {
		return ErrInvalidAdminLogin
	}
	a.limiter.Succeeded(client)
	a.budget.refund(ticket)
	return nil
}

// acquireSlot takes a bcrypt slot, waiting at most slotWait and not beyond
// ctx, or refuses with ErrLoginBusy.
func (a *AdminLogin) acquireSlot(ctx context.Context) error {
	if ctx.Err() != nil {
		// Nobody waits for the answer: no bcrypt for it.
		return fault.Limit(ErrLoginBusy, AdminBusyRetryAfter)
	}
	select {
	case a.slots <- struct{}{}:
		return nil
	default:
	}
	wait := time.NewTimer(a.slotWait)
	defer wait.Stop()
	select {
	case a.slots <- struct{}{}:
		return nil
	case <-wait.C:
	case <-ctx.Done():
	}
	return fault.Limit(ErrLoginBusy, AdminBusyRetryAfter)
}
