package credential_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// BenchmarkGetTokenCacheHit measures a cached GetToken, ours against azidentity's certificate
// credential, both warmed up against the Entra emulator over HTTPS in the same run.
//
//	go test -run '^$' -bench GetTokenCacheHit -benchmem -count 10 ./credential/ | tee bench.txt
//	benchstat bench.txt
func BenchmarkGetTokenCacheHit(b *testing.B) {
	e := newEnv(b)
	ours := e.cred(b, nil)
	o := e.options()
	theirs, err := azidentity.NewClientCertificateCredential(tenantA, clientID, e.chain, e.key, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions: o.ClientOptions, DisableInstanceDiscovery: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
	for _, c := range []struct {
		name string
		cred azcore.TokenCredential
	}{{"azcredkit", ours}, {"azidentity", theirs}} {
		if _, err := c.cred.GetToken(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/serial", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.cred.GetToken(ctx, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.cred.GetToken(ctx, opts); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkKeyVaultCredentials measures a credential's first token (a cold start: Key Vault read,
// for the HSM credential a sign operation, and a token request) and reports the service calls per
// operation; the cached case shows that a cached token costs no Key Vault call.
//
//	go test -run '^$' -bench KeyVaultCredentials -benchmem -count 6 ./credential/ | tee kv.txt
//	benchstat kv.txt
func BenchmarkKeyVaultCredentials(b *testing.B) {
	k := newKVEnv(b)
	key := testcerts.RSA(2048, 0)
	k.importCert("app-cert", testcerts.Chain(key, "bench"), key, emulator.CertificateOptions{})
	hsmKey := testcerts.RSA(2048, 1)
	k.importCert("hsm-cert", testcerts.Chain(hsmKey, "bench-hsm"), hsmKey, emulator.CertificateOptions{NonExportable: true, HSM: true})
	ctx := context.Background()
	// Warm the vault credential's own token.
	if _, err := k.miCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}}); err != nil {
		b.Fatal(err)
	}
	newKV := func() azcore.TokenCredential {
		c, err := credential.NewKeyVaultCertCredential(tenantA, clientID, k.certURL("app-cert"), k.miCred, k.kvOptions())
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	newHSM := func() azcore.TokenCredential {
		c, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, k.certURL("hsm-cert"), k.miCred, k.hsmOptions(""))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	report := func(b *testing.B) {
		n := float64(b.N)
		b.ReportMetric(float64(k.vault.Count("secrets/get"))/n, "secret-reads/op")
		b.ReportMetric(float64(k.vault.Count("certificates/get"))/n, "cert-reads/op")
		b.ReportMetric(float64(k.vault.Count("keys/sign"))/n, "signs/op")
		b.ReportMetric(float64(k.entra.Count("token:client_credentials"))/n, "token-requests/op")
	}
	for _, c := range []struct {
		name string
		new  func() azcore.TokenCredential
	}{{"KeyVaultCert", newKV}, {"HSM", newHSM}} {
		b.Run(c.name+"/first-token", func(b *testing.B) {
			k.vault.ResetCounts()
			k.entra.ResetCounts()
			for b.Loop() {
				if _, err := c.new().GetToken(ctx, vaultScope); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
		b.Run(c.name+"/cached", func(b *testing.B) {
			cred := c.new()
			if _, err := cred.GetToken(ctx, vaultScope); err != nil {
				b.Fatal(err)
			}
			k.vault.ResetCounts()
			k.entra.ResetCounts()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cred.GetToken(ctx, vaultScope); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
}
