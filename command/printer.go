package command

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/secrethub/secrethub/client"
)

// The output formats of --format.
const (
	FormatTable = "table"
	FormatJSON  = "json"
)

// Printer writes every command's results, as tables (for people) or as
// JSON (for scripts), whichever --format asks for.
type Printer struct {
	out  io.Writer
	json bool
}

// NewPrinter returns a printer for format ("" means table).
func NewPrinter(out io.Writer, format string) (*Printer, error) {
	switch format {
	case "", FormatTable:
		return &Printer{out: out}, nil
	case FormatJSON:
		return &Printer{out: out, json: true}, nil
	}
	return nil, fmt.Errorf("unknown output format %q: use %q or %q", format, FormatTable, FormatJSON)
}

// Section is one titled table of table output.
type Section struct {
	Title  string
	Header []string
	Rows   [][]string
}

// keyValues is a Key/Value section, the shape of most single results.
func keyValues(title string, rows ...[]string) Section {
	return Section{Title: title, Header: []string{"Key", "Value"}, Rows: rows}
}

// Print writes v as indented JSON, or the sections as tables.
func (p *Printer) Print(v any, sections ...Section) error {
	if p.json {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding output: %w", err)
		}
		_, err = fmt.Fprintf(p.out, "%s\n", b)
		return err
	}
	for i, s := range sections {
		if i > 0 {
			fmt.Fprintln(p.out)
		}
		if err := p.table(s); err != nil {
			return err
		}
	}
	return nil
}

// Success confirms an action that has no result to show. JSON output
// stays machine-readable, so it gets nothing: the exit code says it all.
func (p *Printer) Success(format string, args ...any) {
	if !p.json {
		fmt.Fprintf(p.out, "Success! "+format+"\n", args...)
	}
}

// Note writes guidance for people after a result; JSON output omits it.
func (p *Printer) Note(text string) {
	if !p.json {
		fmt.Fprintf(p.out, "\n%s\n", text)
	}
}

// table renders a section borderless, with dashes under each heading, the
// way Vault's CLI does.
func (p *Printer) table(s Section) error {
	if s.Title != "" {
		fmt.Fprintf(p.out, "====== %s ======\n", s.Title)
	}
	var buf bytes.Buffer
	pad := tw.CellPadding{Global: tw.Padding{Left: "", Right: "    ", Overwrite: true}}
	t := tablewriter.NewTable(&buf,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders: tw.BorderNone,
			Symbols: tw.NewSymbolCustom("plain").WithColumn("").WithRow("").WithCenter(""),
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenColumns: tw.Off, BetweenRows: tw.Off},
				Lines:      tw.Lines{ShowHeaderLine: tw.Off},
			},
		})),
		tablewriter.WithConfig(tablewriter.Config{
			Header: tw.CellConfig{Padding: pad, Formatting: tw.CellFormatting{AutoFormat: tw.Off},
				Alignment: tw.CellAlignment{Global: tw.AlignLeft}},
			Row: tw.CellConfig{Padding: pad, Formatting: tw.CellFormatting{AutoWrap: tw.WrapNone},
				Alignment: tw.CellAlignment{Global: tw.AlignLeft}},
		}),
	)
	if len(s.Header) > 0 {
		t.Header(toAny(s.Header)...)
		dashes := make([]any, len(s.Header))
		for i, h := range s.Header {
			dashes[i] = strings.Repeat("-", len(h))
		}
		if err := t.Append(dashes...); err != nil {
			return err
		}
	}
	for _, r := range s.Rows {
		if err := t.Append(toAny(r)...); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("rendering table: %w", err)
	}
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		fmt.Fprintln(p.out, strings.TrimRight(line, " "))
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// cell formats a value for a table: strings and numbers as they are,
// times in RFC 3339, unset times and empty collections as "n/a", anything
// else as compact JSON.
func cell(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case client.Time:
		if x.IsZero() {
			return "n/a"
		}
		return x.String()
	case nil:
		return "n/a"
	}
	if rv := reflect.ValueOf(v); (rv.Kind() == reflect.Map || rv.Kind() == reflect.Slice) && rv.Len() == 0 {
		return "n/a"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// printKeys shows a LIST answer: one name a row, or a JSON array.
func printKeys(p *Printer, keys []string) error {
	rows := make([][]string, len(keys))
	for i, k := range keys {
		rows[i] = []string{k}
	}
	return p.Print(keys, Section{Header: []string{"Keys"}, Rows: rows})
}

// mapRows turns a map into Key/Value rows sorted by key.
func mapRows[V any](m map[string]V) [][]string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, []string{k, cell(m[k])})
	}
	return rows
}

// Value writes one value raw with a newline, whatever --format says:
// strings as they are, anything else as JSON (kv get -field).
func (p *Printer) Value(v any) error {
	s, ok := v.(string)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding value: %w", err)
		}
		s = string(b)
	}
	_, err := fmt.Fprintln(p.out, s)
	return err
}
