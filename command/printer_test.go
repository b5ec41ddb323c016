package command

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestPrinterTables(t *testing.T) {
	var out bytes.Buffer
	p, err := NewPrinter(&out, FormatTable)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Print(nil,
		keyValues("Metadata", []string{"version", "2"}, []string{"destroyed", "false"}),
		keyValues("Data", []string{"message", "Hello Production!"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := `====== Metadata ======
Key          Value
---          -----
version      2
destroyed    false

====== Data ======
Key        Value
---        -----
message    Hello Production!
`
	if out.String() != want {
		t.Fatalf("table output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestPrinterFormats(t *testing.T) {
	value := map[string]any{"sealed": false, "t": 3}
	section := keyValues("", []string{"Sealed", "false"})
	tests := []struct {
		name   string
		format string
		check  func(t *testing.T, out string)
	}{
		{"json output is the value, indented and parseable", FormatJSON, func(t *testing.T, out string) {
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil || got["t"] != 3.0 {
				t.Fatalf("%v: %s", err, out)
			}
			if strings.Contains(out, "Success!") || strings.Contains(out, "a note") {
				t.Fatalf("json output carries prose: %s", out)
			}
		}},
		{"table output shows the sections and the prose", FormatTable, func(t *testing.T, out string) {
			mustContain(t, "table", out, "Sealed    false", "Success! done", "a note")
		}},
		{"an empty format means table", "", func(t *testing.T, out string) {
			mustContain(t, "table", out, "Key       Value")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p, err := NewPrinter(&out, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			p.Success("done")
			if err := p.Print(value, section); err != nil {
				t.Fatal(err)
			}
			p.Note("a note")
			tt.check(t, out.String())
		})
	}
	t.Run("an unknown format is refused", func(t *testing.T) {
		if _, err := NewPrinter(&bytes.Buffer{}, "yaml"); err == nil {
			t.Fatal("want an error")
		}
	})
}

func TestCellFormatting(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"a string is shown as it is", "a b", "a b"},
		{"a number is shown as it is", 42, "42"},
		{"a list is compact JSON", []string{"default", "admin"}, `["default","admin"]`},
		{"an empty map is n/a", map[string]string{}, "n/a"},
		{"a nil map is n/a", map[string]string(nil), "n/a"},
		{"a map is compact JSON", map[string]string{"team": "x"}, `{"team":"x"}`},
		{"nil is n/a", nil, "n/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cell(tt.in); got != tt.want {
				t.Fatalf("cell(%#v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
