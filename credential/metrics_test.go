package credential_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/metrics"
)

func labels(cred string, src metrics.Source, out metrics.Outcome) metrics.Labels {
	return metrics.Labels{Credential: cred, Source: src, Outcome: out}
}

// TestMetricsScriptedRun: N GetToken calls count N-1 memory hits and 1 request to Entra (one
// acquisition, timed); a refused scope, a failure and a claims challenge count as such; a
// background refresh counts its outcome; the certificate's days to expiry is set.
func TestMetricsScriptedRun(t *testing.T) {
	e := newEnv(t)
	failOn(e.entra)
	var m metrics.Memory
	o := e.options()
	o.Metrics = &m
	c := e.cred(t, o)
	const cred = "SignedAssertionCredential"
	ctx := context.Background()
	const n = 10
	for range n {
		_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		require.NoError(t, err)
	}
	assert.Equal(t, int64(n-1), m.Count(metrics.TokenRequests, labels(cred, metrics.SourceMemory, metrics.Success)))
	assert.Equal(t, int64(1), m.Count(metrics.TokenRequests, labels(cred, metrics.SourceEntra, metrics.Success)))
	assert.Equal(t, int64(1), m.Count(metrics.TokenAcquisitions, labels(cred, "", metrics.Success)))
	assert.Equal(t, int64(1), e.entra.Count("token:client_credentials"))
	d := m.Histogram(metrics.TokenAcquisitionDuration, metrics.Labels{Credential: cred})
	assert.Equal(t, int64(1), d.Count)
	assert.Greater(t, d.Sum, 0.0)
	days, ok := m.Gauge(metrics.CertificateDaysToExpiry, metrics.Labels{Credential: cred})
	require.True(t, ok)
	assert.InDelta(t, 365, days, 1)

	// A scope an app token cannot have: refused before any request.
	_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/user_impersonation"}})
	require.Error(t, err)
	assert.Equal(t, int64(1), m.Count(metrics.TokenRequests, labels(cred, "", metrics.Failure)))
	// Entra refuses.
	_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{failScope}})
	require.Error(t, err)
	assert.Equal(t, int64(1), m.Count(metrics.TokenRequests, labels(cred, metrics.SourceEntra, metrics.Failure)))
	assert.Equal(t, int64(1), m.Count(metrics.TokenAcquisitions, labels(cred, "", metrics.Failure)))
	// A claims challenge goes to Entra.
	_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}, Claims: `{"access_token":{}}`})
	require.NoError(t, err)
	assert.Equal(t, int64(2), m.Count(metrics.TokenRequests, labels(cred, metrics.SourceEntra, metrics.Success)))
	assert.Equal(t, int64(n-1), m.Count(metrics.TokenRequests, labels(cred, metrics.SourceMemory, metrics.Success)))

	// A background refresh: tokens living 2 s are stale after about 1 s.
	e.entra.SetTokenLifetime(2 * time.Second)
	_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
		require.NoError(t, err)
		return m.Count(metrics.TokenRefreshes, labels(cred, metrics.SourceEntra, metrics.Success)) == 1
	}, 10*time.Second, 50*time.Millisecond)
}

// TestMetricsKeyVaultCredentials: the Key Vault reads, sign operations and rotations of the Key
// Vault, HSM and Managed HSM credentials.
func TestMetricsKeyVaultCredentials(t *testing.T) {
	h := newHSMEnv(t)
	ctx := context.Background()
	var m metrics.Memory
	so := *h.env.options()
	so.Metrics = &m

	kvKey := testcerts.RSA(2048, 1)
	kvChain := testcerts.Chain(kvKey, "metrics-kv")
	h.importCert("metrics-kv", kvChain, kvKey, emulator.CertificateOptions{})
	kv, err := credential.NewKeyVaultCertCredential(tenantA, clientID, h.certURL("metrics-kv"), h.miCred, &credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: so, Vault: h.vaultCO})
	require.NoError(t, err)
	h.importHSM("metrics-hsm", 2)
	hsm, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, h.certURL("metrics-hsm"), h.miCred, &credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: so, Vault: h.vaultCO})
	require.NoError(t, err)
	_, mhsmChain := h.newKeyVersion(3)
	h.app.AddCertificate(mhsmChain[0])
	mhsm, err := credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.StaticCertificates(mhsmChain), h.miCred, &credential.ManagedHSMCredentialOptions{SignedAssertionCredentialOptions: so, Vault: h.vaultCO})
	require.NoError(t, err)
	for _, c := range []azcore.TokenCredential{kv, hsm, mhsm} {
		for range 3 {
			_, err := c.GetToken(ctx, vaultScope)
			require.NoError(t, err)
		}
	}
	for _, c := range []struct {
		cred         string
		reads, signs int64
	}{{"KeyVaultCertCredential", 1, 0}, {"HSMSignedAssertionCredential", 1, 1}, {"ManagedHSMCredential", 1, 1}} {
		assert.Equal(t, c.reads, m.Count(metrics.KeyVaultReads, labels(c.cred, "", metrics.Success)), c.cred)
		assert.Equal(t, c.signs, m.Count(metrics.SignOperations, labels(c.cred, "", metrics.Success)), c.cred)
		assert.Equal(t, int64(2), m.Count(metrics.TokenRequests, labels(c.cred, metrics.SourceMemory, metrics.Success)), c.cred)
		assert.Equal(t, int64(1), m.Count(metrics.TokenAcquisitions, labels(c.cred, "", metrics.Success)), c.cred)
		_, ok := m.Gauge(metrics.CertificateDaysToExpiry, metrics.Labels{Credential: c.cred})
		assert.True(t, ok, c.cred)
	}
	assert.Equal(t, h.hsm.Count("keys/sign")+h.vault.Count("keys/sign"), m.Total(metrics.SignOperations, metrics.Labels{}))

	// A rotation: Entra rejects the old certificate, the credential reads the vault again and
	// retries with the new one.
	newKey := testcerts.RSA(2048, 4)
	h.importCert("metrics-kv", testcerts.Chain(newKey, "metrics-kv-2"), newKey, emulator.CertificateOptions{})
	h.app.RemoveCertificate(kvChain[0])
	_, err = kv.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	require.NoError(t, err)
	assert.Equal(t, int64(1), m.Count(metrics.CertificateRotations, labels("KeyVaultCertCredential", "", "")))
	assert.Equal(t, int64(2), m.Count(metrics.KeyVaultReads, labels("KeyVaultCertCredential", "", metrics.Success)))
}

// countingRecorder counts with atomics: a Recorder that does not allocate.
type countingRecorder struct{ adds, records, sets atomic.Int64 }

func (r *countingRecorder) Add(context.Context, metrics.Counter, int64, metrics.Labels) {
	r.adds.Add(1)
}
func (r *countingRecorder) Record(context.Context, metrics.Histogram, float64, metrics.Labels) {
	r.records.Add(1)
}
func (r *countingRecorder) Set(context.Context, metrics.Gauge, float64, metrics.Labels) {
	r.sets.Add(1)
}

// TestCacheHitDoesNotAllocateWithMetrics: with a Recorder that does not allocate (atomic
// counters, or metrics.Memory after a series' first value), the cached GetToken allocates
// nothing, for the last scope and for another one; every call is counted.
func TestCacheHitDoesNotAllocateWithMetrics(t *testing.T) {
	e := newEnv(t)
	for _, r := range []metrics.Recorder{&countingRecorder{}, &metrics.Memory{}} {
		o := e.options()
		o.Metrics = r
		c := e.cred(t, o)
		ctx := context.Background()
		opts := policy.TokenRequestOptions{Scopes: []string{vaultRes}}
		other := policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}}
		for _, o := range []policy.TokenRequestOptions{opts, other, opts, other} {
			_, err := c.GetToken(ctx, o)
			require.NoError(t, err)
		}
		for _, o := range []policy.TokenRequestOptions{opts, other} {
			allocs := testing.AllocsPerRun(1000, func() {
				if _, err := c.GetToken(ctx, o); err != nil {
					panic(err)
				}
			})
			require.Zero(t, allocs, "a cache hit with %T allocates nothing (%v)", r, o.Scopes)
		}
		if cr, ok := r.(*countingRecorder); ok {
			assert.GreaterOrEqual(t, cr.adds.Load(), int64(2002))
		}
		if mr, ok := r.(*metrics.Memory); ok {
			assert.GreaterOrEqual(t, mr.Count(metrics.TokenRequests, labels("SignedAssertionCredential", metrics.SourceMemory, metrics.Success)), int64(2002))
		}
	}
}

// panickingRecorder panics in every method.
type panickingRecorder struct{}

func (panickingRecorder) Add(context.Context, metrics.Counter, int64, metrics.Labels) {
	panic("recorder bug")
}
func (panickingRecorder) Record(context.Context, metrics.Histogram, float64, metrics.Labels) {
	panic("recorder bug")
}
func (panickingRecorder) Set(context.Context, metrics.Gauge, float64, metrics.Labels) {
	panic("recorder bug")
}

// TestPanickingRecorderIsHarmless: a Recorder that panics costs no token.
func TestPanickingRecorderIsHarmless(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	o.Metrics = panickingRecorder{}
	c := e.cred(t, o)
	for range 2 {
		_, err := c.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		require.NoError(t, err)
	}
}
