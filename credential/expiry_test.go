package credential_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/metrics"
)

// record is one slog record, its attributes as text.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recordHandler keeps every record (at every level).
type recordHandler struct {
	mu      *sync.Mutex
	records *[]record
	pre     []slog.Attr
}

func newRecordHandler() *recordHandler {
	return &recordHandler{mu: &sync.Mutex{}, records: &[]record{}}
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.pre {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		if _, dup := rec.attrs[a.Key]; !dup {
			rec.attrs[a.Key] = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	*h.records = append(*h.records, rec)
	h.mu.Unlock()
	return nil
}

func (h *recordHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.pre = append(append([]slog.Attr(nil), h.pre...), attrs...)
	return &c
}

func (h *recordHandler) WithGroup(string) slog.Handler { return h }

func (h *recordHandler) all() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]record(nil), *h.records...)
}

func (h *recordHandler) reset() {
	h.mu.Lock()
	*h.records = nil
	h.mu.Unlock()
}

// withEvent returns the records whose event attribute is event.
func (h *recordHandler) withEvent(event string) []record {
	var out []record
	for _, r := range h.all() {
		if r.attrs["event"] == event {
			out = append(out, r)
		}
	}
	return out
}

// expiringChain is a self-signed certificate for key that expires in d.
func expiringChain(key *rsa.PrivateKey, name string, d time.Duration) []*x509.Certificate {
	return []*x509.Certificate{testcerts.Cert(key, testcerts.Options{CommonName: name, NotAfter: time.Now().Add(d)})}
}

// TestCertificateExpiryAlarm: a credential whose certificate expires within 30 days logs a warning
// when it loads it (once per load: not on every token), and sets the days-to-expiry gauge; every
// kind of certificate: a file, Key Vault (exportable, and HSM), Managed HSM with its certificate
// elsewhere. A certificate with a year left logs no warning.
func TestCertificateExpiryAlarm(t *testing.T) {
	h := newHSMEnv(t)
	ctx := context.Background()
	logs := newRecordHandler()
	var m metrics.Memory
	so := *h.env.options()
	so.Logger = slog.New(logs)
	so.Metrics = &m
	const soon = 10 * 24 * time.Hour

	fileKey := testcerts.RSA(2048, 0)
	fileChain := expiringChain(fileKey, "expiring-file", soon)
	h.app.AddCertificate(fileChain[0])
	file, err := credential.NewCertificateCredential(tenantA, clientID, pemOf(t, fileKey, fileChain...), "", &so)
	require.NoError(t, err)

	kvKey := testcerts.RSA(2048, 1)
	h.importCert("expiring-kv", expiringChain(kvKey, "expiring-kv", soon), kvKey, emulator.CertificateOptions{})
	kv, err := credential.NewKeyVaultCertCredential(tenantA, clientID, h.certURL("expiring-kv"), h.miCred, &credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: so, Vault: h.vaultCO})
	require.NoError(t, err)

	hsmKey := testcerts.RSA(2048, 2)
	h.importCert("expiring-hsm", expiringChain(hsmKey, "expiring-hsm", soon), hsmKey, emulator.CertificateOptions{NonExportable: true, HSM: true})
	hsm, err := credential.NewHSMSignedAssertionCredential(tenantA, clientID, h.certURL("expiring-hsm"), h.miCred, &credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: so, Vault: h.vaultCO})
	require.NoError(t, err)

	mhsmKey, _ := h.newKeyVersion(3)
	mhsmChain := expiringChain(mhsmKey, "expiring-managed-hsm", soon)
	h.app.AddCertificate(mhsmChain[0])
	mhsm, err := credential.NewManagedHSMCredential(tenantA, clientID, h.keyURL(), credential.StaticCertificates(mhsmChain), h.miCred, &credential.ManagedHSMCredentialOptions{SignedAssertionCredentialOptions: so, Vault: h.vaultCO})
	require.NoError(t, err)

	// The file is loaded by the constructor: its warning is there already.
	require.Len(t, logs.withEvent("certificate_expires_soon"), 1)
	for _, c := range []struct {
		name string
		cred azcore.TokenCredential
	}{{"CertificateCredential", file}, {"KeyVaultCertCredential", kv}, {"HSMSignedAssertionCredential", hsm}, {"ManagedHSMCredential", mhsm}} {
		for range 3 {
			_, err := c.cred.GetToken(ctx, vaultScope)
			require.NoError(t, err, c.name)
		}
		var warnings []record
		for _, r := range logs.withEvent("certificate_expires_soon") {
			if r.attrs["credential"] == c.name {
				warnings = append(warnings, r)
			}
		}
		require.Len(t, warnings, 1, "%s: one warning per load", c.name)
		w := warnings[0]
		assert.Equal(t, slog.LevelWarn, w.level)
		assert.Contains(t, w.msg, "expires within 30 days")
		assert.Equal(t, "10", w.attrs["days_left"], c.name)
		assert.NotEmpty(t, w.attrs["not_after"])
		days, ok := m.Gauge(metrics.CertificateDaysToExpiry, metrics.Labels{Credential: c.name})
		require.True(t, ok, c.name)
		assert.InDelta(t, 10, days, 0.1, c.name)
	}

	// A new version that also expires soon: its load warns again.
	kvKey2 := testcerts.RSA(2048, 4)
	h.importCert("expiring-kv", expiringChain(kvKey2, "expiring-kv-2", 20*24*time.Hour), kvKey2, emulator.CertificateOptions{})
	_, err = kv.AssertionRejected(ctx, mustAssertion(t, kv, h.entra.TokenEndpoint(tenantA)), nil)
	require.NoError(t, err)
	var kvWarnings []record
	for _, r := range logs.withEvent("certificate_expires_soon") {
		if r.attrs["credential"] == "KeyVaultCertCredential" {
			kvWarnings = append(kvWarnings, r)
		}
	}
	require.Len(t, kvWarnings, 2)
	assert.Equal(t, "20", kvWarnings[1].attrs["days_left"])
	days, _ := m.Gauge(metrics.CertificateDaysToExpiry, metrics.Labels{Credential: "KeyVaultCertCredential"})
	assert.InDelta(t, 20, days, 0.1)

	// A certificate with a year left: no warning.
	logs.reset()
	longKey := testcerts.RSA(2048, 5)
	h.importCert("long-kv", testcerts.Chain(longKey, "long-kv"), longKey, emulator.CertificateOptions{})
	long, err := credential.NewKeyVaultCertCredential(tenantA, clientID, h.certURL("long-kv"), h.miCred, &credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: so, Vault: h.vaultCO})
	require.NoError(t, err)
	_, err = long.GetToken(ctx, vaultScope)
	require.NoError(t, err)
	assert.Empty(t, logs.withEvent("certificate_expires_soon"))
	assert.Len(t, logs.withEvent("certificate_loaded"), 1)
}

func mustAssertion(t *testing.T, p interface {
	Assertion(context.Context, string) (string, error)
}, audience string) string {
	t.Helper()
	a, err := p.Assertion(context.Background(), audience)
	require.NoError(t, err)
	return a
}
