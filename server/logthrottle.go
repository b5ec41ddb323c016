package server

import (
	"sync"
	"time"
)

// logThrottle lets a log line that can repeat once per request (an audit
// store that refuses every event) through at most once per interval,
// counting what it held back, so an outage logs its cause without writing
// a line per request for as long as it lasts.
type logThrottle struct {
	interval time.Duration
	mu       sync.Mutex
	last     time.Time
	held     int
}

// allow reports whether a line may be logged at now and, if so, how many
// were held back since the last one.
func (l *logThrottle) allow(now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.held++
		return false, 0
	}
	held, l.held, l.last = l.held, 0, now
	return true, held
}
