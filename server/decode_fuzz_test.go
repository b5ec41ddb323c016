package server

import (
	"testing"

	"github.com/secrethub/secrethub/server/fault"
)

// FuzzDecodeJSON feeds arbitrary bodies to the request decoder: it never
// panics, and every refusal is a 400 (fault kind Invalid) with a message
// for the caller, never an internal error.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"data":{"message":"Hello Production!"}}`,
		`{"data":{"k":"v","n":1,"nested":{"a":[1,2,{"b":null}]}},"options":{"cas":0}}`,
		`{"secret_shares":5,"secret_threshold":3}`,
		`{"secret_shares":5,"secret_threshold":3,"pgp_keys":null,"stored_shares":0}`,
		`{"policies":["default"],"ttl":"24h","explicit_max_ttl":"87600h","num_uses":3,"renewable":false,"meta":{"a":"b"},"bound_cidrs":["127.0.0.1/32"]}`,
		`{"ttl":3600,"lease":"7d","period":"1h30m"}`,
		`{"ttl":1e400}`, `{"ttl":-1}`, `{"ttl":"-1h"}`, `{"ttl":"9999999999d"}`, `{"ttl":0.5}`, `{"ttl":null}`, `{"ttl":true}`,
		`{"secret_shares":"5"}`, `{"secret_shares":5.5}`, `{"secret_shares":99999999999999999999}`,
		`{"data":"x"}`, `{"data":[1]}`, `{"options":{"cas":"1"}}`, `{"options":[]}`,
		`{"unknown":1}`, `{"data":{}} trailing`, `{} {}`, `[]`, `null`, `"string"`, `1`, `true`,
		`{"data":`, `{"data":{"k":"\ud800"}}`, "{\"data\":{\"k\":\"\xff\"}}", `{"a":1,"a":2}`,
		"", " \n\t", "\ufeff{}", `{"DATA":{"k":"v"}}`, `{"Policies":["x"]}`,
	} {
		f.Add([]byte(seed))
	}
	targets := []struct {
		name string
		new  func() any
	}{
		{"kvWriteRequest", func() any { return new(kvWriteRequest) }},
		{"initRequest", func() any { return new(initRequest) }},
		{"tokenCreateRequest", func() any { return new(tokenCreateRequest) }},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, target := range targets {
			err := decodeJSON(body, target.new())
			if err == nil {
				continue
			}
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("%s: decoding %q: error %v is not a 400 (kind %v)", target.name, body, err, fault.KindOf(err))
			}
			if fault.Message(err) == "" {
				t.Fatalf("%s: decoding %q: 400 without a message", target.name, body)
			}
		}
	})
}
