package command

import (
	"os"
	"path/filepath"
	"testing"
)

// --out-dir files: the directory 0700 when new, keys 0600, certificates
// 0644, whatever was at the names before; a symlink planted at a name is
// replaced, never written through.
func TestWritePEMFiles(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, dir string)
	}{
		{"a new directory", func(t *testing.T, dir string) {}},
		{"files of other modes already there", func(t *testing.T, dir string) {
			mkdir(t, dir, 0o755)
			for _, n := range []string{"certificate.pem", "private_key.pem"} {
				if err := os.WriteFile(filepath.Join(dir, n), []byte("old"), 0o666); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"a symlink planted at the key's name", func(t *testing.T, dir string) {
			mkdir(t, dir, 0o755)
			if err := os.Symlink(filepath.Join(filepath.Dir(dir), "outside"), filepath.Join(dir, "private_key.pem")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			if err := os.WriteFile(outside, []byte("untouched"), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "tls")
			c.prepare(t, dir)
			_, existed := os.Stat(dir)
			if err := writePEMFiles(dir, "CERT", []string{"CA1", "CA2"}, "KEY"); err != nil {
				t.Fatal(err)
			}
			if existed != nil {
				wantMode(t, dir, os.ModeDir|0o700)
			}
			for name, want := range map[string]struct {
				body string
				mode os.FileMode
			}{"certificate.pem": {"CERT", 0o644}, "ca_chain.pem": {"CA1CA2", 0o644}, "private_key.pem": {"KEY", 0o600}} {
				p := filepath.Join(dir, name)
				wantMode(t, p, want.mode)
				if b, err := os.ReadFile(p); err != nil || string(b) != want.body {
					t.Fatalf("%s = %q, %v; want %q", name, b, err, want.body)
				}
			}
			if b, _ := os.ReadFile(outside); string(b) != "untouched" {
				t.Fatalf("the symlink's target was written: %q", b)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 3 {
				t.Fatalf("%d files in the directory, want 3 (no temporary files left)", len(entries))
			}
		})
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != want {
		t.Fatalf("%s: mode %v, want %v", path, st.Mode(), want)
	}
}
