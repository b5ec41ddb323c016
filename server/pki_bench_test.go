package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// BenchmarkPKIIssue measures issuing through the whole HTTP stack, each
// certificate stored: an EC P-256 leaf (serial and parallel; ops/s is
// 1e9/ns_per_op), signing a P-256 CSR, and an RSA-2048 leaf, which is
// bound by key generation and reported apart. The CA is EC P-256.
func BenchmarkPKIIssue(b *testing.B) {
	for _, e := range benchEngines {
		b.Run(e.name, func(b *testing.B) {
			hs, root := benchNode(b, e.open(b))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			send(b, client, "POST", hs.URL+"/v1/pki/ca/root/generate", root, `{"common_name":"Bench Root","key_type":"ec"}`, 200)
			send(b, client, "POST", hs.URL+"/v1/pki/ca/intermediate/generate", root, `{"common_name":"Bench Intermediate","key_type":"ec"}`, 200)
			send(b, client, "POST", hs.URL+"/v1/pki/roles/ec", root, `{"allowed_domains":"example.com","allow_subdomains":true,"key_type":"ec"}`, 200)
			send(b, client, "POST", hs.URL+"/v1/pki/roles/rsa", root, `{"allowed_domains":"example.com","allow_subdomains":true,"key_type":"rsa","key_bits":2048}`, 200)
			body := `{"common_name":"www.example.com","ttl":"24h"}`
			b.Run("ec-p256", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					send(b, client, "POST", hs.URL+"/v1/pki/issue/ec", root, body, 200)
				}
			})
			b.Run("ec-p256-parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := try(client, "POST", hs.URL+"/v1/pki/issue/ec", root, body, 200); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			csr, _ := newCSR(b, "api.example.com")
			signBody := `{"csr":"` + strings.ReplaceAll(csr, "\n", `\n`) + `"}`
			b.Run("sign-csr", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					send(b, client, "POST", hs.URL+"/v1/pki/sign/ec", root, signBody, 200)
				}
			})
			b.Run("rsa-2048", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					send(b, client, "POST", hs.URL+"/v1/pki/issue/rsa", root, body, 200)
				}
			})
		})
	}
}
