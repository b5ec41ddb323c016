package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/fault"
)

var limiterStart = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// testLimiter is a limiter with the default settings on a clock the test moves.
type testLimiter struct {
	*Limiter
	now time.Time
}

func newTestLimiter(cfg LimiterConfig) *testLimiter {
	l := &testLimiter{now: limiterStart}
	l.Limiter = NewLimiter(cfg, func() time.Time { return l.now })
	return l
}

func (l *testLimiter) advance(d time.Duration) { l.now = l.now.Add(d) }

// fail makes n attempts from client that all fail, each admitted.
func (l *testLimiter) fail(t *testing.T, client string, n int) {
	t.Helper()
	for i := range n {
		if err := l.Admit(netip.MustParseAddr(client)); err != nil {
			t.Fatalf("attempt %d from %s refused: %v", i+1, client, err)
		}
	}
}

// refusedFor asserts client is refused and returns the wait it was given.
func (l *testLimiter) refusedFor(t *testing.T, client string) time.Duration {
	t.Helper()
	err := l.Admit(netip.MustParseAddr(client))
	if err == nil {
		t.Fatalf("attempt from %s admitted, want refused", client)
	}
	if !errors.Is(err, ErrTooManyAttempts) || fault.KindOf(err) != fault.Limited {
		t.Fatalf("refusal is %v (kind %v), want ErrTooManyAttempts of kind Limited", err, fault.KindOf(err))
	}
	return fault.RetryAfterOf(err)
}

func (l *testLimiter) admitted(t *testing.T, client string) {
	t.Helper()
	if err := l.Admit(netip.MustParseAddr(client)); err != nil {
		t.Fatalf("attempt from %s refused: %v", client, err)
	}
}

func TestLimiterBlocksAfterFiveFailuresForAMinute(t *testing.T) {
	l := newTestLimiter(LimiterConfig{})
	l.fail(t, "192.0.2.1", 5)
	if got := l.refusedFor(t, "192.0.2.1"); got != time.Minute {
		t.Fatalf("retry after %v, want 1m", got)
	}
	l.advance(40 * time.Second)
	if got := l.refusedFor(t, "192.0.2.1"); got != 20*time.Second {
		t.Fatalf("retry after %v 40s into the block, want 20s", got)
	}
	l.advance(20 * time.Second)
	l.admitted(t, "192.0.2.1")
}

func TestLimiterForgetsFailuresOutsideTheWindow(t *testing.T) {
	l := newTestLimiter(LimiterConfig{})
	l.fail(t, "192.0.2.1", 4)
	l.advance(time.Minute)
	l.fail(t, "192.0.2.1", 4)
	l.admitted(t, "192.0.2.1")
	l.refusedFor(t, "192.0.2.1")
}

func TestLimiterDoublesRepeatedBlocksUpToTheCap(t *testing.T) {
	l := newTestLimiter(LimiterConfig{})
	for _, want := range []time.Duration{1, 2, 4, 8, 15, 15} {
		l.fail(t, "192.0.2.1", 5)
		got := l.refusedFor(t, "192.0.2.1")
		if got != want*time.Minute {
			t.Fatalf("block lasts %v, want %v", got, want*time.Minute)
		}
		l.advance(got)
	}
}

func TestLimiterForgetsBlocksAfterAQuietSpell(t *testing.T) {
	l := newTestLimiter(LimiterConfig{})
	l.fail(t, "192.0.2.1", 5)
	l.advance(time.Minute)
	l.fail(t, "192.0.2.1", 5)
	if got := l.refusedFor(t, "192.0.2.1"); got != 2*time.Minute {
		t.Fatalf("second block lasts %v, want 2m", got)
	}
	l.advance(2*time.Minute + 15*time.Minute)
	l.fail(t, "192.0.2.1", 5)
	if got := l.refusedFor(t, "192.0.2.1"); got != time.Minute {
		t.Fatalf("a block after 15 quiet minutes lasts %v, want 1m again", got)
	}
}

func TestLimiterSuccessForgetsTheClient(t *testing.T) {
	l := newTestLimiter(LimiterConfig{})
	client := netip.MustParseAddr("192.0.2.1")

	l.fail(t, "192.0.2.1", 4)
	l.Succeeded(client)
	l.fail(t, "192.0.2.1", 4)
	l.admitted(t, "192.0.2.1")

	// The attempt that starts a block is admitted; its success lifts the
	// block and the doubling.
	l.Succeeded(client)
	l.fail(t, "192.0.2.1", 5)
	l.Succeeded(client)
	l.fail(t, "192.0.2.1", 5)
	if got := l.refusedFor(t, "192.0.2.1"); got != time.Minute {
		t.Fatalf("block after a success lasts %v, want 1m", got)
	}
}

func TestLimiterGroupsClients(t *testing.T) {
	cases := []struct {
		name          string
		blocked, same string
		other         string
	}{
		{"an IPv4 address is its own group", "192.0.2.1", "192.0.2.1", "192.0.2.2"},
		{"an IPv4-mapped IPv6 address is the IPv4 address", "192.0.2.1", "::ffff:192.0.2.1", "::ffff:192.0.2.2"},
		{"IPv6 addresses share their /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:3::1"},
		{"an IPv6 zone does not make a new group", "fe80::1%eth0", "fe80::2%eth1", "fe80:0:0:1::1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newTestLimiter(LimiterConfig{})
			l.fail(t, c.blocked, 5)
			l.refusedFor(t, c.same)
			l.admitted(t, c.other)
		})
	}
}

func TestLimiterLimitsClientsWithoutAnAddressTogether(t *testing.T) {
	l := newTestLimiter(LimiterConfig{})
	for range 5 {
		if err := l.Admit(netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Admit(netip.Addr{}); fault.KindOf(err) != fault.Limited {
		t.Fatalf("attempt without an address after 5 failures: %v, want refused", err)
	}
	l.admitted(t, "192.0.2.1")
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newTestLimiter(LimiterConfig{MaxClients: 100})
	for i := range 1000 {
		l.fail(t, fmt.Sprintf("10.0.%d.%d", i/256, i%256), 1)
		if n := len(l.clients); n > 100 || n != l.idle.Len()+len(l.blocking) {
			t.Fatalf("after %d clients: %d tracked (%d idle, %d blocking), want at most 100", i+1, n, l.idle.Len(), len(l.blocking))
		}
	}
	if _, ok := l.clients[clientGroup(netip.MustParseAddr("10.0.0.0"))]; ok {
		t.Fatal("the stalest client is still tracked")
	}
	if _, ok := l.clients[clientGroup(netip.MustParseAddr("10.0.3.231"))]; !ok {
		t.Fatal("the most recent client is not tracked")
	}
}

func TestLimiterEvictsTheStalestClientFirst(t *testing.T) {
	l := newTestLimiter(LimiterConfig{MaxClients: 3})
	l.fail(t, "192.0.2.1", 4)
	l.fail(t, "192.0.2.2", 1)
	l.fail(t, "192.0.2.3", 1)
	l.admitted(t, "192.0.2.1") // seen again: now the most recent, 5 failures
	l.fail(t, "192.0.2.4", 1)  // pushes out 192.0.2.2
	if _, ok := l.clients[clientGroup(netip.MustParseAddr("192.0.2.2"))]; ok {
		t.Fatal("192.0.2.2 was seen least recently but is still tracked")
	}
	l.refusedFor(t, "192.0.2.1")
}

func TestLimiterNeverForgetsABlockToMakeRoom(t *testing.T) {
	l := newTestLimiter(LimiterConfig{MaxClients: 3})
	l.fail(t, "192.0.2.1", 5)
	// An attacker cycling through fresh addresses fills the limiter many
	// times over; the block must outlast every round.
	for i := range 50 {
		l.fail(t, fmt.Sprintf("10.0.0.%d", i), 1)
		if n := len(l.clients); n > 3 {
			t.Fatalf("%d clients tracked, want at most 3", n)
		}
		l.advance(time.Second)
	}
	if got := l.refusedFor(t, "192.0.2.1"); got != 10*time.Second {
		t.Fatalf("retry after %v, want the 10s left on the block", got)
	}
	// Once the block has ended, it still counts toward the doubling.
	l.advance(10 * time.Second)
	l.fail(t, "192.0.2.1", 5)
	if got := l.refusedFor(t, "192.0.2.1"); got != 2*time.Minute {
		t.Fatalf("the next block lasts %v, want 2m", got)
	}
}

func TestLimiterFullOfBlocksRefusesNewClients(t *testing.T) {
	l := newTestLimiter(LimiterConfig{MaxClients: 2})
	l.fail(t, "192.0.2.1", 5)
	l.advance(10 * time.Second)
	l.fail(t, "192.0.2.2", 5)

	for _, client := range []string{"198.51.100.1", "2001:db8::1", "192.0.2.3"} {
		err := l.Check(netip.MustParseAddr(client))
		if admitErr := l.Admit(netip.MustParseAddr(client)); admitErr == nil || err == nil {
			t.Fatalf("a new client %s while every tracked one is blocked: Check %v, Admit %v; want both refused", client, err, admitErr)
		}
		if !errors.Is(err, ErrTooManyBlockedClients) || fault.KindOf(err) != fault.Limited {
			t.Fatalf("refusal is %v (kind %v), want ErrTooManyBlockedClients of kind Limited", err, fault.KindOf(err))
		}
		if got := fault.RetryAfterOf(err); got != 50*time.Second {
			t.Fatalf("retry after %v, want the 50s until the first block ends", got)
		}
	}
	l.refusedFor(t, "192.0.2.1")
	l.refusedFor(t, "192.0.2.2")
	if n := len(l.clients); n != 2 {
		t.Fatalf("%d clients tracked, want the 2 blocked ones", n)
	}

	// The first block ends: its record makes room, the second block stays.
	l.advance(50 * time.Second)
	l.admitted(t, "198.51.100.1")
	l.admitted(t, "198.51.100.1")
	l.refusedFor(t, "192.0.2.2")
}

func TestLimiterCheckCountsNothing(t *testing.T) {
	l := newTestLimiter(LimiterConfig{MaxClients: 2})
	for range 20 {
		if err := l.Check(netip.MustParseAddr("192.0.2.1")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.clients); n != 0 {
		t.Fatalf("Check made %d records, want none", n)
	}
	l.fail(t, "192.0.2.1", 5)
	if err := l.Check(netip.MustParseAddr("192.0.2.1")); !errors.Is(err, ErrTooManyAttempts) || fault.RetryAfterOf(err) != time.Minute {
		t.Fatalf("Check of a blocked client: %v, want ErrTooManyAttempts for 1m", err)
	}
}

func TestLimiterForgetsExpiredClients(t *testing.T) {
	l := newTestLimiter(LimiterConfig{})
	for i := range 50 {
		l.fail(t, fmt.Sprintf("10.0.0.%d", i), 1)
	}
	l.fail(t, "192.0.2.1", 5)
	l.advance(time.Minute)
	l.admitted(t, "198.51.100.1")
	// The 50 single failures are over; the block's memory (for doubling)
	// is not, and the new client is fresh.
	if n := len(l.clients); n != 2 {
		t.Fatalf("%d clients tracked a minute later, want 2", n)
	}
	l.advance(16 * time.Minute)
	l.admitted(t, "198.51.100.2")
	if n := len(l.clients); n != 1 {
		t.Fatalf("%d clients tracked 17 minutes later, want 1", n)
	}
}

func TestLimiterAdmitsOnlyTheLimitOfParallelAttempts(t *testing.T) {
	l := newTestLimiter(LimiterConfig{})
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if l.Admit(netip.MustParseAddr("192.0.2.1")) == nil {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != 5 {
		t.Fatalf("%d of 100 parallel attempts admitted, want 5", got)
	}
}
