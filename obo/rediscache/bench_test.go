package rediscache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/obo"
)

// BenchmarkSharedCacheHit measures a request whose user is not in the instance's own cache (L1)
// but in Redis (L2, a redis-server on loopback): App.Credential + GetToken with the lookup,
// decryption and the fill of L1. For comparison, the same request without a shared cache, which
// exchanges the user's token with the Entra emulator (on loopback too: real Entra adds the
// network and its own time, typically 50-200 ms).
//
//	go test -run '^$' -bench SharedCacheHit -benchmem -count 6 ./obo/rediscache/ | tee l2.txt
func BenchmarkSharedCacheHit(b *testing.B) {
	const users = 1024
	f := newFleet(b)
	us := make([]user, users)
	for i := range us {
		us[i] = f.user(i)
	}
	writer := f.app(b, nil, nil)
	for _, u := range us {
		mustToken(b, writer, u)
	}
	flush(b, writer)
	// A small own cache: every request of the cycle below misses it.
	small := func(o *obo.AppOptions) { o.MaxCachedUsers = 16 }
	b.Run("L1-miss-L2-hit", func(b *testing.B) {
		a := f.app(b, nil, small)
		before := f.exchanges()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := getToken(context.Background(), a, us[i%users]); err != nil {
				b.Fatal(err)
			}
			i += 7
		}
		if n := f.exchanges() - before; n != 0 {
			b.Fatalf("%d exchanges: the requests were not served by Redis", n)
		}
	})
	b.Run("L1-miss-no-shared-cache-exchange", func(b *testing.B) {
		co := f.entra.ClientOptions()
		co.Retry = policy.RetryOptions{MaxRetries: 1}
		a, err := obo.NewAppWithSecret(tenant, apiID, apiSecret, &obo.AppOptions{ClientOptions: co, DisableInstanceDiscovery: true, MaxCachedUsers: 16})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := getToken(context.Background(), a, us[i%users]); err != nil {
				b.Fatal(err)
			}
			i += 7
		}
	})
}

// BenchmarkFleet runs a fleet of N instances (N = 1, 4, 16) behind a load balancer without
// affinity: U users send R requests each, every request to a random instance, 16 at a time;
// then a rolling restart replaces the instances one by one, each new one followed by one request
// per user. It reports the On-Behalf-Of exchanges and the p50/p99 latency of a request
// (App.Credential + GetToken), without and with the shared cache on Redis (loopback, the Entra
// emulator on loopback too). One iteration is one whole run:
//
//	go test -run '^$' -bench Fleet -benchtime 1x -count 3 ./obo/rediscache/ | tee fleet.txt
func BenchmarkFleet(b *testing.B) {
	const users, requests, concurrency = 200, 5, 16
	f := newFleet(b)
	rdb := f.client(b)
	us := make([]user, users)
	for i := range us {
		us[i] = f.user(i)
	}
	for _, n := range []int{1, 4, 16} {
		for _, shared := range []bool{false, true} {
			b.Run(fmt.Sprintf("instances=%d/shared=%v", n, shared), func(b *testing.B) {
				for b.Loop() {
					if err := rdb.FlushAll(context.Background()).Err(); err != nil {
						b.Fatal(err)
					}
					f.entra.ResetCounts()
					newInstance := func() *obo.App {
						if shared {
							return f.app(b, nil, nil)
						}
						return f.app(b, nil, func(o *obo.AppOptions) { o.SharedCache, o.SharedCacheKeys = nil, nil })
					}
					fleet := make([]*obo.App, n)
					for i := range fleet {
						fleet[i] = newInstance()
					}
					var mu sync.Mutex // guards fleet during the rolling restart
					pick := func(r *rand.Rand) *obo.App {
						mu.Lock()
						defer mu.Unlock()
						return fleet[r.IntN(n)]
					}
					// Steady state: every user's requests, shuffled.
					var work []int
					for range requests {
						for u := range users {
							work = append(work, u)
						}
					}
					rand.New(rand.NewPCG(1, uint64(n))).Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })
					steady := serve(b, us, work, concurrency, pick)
					steadyExchanges := f.exchanges()

					// Rolling restart: each instance in turn is replaced by a new process, then
					// every user sends one request.
					var restart []time.Duration
					for i := range n {
						next := newInstance()
						mu.Lock()
						old := fleet[i]
						fleet[i] = next
						mu.Unlock()
						flush(b, old)
						order := rand.New(rand.NewPCG(2, uint64(i))).Perm(users)
						restart = append(restart, serve(b, us, order, concurrency, pick)...)
					}
					restartExchanges := f.exchanges() - steadyExchanges

					b.ReportMetric(float64(steadyExchanges), "exchanges")
					b.ReportMetric(ms(percentile(steady, 50)), "p50-ms")
					b.ReportMetric(ms(percentile(steady, 99)), "p99-ms")
					b.ReportMetric(float64(restartExchanges), "restart-exchanges")
					b.ReportMetric(ms(percentile(restart, 50)), "restart-p50-ms")
					b.ReportMetric(ms(percentile(restart, 99)), "restart-p99-ms")
				}
			})
		}
	}
}

// serve sends the requests of work (user indexes) to instances chosen by pick, concurrency at a
// time, and returns each request's latency.
func serve(b *testing.B, us []user, work []int, concurrency int, pick func(*rand.Rand) *obo.App) []time.Duration {
	lat := make([]time.Duration, len(work))
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range concurrency {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for i := next.Add(1) - 1; i < int64(len(work)); i = next.Add(1) - 1 {
				a := pick(r)
				start := time.Now()
				if _, err := getToken(context.Background(), a, us[work[i]]); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	return lat
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
