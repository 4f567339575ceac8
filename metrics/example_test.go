package metrics_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/metrics"
)

const tenantID, clientID = "72f988bf-0000-4000-8000-000000000001", "5b1a3e9c-0000-4000-8000-0000000000a1"

// The cache hit ratio of a credential: three GetToken calls, one request to Entra.
func Example() {
	emu, err := emulator.Start(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer emu.Close()
	cert, _ := emulator.NewTestCertificate("my-service")
	_ = emu.RegisterApp(tenantID, clientID, cert.Certificate)

	var m metrics.Memory
	cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{
		ClientOptions: emu.ClientOptions(),
		Metrics:       &m,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}); err != nil {
			fmt.Println(err)
		}
	}
	all := m.Total(metrics.TokenRequests, metrics.Labels{})
	hits := m.Total(metrics.TokenRequests, metrics.Labels{Source: metrics.SourceMemory})
	fmt.Printf("%d requests, %d from the cache (%.0f%%), %d sent to Entra\n", all, hits, 100*float64(hits)/float64(all),
		m.Total(metrics.TokenAcquisitions, metrics.Labels{}))
	// Output: 3 requests, 2 from the cache (67%), 1 sent to Entra
}

// hitCounter is a Recorder of one figure, with an atomic: it allocates nothing, so the cached
// GetToken allocates nothing either.
type hitCounter struct{ hits, all atomic.Int64 }

func (h *hitCounter) Add(_ context.Context, c metrics.Counter, n int64, l metrics.Labels) {
	if c != metrics.TokenRequests {
		return
	}
	h.all.Add(n)
	if l.Source == metrics.SourceMemory {
		h.hits.Add(n)
	}
}

func (*hitCounter) Record(context.Context, metrics.Histogram, float64, metrics.Labels) {}
func (*hitCounter) Set(context.Context, metrics.Gauge, float64, metrics.Labels)        {}

// A Recorder of your own: adapt your metrics library in a few lines (this one keeps the cache hits
// only). Use Counter.Name, Unit and Description to create the instruments.
func ExampleRecorder() {
	var r metrics.Recorder = &hitCounter{}
	r.Add(context.Background(), metrics.TokenRequests, 1, metrics.Labels{Credential: "KeyVaultCertCredential", Source: metrics.SourceMemory, Outcome: metrics.Success})
	r.Add(context.Background(), metrics.TokenRequests, 1, metrics.Labels{Credential: "KeyVaultCertCredential", Source: metrics.SourceEntra, Outcome: metrics.Success})
	h := r.(*hitCounter)
	fmt.Println(metrics.TokenRequests.Name(), metrics.TokenRequests.Unit(), h.hits.Load(), "of", h.all.Load())
	// Output: azcredkit.token.requests {request} 1 of 2
}
