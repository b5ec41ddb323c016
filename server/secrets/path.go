package secrets

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/secrethub/secrethub/server/fault"
)

// MaxPathLength bounds a secret path in bytes.
const MaxPathLength = 512

// ReservedSegments are first path segments a secret may not use: they name
// the non-secret API resources policies refer to (SPEC §4).
var ReservedSegments = []string{"sys", "auth", "policies", "pki", "leases", "audit", "agents"}

// NormalizePath validates a secret path (the part after
// /v1/secrets/static/) and returns it in canonical form. Paths are
// slash-separated segments; none may be empty, "." or "..", contain control
// characters or backslashes, and the first may not be a reserved name.
func NormalizePath(p string) (string, error) {
	if p == "" {
		return "", fault.Invalidf("secret path is empty")
	}
	if strings.HasSuffix(p, "/") {
		return "", fault.Invalidf("secret path %q ends with \"/\": that names a folder; use LIST to see what is inside", fault.Input(clip(p)))
	}
	if err := checkSegments(p); err != nil {
		return "", err
	}
	return p, nil
}

// NormalizePrefix validates a LIST prefix: empty (everything) or a path,
// returned with exactly one trailing slash.
func NormalizePrefix(p string) (string, error) {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", nil
	}
	if err := checkSegments(p); err != nil {
		return "", err
	}
	return p + "/", nil
}

func checkSegments(p string) error {
	if len(p) > MaxPathLength {
		return fault.Invalidf("secret path is longer than %d bytes", MaxPathLength)
	}
	if !utf8.ValidString(p) {
		return fault.Invalidf("secret path is not valid UTF-8")
	}
	for _, r := range p {
		if unicode.IsControl(r) || r == '\\' {
			return fault.Invalidf("secret path contains a control character or backslash")
		}
	}
	for i, seg := range strings.Split(p, "/") {
		switch {
		case seg == "":
			return fault.Invalidf("secret path %q has an empty segment", fault.Input(clip(p)))
		case seg == "." || seg == "..":
			return fault.Invalidf("secret path %q contains a %q segment", fault.Input(clip(p)), seg)
		case i == 0 && isReserved(seg):
			return fault.Invalidf("secret path may not start with %q: it is reserved for the %s/ API", seg, strings.ToLower(seg))
		}
	}
	return nil
}

func isReserved(seg string) bool {
	for _, r := range ReservedSegments {
		if strings.EqualFold(seg, r) {
			return true
		}
	}
	return false
}

// clip shortens caller input quoted in an error message.
func clip(s string) string { return fault.Clip(s, 80) }
