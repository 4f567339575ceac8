package credential_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
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
