package secrets_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/secrets"
)

type pathCase struct {
	name string
	in   string
	ok   bool
}

func TestNormalizePath(t *testing.T) {
	cases := []pathCase{
		{"a single segment is valid", "db", true},
		{"a nested path is valid", "prod/payments/db", true},
		{"dots inside a segment are valid", "prod/db.v2/..hidden", true},
		{"dashes, underscores, spaces and symbols are valid", "prod/my secret_1-@#%+*", true},
		{"unicode segments are valid", "prod/café/ключ", true},
		{"a path of exactly the maximum length is valid", strings.Repeat("a", secrets.MaxPathLength), true},
		{"a reserved word after the first segment is fine", "prod/sys/auth", true},
		{"a reserved word as a prefix of the first segment is fine", "system/db", true},
		{"a reserved word with a suffix is fine", "auth2/db", true},
		{"an empty path is refused", "", false},
		{"a trailing slash is refused", "prod/db/", false},
		{"a lone slash is refused", "/", false},
		{"a leading slash is refused", "/prod/db", false},
		{"a double slash is refused", "prod//db", false},
		{"a long path with an empty segment is refused with a short message", strings.Repeat("a", 400) + "//b", false},
		{"a long path with a trailing slash is refused with a short message", strings.Repeat("a", 400) + "/", false},
		{"a dot segment is refused", "prod/./db", false},
		{"a dot-dot segment is refused", "prod/../sys/seal", false},
		{"a leading dot-dot segment is refused", "../etc/passwd", false},
		{"a lone dot is refused", ".", false},
		{"a trailing dot-dot segment is refused", "prod/..", false},
		{"a newline is refused", "prod/db\n", false},
		{"a NUL byte is refused", "prod/d\x00b", false},
		{"a tab is refused", "prod/\tdb", false},
		{"DEL is refused", "prod/db\x7f", false},
		{"a C1 next-line control character is refused", "prod/db\u0085x", false},
		{"the first C1 control character is refused", "prod/\u0080", false},
		{"the last C1 control character is refused", "prod/\u009f", false},
		{"the character after the C1 range is valid", "prod/\u00a0x", true},
		{"a backslash is refused", `prod\db`, false},
		{"a path over the maximum length is refused", strings.Repeat("a", secrets.MaxPathLength+1), false},
		{"invalid UTF-8 is refused", "prod/\xff\xfe", false},
		{"a truncated UTF-8 sequence is refused", "prod/caf\xc3", false},
	}
	for _, r := range secrets.ReservedSegments {
		for _, form := range []string{r, strings.ToUpper(r), strings.ToUpper(r[:1]) + r[1:]} {
			cases = append(cases,
				pathCase{fmt.Sprintf("a path starting with reserved %q is refused", form), form + "/x", false},
				pathCase{fmt.Sprintf("the reserved word %q alone is refused", form), form, false},
			)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := secrets.NormalizePath(c.in)
			if !c.ok {
				if fault.KindOf(err) != fault.Invalid {
					t.Fatalf("NormalizePath(%q) = %q, %v; want an Invalid fault", c.in, got, err)
				}
				if len(err.Error()) > 300 {
					t.Fatalf("error message is %d bytes: a huge path must not be echoed whole", len(err.Error()))
				}
				return
			}
			if err != nil || got != c.in {
				t.Fatalf("NormalizePath(%q) = %q, %v; want it unchanged", c.in, got, err)
			}
		})
	}
	t.Run("every reserved segment of the API is reserved", func(t *testing.T) {
		for _, want := range []string{"sys", "auth", "policies", "pki", "leases", "audit", "agents"} {
			if _, err := secrets.NormalizePath(want + "/x"); err == nil {
				t.Fatalf("%q is not reserved", want)
			}
		}
	})
}

func TestNormalizePrefix(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"the empty prefix lists everything", "", "", true},
		{"a lone slash lists everything", "/", "", true},
		{"a folder gets one trailing slash", "prod", "prod/", true},
		{"a folder with its slash keeps one", "prod/", "prod/", true},
		{"a nested folder is kept", "prod/payments/", "prod/payments/", true},
		{"a reserved word deeper in the prefix is fine", "prod/sys", "prod/sys/", true},
		{"two trailing slashes are refused", "prod//", "", false},
		{"a double slash inside is refused", "prod//x/", "", false},
		{"a leading slash is refused", "/prod", "", false},
		{"a dot-dot segment is refused", "prod/../", "", false},
		{"a dot segment is refused", "./", "", false},
		{"a control character is refused", "prod\r/", "", false},
		{"a backslash is refused", `prod\x/`, "", false},
		{"invalid UTF-8 is refused", "\xc0/", "", false},
		{"an over-long prefix is refused", strings.Repeat("p", secrets.MaxPathLength+1) + "/", "", false},
		{"a reserved first segment is refused", "sys/", "", false},
		{"a reserved first segment in upper case is refused", "AUTH", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := secrets.NormalizePrefix(c.in)
			if !c.ok {
				if fault.KindOf(err) != fault.Invalid {
					t.Fatalf("NormalizePrefix(%q) = %q, %v; want an Invalid fault", c.in, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("NormalizePrefix(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"prod/db", "", "/", "a//b", "./x", "x/..", "sys/x", "SyS", "prod/sys", "a\\b", "\xff", "a/b/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := secrets.NormalizePath(in)
		prefix, perr := secrets.NormalizePrefix(in)
		if perr == nil {
			if again, err := secrets.NormalizePrefix(prefix); err != nil || again != prefix {
				t.Fatalf("NormalizePrefix is not idempotent: %q -> %q -> %q, %v", in, prefix, again, err)
			}
			if prefix != "" && !strings.HasSuffix(prefix, "/") {
				t.Fatalf("NormalizePrefix(%q) = %q without a trailing slash", in, prefix)
			}
		}
		if err != nil {
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("NormalizePath(%q) failed with a non-Invalid error %v", in, err)
			}
			return
		}
		if got == "" || len(got) > secrets.MaxPathLength || !utf8.ValidString(got) {
			t.Fatalf("NormalizePath(%q) accepted %q", in, got)
		}
		if strings.ContainsRune(got, '\\') || strings.IndexFunc(got, unicode.IsControl) >= 0 {
			t.Fatalf("NormalizePath(%q) = %q keeps a control character or backslash", in, got)
		}
		for i, seg := range strings.Split(got, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q has segment %q", in, got, seg)
			}
			if i == 0 {
				for _, r := range secrets.ReservedSegments {
					if strings.EqualFold(seg, r) {
						t.Fatalf("NormalizePath(%q) = %q starts with reserved %q", in, got, r)
					}
				}
			}
		}
		if again, err := secrets.NormalizePath(got); err != nil || again != got {
			t.Fatalf("NormalizePath is not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
		if perr != nil || prefix != got+"/" {
			t.Fatalf("valid path %q is not a valid prefix: %q, %v", got, prefix, perr)
		}
	})
}
