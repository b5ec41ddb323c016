package auth

import (
	"container/heap"
	"container/list"
	"net/netip"
	"sync"
	"time"

	"github.com/secrethub/secrethub/server/fault"
)

// ErrTooManyAttempts refuses a client that failed to log in too often; the
// fault returned carries how long to wait (fault.RetryAfterOf).
var ErrTooManyAttempts = fault.New(fault.Limited, "too many failed login attempts; try again later")

// ErrTooManyBlockedClients refuses a client the limiter does not know yet
// while every client it tracks is blocked: making room would mean
// forgetting a block.
var ErrTooManyBlockedClients = fault.New(fault.Limited, "too many clients are blocked for failed login attempts; try again later")

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
	// MaxClients bounds memory (default 10000). When that many clients are
	// tracked, a new one makes room by forgetting the client seen least
	// recently among those not blocked; when all are blocked, the new
	// client is refused (ErrTooManyBlockedClients) until a block ends.
	MaxClients int
}

// Limiter refuses clients that fail a login too often, before the login
// does any expensive work. Clients are grouped by address: an IPv4 address
// alone, an IPv6 address by its /64, the block one host usually holds.
//
// Every admitted attempt counts as a failure until Succeeded says
// otherwise, so parallel attempts cannot slip past the limit while earlier
// ones are still being checked.
//
// A block is never forgotten before it ends, whatever the number of
// clients: otherwise a blocked attacker could lift their own block by
// trying from enough new addresses to push it out.
type Limiter struct {
	cfg LimiterConfig
	now func() time.Time

	mu      sync.Mutex
	clients map[netip.Prefix]*clientRecord
	// idle holds the records not blocking, front: seen most recently.
	// Only these are ever forgotten to make room.
	idle *list.List
	// blocking holds the records whose block has not ended (as of the
	// last unblock), the one ending soonest first.
	blocking blockQueue
}

// clientRecord is what a Limiter remembers of one client group.
type clientRecord struct {
	group        netip.Prefix
	failures     int       // counted since windowStart
	windowStart  time.Time // of the current failure window
	blockedUntil time.Time // zero when never blocked
	blocks       int       // consecutive blocks, for the doubling

	elem  *list.Element // in Limiter.idle; nil while in Limiter.blocking
	index int           // in Limiter.blocking, while there
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
	return &Limiter{cfg: cfg, now: now, clients: make(map[netip.Prefix]*clientRecord), idle: list.New()}
}

// Check reports whether Admit would refuse client now, without counting
// an attempt or remembering the client: a login calls it before waiting
// for anything, so that a refused client waits for nothing.
func (l *Limiter) Check(client netip.Addr) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unblock(now)
	return l.refusal(clientGroup(client), now)
}

// Admit lets an attempt from client proceed, counting it as a failure, or
// refuses it with ErrTooManyAttempts and the time left on the block (or
// ErrTooManyBlockedClients, see LimiterConfig.MaxClients). The attempt
// that reaches MaxFailures is still admitted and starts the block: only
// its success (Succeeded) lifts it.
func (l *Limiter) Admit(client netip.Addr) error {
	now := l.now()
	group := clientGroup(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unblock(now)
	if err := l.refusal(group, now); err != nil {
		return err
	}
	l.forgetExpired(now)

	r := l.record(group, now)
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
		l.idle.Remove(r.elem)
		r.elem = nil
		heap.Push(&l.blocking, r)
	}
	return nil
}

// Succeeded forgets client's failures and blocks.
func (l *Limiter) Succeeded(client netip.Addr) {
	group := clientGroup(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.clients[group]; ok {
		l.remove(r)
	}
}

// refusal is the answer to an attempt from group now: a block that has
// not ended, or, for a group not tracked, a limiter full of blocked
// clients; nil when the attempt may go ahead. It wants unblock(now) done.
func (l *Limiter) refusal(group netip.Prefix, now time.Time) error {
	if r, ok := l.clients[group]; ok {
		if now.Before(r.blockedUntil) {
			return fault.Limit(ErrTooManyAttempts, r.blockedUntil.Sub(now))
		}
		return nil
	}
	if len(l.clients) >= l.cfg.MaxClients && l.idle.Len() == 0 {
		// Every record is blocking, so there is one; retry when the
		// soonest block ends and frees a place.
		return fault.Limit(ErrTooManyBlockedClients, l.blocking[0].blockedUntil.Sub(now))
	}
	return nil
}

// record returns group's record, marked as seen now, making one (and
// forgetting the stalest idle client if the limiter is full) when there is
// none or it has expired. refusal must have admitted group: its record, if
// any, is idle, and a full limiter has an idle record to forget.
func (l *Limiter) record(group netip.Prefix, now time.Time) *clientRecord {
	if r, ok := l.clients[group]; ok {
		l.idle.MoveToFront(r.elem)
		if l.expired(r, now) {
			*r = clientRecord{group: group, windowStart: now, elem: r.elem}
		}
		return r
	}
	if len(l.clients) >= l.cfg.MaxClients {
		l.remove(l.idle.Back().Value.(*clientRecord))
	}
	r := &clientRecord{group: group, windowStart: now}
	r.elem = l.idle.PushFront(r)
	l.clients[group] = r
	return r
}

// unblock moves the records whose block has ended to the idle list, as
// seen when the block ended: recently, so a client just out of a block is
// among the last forgotten to make room, and its doubling holds.
func (l *Limiter) unblock(now time.Time) {
	for len(l.blocking) > 0 && !now.Before(l.blocking[0].blockedUntil) {
		r := heap.Pop(&l.blocking).(*clientRecord)
		r.elem = l.idle.PushFront(r)
	}
}

// forgetExpired drops the least recently seen idle records while they hold
// nothing that still matters. Records are ordered by when they were seen,
// not by when they expire, so an expired record behind a live one waits
// for later (the MaxClients bound still holds).
func (l *Limiter) forgetExpired(now time.Time) {
	for e := l.idle.Back(); e != nil; e = l.idle.Back() {
		r := e.Value.(*clientRecord)
		if !l.expired(r, now) {
			return
		}
		l.remove(r)
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

func (l *Limiter) remove(r *clientRecord) {
	delete(l.clients, r.group)
	if r.elem != nil {
		l.idle.Remove(r.elem)
		r.elem = nil
	} else {
		heap.Remove(&l.blocking, r.index)
	}
}

// blockQueue is a heap of blocking records, the block ending soonest on
// top, so finding the ended blocks costs nothing while none has ended.
type blockQueue []*clientRecord

func (q blockQueue) Len() int           { return len(q) }
func (q blockQueue) Less(i, j int) bool { return q[i].blockedUntil.Before(q[j].blockedUntil) }
func (q blockQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *blockQueue) Push(x any) {
	r := x.(*clientRecord)
	r.index = len(*q)
	*q = append(*q, r)
}

func (q *blockQueue) Pop() any {
	old := *q
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return r
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

// failureBudget bounds the failed attempts of all clients together: after
// max failures within a window, every attempt is refused until the window
// ends. A window starts with the first attempt after the previous one
// ended. Like Limiter, it counts an attempt as a failure when it is let
// through, and refund takes it back on success.
type failureBudget struct {
	max     int
	window  time.Duration
	now     func() time.Time
	refused *fault.Error // the Limited sentinel a refusal reports

	mu       sync.Mutex
	start    time.Time // of the current window
	failures int       // counted in it
}

// check reports whether take would refuse now, counting nothing.
func (b *failureBudget) check() error {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refusal(now)
}

// take counts an attempt as a failure, or refuses it while the budget is
// spent, with the time left in the window. The ticket identifies the
// window for refund.
func (b *failureBudget) take() (ticket time.Time, err error) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.refusal(now); err != nil {
		return time.Time{}, err
	}
	if now.Sub(b.start) >= b.window {
		b.start, b.failures = now, 0
	}
	b.failures++
	return b.start, nil
}

// refund takes back an attempt that did not fail, if its window is still
// the current one.
func (b *failureBudget) refund(ticket time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ticket.Equal(b.start) && b.failures > 0 {
		b.failures--
	}
}

func (b *failureBudget) refusal(now time.Time) error {
	if now.Sub(b.start) < b.window && b.failures >= b.max {
		return fault.Limit(b.refused, b.start.Add(b.window).Sub(now))
	}
	return nil
}
