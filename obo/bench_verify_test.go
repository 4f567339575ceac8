package obo_test

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/internal/emulator"
)

// BenchmarkOBOFirstRequest measures the first request of a token the App has never seen: its
// verification (RS256 signature and claims; the tenant's keys are already cached) and admission
// to the cache, and, with GetToken, its On-Behalf-Of exchange over HTTPS with the emulator. The
// b.N tokens are signed before the timer starts (the emulator signs about 1,000 a second per
// core), so give a count:
//
//	go test -run '^$' -bench OBOFirstRequest -benchtime 2000x -benchmem -count 6 ./obo/
func BenchmarkOBOFirstRequest(b *testing.B) {
	e := newEnv(b)
	oid := e.user(1)
	tokens := func(n int) []string {
		toks := make([]string, n)
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					toks[i] = e.userToken(oid, emulator.UserTokenOptions{})
				}
			})
		}
		wg.Wait()
		return toks
	}
	opts := policy.TokenRequestOptions{Scopes: []string{storage}}
	for _, exchange := range []bool{false, true} {
		name := "Credential"
		if exchange {
			name = "Credential+GetToken"
		}
		b.Run(name, func(b *testing.B) {
			o := e.options()
			o.MaxCachedUsers = b.N + 1
			a := e.app(b, o)
			if _, err := a.Credential(e.userToken(oid, emulator.UserTokenOptions{})); err != nil {
				b.Fatal(err) // the tenant's configuration and keys are fetched here
			}
			toks := tokens(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c, err := a.Credential(toks[i])
				if err != nil {
					b.Fatal(err)
				}
				if exchange {
					if _, err := c.GetToken(context.Background(), opts); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
