package auth

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"github.com/secrethub/secrethub/server/fault"
)

// ErrTooManyAttempts refuses a client that failed to log in too often; the
// fault returned carries how long to wait (fault.RetryAfterOf).
var ErrTooManyAttempts = fault.New(fault.Limited, "too many failed login attempts; try again later")

// LimiterConfig tunes a Limiter; zero fields take the defaults.
type LimiterConfig struct {
	// MaxFailures within Window block the client (default 5).
	MaxFailures int
	// Window is how long failures are remembered toward a block (default 1m).
	Window time.Duration
	// Backoff is the first block (default 1m); each block that follows
	// within MaxBackoff of the previous one lasts twice as long.
	Backoff time.Duration
	// MaxBackoff caps a block (default 15m).
	MaxBackoff time.Duration
	// MaxClients bounds memory: when that many clients are tracked, the one
	// seen least recently is forgotten (default 10000).
	MaxClients int
}

// Limiter refuses clients that fail a login too often, before the login
// does any expensive work. Clients are grouped by address: an IPv4 address
// alone, an IPv6 address by its /64, the block one host usually holds.
//
// Every admitted attempt counts as a failure until Succeeded says
// otherwise, so parallel attempts cannot slip past the limit while earlier
// ones are still being checked.
type Limiter struct {
	cfg LimiterConfig
	now func() time.Time

	mu      sync.Mutex
	clients map[netip.Prefix]*list.Element // of *clientRecord
	recency *list.List                     // front: seen most recently
}

// clientRecord is what a Limiter remembers of one client group.
type clientRecord struct {
	group        netip.Prefix
	failures     int       // counted since windowStart
	windowStart  time.Time // of the current failure window
	blockedUntil time.Time // zero when never blocked
	blocks       int       // consecutive blocks, for the doubling
}

// NewLimiter returns a limiter with cfg's zero fields defaulted.
func NewLimiter(cfg LimiterConfig, now func() time.Time) *Limiter {
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 15 * time.Minute
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.Backoff)
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{cfg: cfg, now: now, clients: make(map[netip.Prefix]*list.Element), recency: list.New()}
}

// Admit lets an attempt from client proceed, counting it as a failure, or
// refuses it with ErrTooManyAttempts and the time left on the block. The
// attempt that reaches MaxFailures is still admitted and starts the block:
// only its success (Succeeded) lifts it.
func (l *Limiter) Admit(client netip.Addr) error {
	now := l.now()
	group := clientGroup(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetExpired(now)

	r := l.record(group, now)
	if now.Before(r.blockedUntil) {
		return fault.Limit(ErrTooManyAttempts, r.blockedUntil.Sub(now))
	}
	if now.Sub(r.windowStart) >= l.cfg.Window {
		r.failures, r.windowStart = 0, now
	}
	r.failures++
	if r.failures >= l.cfg.MaxFailures {
		backoff := l.cfg.Backoff
		for i := 0; i < r.blocks && backoff < l.cfg.MaxBackoff; i++ {
			backoff *= 2
		}
		r.blockedUntil = now.Add(min(backoff, l.cfg.MaxBackoff))
		r.blocks++
		// Counting starts afresh once the block is over.
		r.failures, r.windowStart = 0, r.blockedUntil
	}
	return nil
}

// Succeeded forgets client's failures and blocks.
func (l *Limiter) Succeeded(client netip.Addr) {
	group := clientGroup(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.clients[group]; ok {
		l.remove(e)
	}
}

// record returns group's record, marked as seen now, making one (and
// forgetting the stalest client if the limiter is full) when there is none
// or it has expired.
func (l *Limiter) record(group netip.Prefix, now time.Time) *clientRecord {
	if e, ok := l.clients[group]; ok {
		l.recency.MoveToFront(e)
		r := e.Value.(*clientRecord)
		if l.expired(r, now) {
			*r = clientRecord{group: group, windowStart: now}
		}
		return r
	}
	for len(l.clients) >= l.cfg.MaxClients {
		l.remove(l.recency.Back())
	}
	r := &clientRecord{group: group, windowStart: now}
	l.clients[group] = l.recency.PushFront(r)
	return r
}

// forgetExpired drops the least recently seen records while they hold
// nothing that still matters. Records are ordered by when they were seen,
// not by when they expire, so an expired record behind a live one waits
// for later (the MaxClients bound still holds).
func (l *Limiter) forgetExpired(now time.Time) {
	for e := l.recency.Back(); e != nil; e = l.recency.Back() {
		if !l.expired(e.Value.(*clientRecord), now) {
			return
		}
		l.remove(e)
	}
}

// expired reports whether r no longer affects anything: its failure window
// is over (a block's window starts when the block ends) and its last block
// ended at least MaxBackoff ago (until then a new block would be doubled).
func (l *Limiter) expired(r *clientRecord, now time.Time) bool {
	if now.Sub(r.windowStart) < l.cfg.Window {
		return false
	}
	return r.blocks == 0 || now.Sub(r.blockedUntil) >= l.cfg.MaxBackoff
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.clients, e.Value.(*clientRecord).group)
	l.recency.Remove(e)
}

// clientGroup is the unit a client is limited as: its IPv4 address, or the
// /64 of its IPv6 address (zone dropped). An invalid address (one the HTTP
// layer could not determine) is a group of its own, shared by all such
// clients, so not knowing an address never lifts the limit.
func clientGroup(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}
