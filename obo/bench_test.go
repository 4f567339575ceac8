package obo_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/obo"
)

// BenchmarkOBOCachedRequest measures what a request of a signed-in user costs once the user's
// OBO token is cached, with 10,000 users in the App's cache, and the memory a cached user takes.
//
//	go test -run '^$' -bench OBOCachedRequest -benchmem -count 6 ./obo/ | tee obo.txt
//	benchstat obo.txt
func BenchmarkOBOCachedRequest(b *testing.B) {
	const users = 10_000
	e := newEnv(b)
	a := e.app(b, nil)
	toks := make([]string, users)
	var next atomic.Int64
	var wg sync.WaitGroup
	var memBefore, memAfter runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&memBefore)
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= users {
					return
				}
				oid := e.user(10_000 + i)
				toks[i] = e.userToken(oid, emulator.UserTokenOptions{})
				c, err := a.Credential(toks[i])
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{storage}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	if n := a.CachedUsers(); n != users {
		b.Fatalf("cache holds %d users, want %d", n, users)
	}
	runtime.GC()
	runtime.ReadMemStats(&memAfter)
	// The user tokens themselves (held by this benchmark, not by the cache) are subtracted.
	tokBytes := 0
	for _, t := range toks {
		tokBytes += len(t)
	}
	perUser := (float64(memAfter.HeapAlloc) - float64(memBefore.HeapAlloc) - float64(tokBytes)) / users
	opts := policy.TokenRequestOptions{Scopes: []string{storage}}

	b.Run("Credential+GetToken", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c, err := a.Credential(toks[i%users])
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.GetToken(context.Background(), opts); err != nil {
				b.Fatal(err)
			}
			i += 7919 // a prime: visit users in a scattered order
		}
		b.ReportMetric(perUser, "heap-B/cached-user")
	})
	b.Run("Middleware+GetToken", func(b *testing.B) {
		h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := obo.CredentialFromContext(r.Context())
			if _, err := c.GetToken(r.Context(), opts); err != nil {
				b.Fatal(err)
			}
		}))
		reqs := make([]*http.Request, 64)
		for i := range reqs {
			reqs[i] = httptest.NewRequest(http.MethodGet, "/blobs", nil)
			reqs[i].Header.Set(obo.HeaderAccessToken, toks[i*97%users])
		}
		w := httptest.NewRecorder()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h.ServeHTTP(w, reqs[i%len(reqs)])
			i++
		}
	})
	b.Run("GetToken-same-credential", func(b *testing.B) {
		c, err := a.Credential(toks[0])
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.GetToken(context.Background(), opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	if got := e.entra.Count("token:obo"); got != users {
		b.Fatalf("Entra saw %d OBO exchanges, want %d (one per user)", got, users)
	}
}
