package server_test

import (
	"testing"
)

// sys/health honours Vault's status-code query parameters in every state,
// HEAD answers the status without a body, and a bad code is a 400.
func TestHealthStatusCodes(t *testing.T) {
	eachEngine(t, func(t *testing.T, n *node) {
		type check struct {
			query  string
			status int
		}
		run := func(t *testing.T, state string, checks []check) {
			t.Helper()
			for _, c := range checks {
				t.Run(state+" with "+c.query+" answers "+statusText(c.status), func(t *testing.T) {
					r := mustStatus(t, n.do("GET", "/v1/sys/health"+c.query, "", ""), c.status)
					if c.status == 400 {
						mustError(t, r, 400, "must be")
						return
					}
					if c.status == 204 {
						return
					}
					if h := r.JSON(t); h["initialized"] == nil || h["sealed"] == nil {
						t.Fatalf("health body = %s", r.Body)
					}
					head := mustStatus(t, n.do("HEAD", "/v1/sys/health"+c.query, "", ""), c.status)
					if len(head.Body) != 0 {
						t.Fatalf("HEAD returned a body: %q", head.Body)
					}
				})
			}
		}

		run(t, "uninitialized", []check{
			{"", 501},
			{"?uninitcode=299", 299},
			{"?sealedcode=299", 501},
			{"?standbyok=true", 501},
			{"?uninitcode=abc", 400},
			{"?uninitcode=99", 400},
			{"?uninitcode=600", 400},
		})

		keys, keysB64, root := n.initKeys(3, 2)
		run(t, "sealed", []check{
			{"", 503},
			{"?sealedcode=299", 299},
			{"?uninitcode=299", 503},
			{"?sealedcode=299&uninitcode=298&activecode=297", 299},
			{"?sealedcode=", 503},
			{"?sealedcode=2x9", 400},
			{"?activecode=abc", 400},
		})

		n.unseal(keys[0])
		n.unseal(keysB64[1])
		run(t, "active", []check{
			{"", 200},
			{"?activecode=299", 299},
			{"?standbyok=true", 200},
			{"?standbyok=true&activecode=204", 204},
			{"?sealedcode=299&uninitcode=299&standbycode=299&drsecondarycode=299&performancestandbycode=299", 200},
			{"?activecode=-1", 400},
			{"?sealedcode=abc", 400},
			{"?standbycode=abc", 400},
			{"?standbyok=maybe", 400},
		})

		h := mustStatus(t, n.do("GET", "/v1/sys/health", "", ""), 200).JSON(t)
		for _, k := range []string{"initialized", "sealed", "standby", "hostname", "version", "cluster_name", "server_time_utc"} {
			if _, ok := h[k]; !ok {
				t.Errorf("health lacks %q: %v", k, h)
			}
		}
		if h["sealed"] != false || h["initialized"] != true || h["standby"] != false {
			t.Fatalf("health when active = %v", h)
		}
		mustStatus(t, n.do("POST", "/v1/sys/seal", root, ""), 204)
		mustStatus(t, n.do("HEAD", "/v1/sys/health", "", ""), 503)
	})
}

func statusText(code int) string {
	return map[int]string{200: "200", 204: "204", 299: "299", 400: "400", 501: "501", 503: "503"}[code]
}
