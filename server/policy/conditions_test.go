package policy_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/secrethub/secrethub/server/policy"
)

// Conditions at their boundaries, in time zones, and combined with deny.
func TestEvaluateConditions(t *testing.T) {
	office := compile(t, `{"name":"office","rules":[{"path":"prod/*","capabilities":["read"],
		"conditions":{"time_of_day":[9,17],"days_of_week":["mon","tue","wed","thu","fri"]}}]}`)
	night := compile(t, `{"name":"night","rules":[{"path":"batch/*","capabilities":["read"],"conditions":{"time_of_day":[22,5]}}]}`)
	berlin := compile(t, `{"name":"berlin","timezone":"Europe/Berlin","rules":[{"path":"prod/*","capabilities":["read"],"conditions":{"time_of_day":[9,17]}}]}`)
	nets := compile(t, `{"name":"nets","rules":[{"path":"prod/*","capabilities":["read","list"],"conditions":{"source_ip":["10.0.0.0/8","192.168.1.7","2001:db8::/32"]}}]}`)
	mapped := compile(t, `{"name":"mapped","rules":[{"path":"prod/*","capabilities":["read"],"conditions":{"source_ip":"::ffff:172.16.0.0/108"}}]}`)
	weekdaysBerlin := compile(t, `{"name":"weekdays-berlin","timezone":"Europe/Berlin","rules":[{"path":"prod/*","capabilities":["read"],"conditions":{"days_of_week":["mon","tue","wed","thu","fri"]}}]}`)
	prod := compile(t, productionDoc)
	readOnly := compile(t, readOnlyDoc)
	denyOutside := compile(t, `{"name":"deny-outside","rules":[{"path":"prod/*","capabilities":["read"],"effect":"deny","conditions":{"source_ip":"0.0.0.0/0"}}]}`)
	denyWeekend := compile(t, `{"name":"deny-weekend","rules":[{"path":"*","capabilities":["read","update"],"effect":"deny","conditions":{"days_of_week":["sat","sun"]}}]}`)

	// 2026-11-30 is a Monday. Europe/Berlin is UTC+1 in winter, UTC+2 in summer.
	mon := func(h, m int) time.Time { return time.Date(2026, 11, 30, h, m, 0, 0, time.UTC) }
	sat := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	sun := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	summer := func(h int) time.Time { return time.Date(2026, 7, 1, h, 0, 0, 0, time.UTC) } // a Wednesday
	ten := netip.MustParseAddr("10.1.2.3")
	lo := netip.MustParseAddr("127.0.0.1")

	cases := []struct {
		name     string
		policies []*policy.Policy
		resource string
		cap      policy.Capability
		ip       netip.Addr
		at       time.Time
		allowed  bool
		failed   policy.Condition
	}{
		{"office hours begin at the start hour", []*policy.Policy{office}, "prod/db", policy.Read, lo, mon(9, 0), true, 0},
		{"the end hour is included to its last minute", []*policy.Policy{office}, "prod/db", policy.Read, lo, mon(17, 59), true, 0},
		{"the hour after the end is outside", []*policy.Policy{office}, "prod/db", policy.Read, lo, mon(18, 0), false, policy.TimeOfDay},
		{"the hour before the start is outside", []*policy.Policy{office}, "prod/db", policy.Read, lo, mon(8, 59), false, policy.TimeOfDay},
		{"midnight is outside office hours", []*policy.Policy{office}, "prod/db", policy.Read, lo, mon(0, 0), false, policy.TimeOfDay},
		{"Saturday is not a listed day", []*policy.Policy{office}, "prod/db", policy.Read, lo, sat, false, policy.DaysOfWeek},
		{"Sunday is not a listed day", []*policy.Policy{office}, "prod/db", policy.Read, lo, sun, false, policy.DaysOfWeek},
		{"a wrapping window includes late evening", []*policy.Policy{night}, "batch/x", policy.Read, lo, mon(23, 0), true, 0},
		{"a wrapping window includes its start hour", []*policy.Policy{night}, "batch/x", policy.Read, lo, mon(22, 0), true, 0},
		{"a wrapping window includes early morning", []*policy.Policy{night}, "batch/x", policy.Read, lo, mon(3, 0), true, 0},
		{"a wrapping window includes its end hour", []*policy.Policy{night}, "batch/x", policy.Read, lo, mon(5, 30), true, 0},
		{"a wrapping window excludes midday", []*policy.Policy{night}, "batch/x", policy.Read, lo, mon(12, 0), false, policy.TimeOfDay},
		{"a wrapping window excludes the hour after its end", []*policy.Policy{night}, "batch/x", policy.Read, lo, mon(6, 0), false, policy.TimeOfDay},
		{"a zone shifts the window: 08:00 UTC is 09:00 in Berlin in winter", []*policy.Policy{berlin}, "prod/db", policy.Read, lo, mon(8, 0), true, 0},
		{"16:59 UTC is 17:59 in Berlin in winter", []*policy.Policy{berlin}, "prod/db", policy.Read, lo, mon(16, 59), true, 0},
		{"17:00 UTC is 18:00 in Berlin in winter", []*policy.Policy{berlin}, "prod/db", policy.Read, lo, mon(17, 0), false, policy.TimeOfDay},
		{"07:00 UTC is 09:00 in Berlin in summer", []*policy.Policy{berlin}, "prod/db", policy.Read, lo, summer(7), true, 0},
		{"16:00 UTC is 18:00 in Berlin in summer", []*policy.Policy{berlin}, "prod/db", policy.Read, lo, summer(16), false, policy.TimeOfDay},
		{"an address inside a listed CIDR", []*policy.Policy{nets}, "prod/db", policy.Read, ten, mon(12, 0), true, 0},
		{"the first address of a CIDR", []*policy.Policy{nets}, "prod/db", policy.Read, netip.MustParseAddr("10.0.0.0"), mon(12, 0), true, 0},
		{"the last address of a CIDR", []*policy.Policy{nets}, "prod/db", policy.Read, netip.MustParseAddr("10.255.255.255"), mon(12, 0), true, 0},
		{"the address just past a CIDR", []*policy.Policy{nets}, "prod/db", policy.Read, netip.MustParseAddr("11.0.0.0"), mon(12, 0), false, policy.SourceIP},
		{"a bare listed address", []*policy.Policy{nets}, "prod/db", policy.Read, netip.MustParseAddr("192.168.1.7"), mon(12, 0), true, 0},
		{"the neighbour of a bare address", []*policy.Policy{nets}, "prod/db", policy.Read, netip.MustParseAddr("192.168.1.8"), mon(12, 0), false, policy.SourceIP},
		{"an IPv6 address in a listed prefix", []*policy.Policy{nets}, "prod/db", policy.List, netip.MustParseAddr("2001:db8:1::5"), mon(12, 0), true, 0},
		{"loopback is no listed network", []*policy.Policy{nets}, "prod/db", policy.Read, lo, mon(12, 0), false, policy.SourceIP},
		{"an unknown client address meets no CIDR", []*policy.Policy{nets}, "prod/db", policy.Read, netip.Addr{}, mon(12, 0), false, policy.SourceIP},
		{"production reads prod from 10/8", []*policy.Policy{prod}, "prod/db", policy.Read, ten, mon(0, 0), true, 0},
		{"production reads prod at 23:59 from 10/8", []*policy.Policy{prod}, "prod/db", policy.Read, ten, mon(23, 59), true, 0},
		{"production never reads from loopback", []*policy.Policy{prod}, "prod/db", policy.Read, lo, mon(12, 0), false, policy.SourceIP},
		{"production never writes prod", []*policy.Policy{prod}, "prod/db", policy.Update, ten, mon(12, 0), false, 0},
		{"production does not reach other paths", []*policy.Policy{prod}, "dev/db", policy.Read, ten, mon(12, 0), false, 0},
		{"read-only reads everything", []*policy.Policy{readOnly}, "anything/at/all", policy.Read, lo, mon(12, 0), true, 0},
		{"read-only reads API resources too", []*policy.Policy{readOnly}, "sys/key-status", policy.Read, lo, mon(12, 0), true, 0},
		{"read-only writes nothing", []*policy.Policy{readOnly}, "prod/db", policy.Create, lo, mon(12, 0), false, 0},
		{"read-only deletes nothing", []*policy.Policy{readOnly}, "prod/db", policy.Delete, lo, mon(12, 0), false, 0},
		{"read-only cannot list", []*policy.Policy{readOnly}, "prod/", policy.List, lo, mon(12, 0), false, 0},
		{"a conditional deny that holds beats an allow", []*policy.Policy{readOnly, denyOutside}, "prod/db", policy.Read, ten, mon(12, 0), false, 0},
		{"a deny whose condition fails does not deny", []*policy.Policy{readOnly, denyWeekend}, "prod/db", policy.Read, lo, mon(12, 0), true, 0},
		{"a weekend deny holds on Saturday", []*policy.Policy{readOnly, denyWeekend}, "prod/db", policy.Read, lo, sat, false, 0},
		{"an unconditional allow covers a conditional one that fails", []*policy.Policy{office, readOnly}, "prod/db", policy.Read, lo, sat, true, 0},
		{"an IPv4-mapped prefix matches IPv4 clients", []*policy.Policy{mapped}, "prod/db", policy.Read, netip.MustParseAddr("172.16.5.5"), mon(12, 0), true, 0},
		{"an IPv4-mapped prefix keeps its width", []*policy.Policy{mapped}, "prod/db", policy.Read, netip.MustParseAddr("172.32.0.1"), mon(12, 0), false, policy.SourceIP},
		{"the day is read in the policy's zone: Sunday 23:30 UTC is Monday in Berlin", []*policy.Policy{weekdaysBerlin}, "prod/db", policy.Read, lo, time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC), true, 0},
		{"Friday 23:30 UTC is Saturday in Berlin", []*policy.Policy{weekdaysBerlin}, "prod/db", policy.Read, lo, time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC), false, policy.DaysOfWeek},
		{"a deny whose condition fails explains nothing", []*policy.Policy{denyWeekend}, "prod/db", policy.Read, lo, mon(12, 0), false, 0},
		{"the admin built-in ignores time and place", []*policy.Policy{policy.Builtin("admin")}, "sys/seal", policy.Update | policy.Sudo, lo, sat, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := policy.Evaluate(c.policies, policy.Request{Resource: c.resource, Capability: c.cap, ClientIP: c.ip, Time: c.at})
			if d.Allowed != c.allowed || d.Failed != c.failed {
				t.Fatalf("decision = %+v (failed %q), want allowed=%v failed=%q", d, d.Failed, c.allowed, c.failed)
			}
			if !d.Allowed && c.failed != 0 && (d.Policy == "" || d.Rule < 0) {
				t.Fatalf("a denial by condition must name the rule: %+v", d)
			}
		})
	}
}

func TestConditionNames(t *testing.T) {
	for c, want := range map[policy.Condition]string{policy.NoCondition: "", policy.TimeOfDay: "time_of_day", policy.DaysOfWeek: "days_of_week", policy.SourceIP: "source_ip"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q, want %q", c, c.String(), want)
		}
	}
}
