// Package soak_test runs every credential under load while the emulators inject faults, checks
// OBO isolation with 1,000 users, and checks that no token, assertion, secret or key material
// reaches a log line or an error message.
package soak_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/testcerts"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/keyvault"
	"github.com/azcredkit/azcredkit/obo"
)

func TestMain(m *testing.M) {
	setAzcoreListener()
	testguard.VerifyTestMain(m)
}

const (
	tenantA   = "aaaaaaaa-0000-4000-8000-00000000000a"
	tenantB   = "bbbbbbbb-0000-4000-8000-00000000000b"
	appID     = "a0a0a0a0-0000-4000-8000-0000000000a0"
	kvAppID   = "a0a0a0a0-0000-4000-8000-0000000000a1"
	hsmAppID  = "a0a0a0a0-0000-4000-8000-0000000000a2"
	webAppID  = "a0a0a0a0-0000-4000-8000-0000000000a3"
	miID      = "a0a0a0a0-0000-4000-8000-0000000000f0"
	miSecret  = "soak-managed-identity-secret-value"
	webSecret = "soak-web-app-secret-value"
)

// world is the emulators plus one of each credential.
type world struct {
	entra    *emulator.Entra
	vault    *emulator.Vault
	creds    map[string]azcore.TokenCredential
	app      *obo.App
	secrets  []string // every secret value handed to the system, to look for in logs and errors
	keyParts [][]byte // private key parts, to look for in any base64 run
	logs     *capture
}

// capture collects log output and error strings.
type capture struct {
	mu sync.Mutex
	sb strings.Builder
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sb.Write(p)
}

func (c *capture) add(s string) { _, _ = c.Write([]byte(s + "\n")) }

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sb.String()
}

func newWorld(t testing.TB, lifetime time.Duration) *world {
	t.Helper()
	w := &world{entra: emulator.NewEntra(), creds: map[string]azcore.TokenCredential{}, logs: &capture{}}
	t.Cleanup(w.entra.Close)
	w.entra.AddTenant(tenantA)
	w.entra.AddTenant(tenantB)
	w.entra.SetTokenLifetime(lifetime)
	w.vault = emulator.NewVault(w.entra, emulator.VaultOptions{Tenant: tenantA})
	t.Cleanup(w.vault.Close)

	co := w.entra.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	co.Logging.IncludeBody = true // what a user debugging might turn on: bodies must still not leak
	logger := newLogger(w.logs)

	mi := w.entra.RegisterApp(tenantA, miID)
	mi.AddSecret(miSecret)
	miCred, err := azidentity.NewClientSecretCredential(tenantA, miID, miSecret, &azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	require.NoError(t, err)
	w.secrets = append(w.secrets, miSecret, webSecret)
	vo := keyvault.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true}
	base := credential.SignedAssertionCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true, Logger: logger, AdditionallyAllowedTenants: []string{tenantB}}

	// SignedAssertionCredential with a local key.
	key := testcerts.RSA(2048, 0)
	chain := testcerts.Chain(key, "soak-local")
	sa := w.entra.RegisterApp(tenantA, appID)
	sa.AddServicePrincipal(tenantB)
	sa.AddCertificate(chain[0])
	signer, err := assertion.NewLocalSigner(key, "")
	require.NoError(t, err)
	sac, err := credential.NewSignedAssertionCredential(tenantA, appID, chain, signer, &base)
	require.NoError(t, err)
	w.creds["signed-assertion"] = sac

	// KeyVaultCertCredential, cross-tenant.
	kvKey := testcerts.RSA(2048, 1)
	kvChain := testcerts.Chain(kvKey, "soak-kv")
	kvApp := w.entra.RegisterApp(tenantA, kvAppID)
	kvApp.AddServicePrincipal(tenantB)
	kvApp.AddCertificate(kvChain[0])
	w.vault.ImportCertificate("kv-cert", kvChain, kvKey, emulator.CertificateOptions{})
	kvc, err := credential.NewKeyVaultCertCredential(tenantB, kvAppID, w.vault.URL()+"/certificates/kv-cert", miCred,
		&credential.KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: base, Vault: vo, RotationCheckInterval: 5 * time.Second})
	require.NoError(t, err)
	w.creds["keyvault-cert"] = kvc

	// HSMSignedAssertionCredential.
	hsmKey := testcerts.RSA(2048, 2)
	hsmChain := testcerts.Chain(hsmKey, "soak-hsm")
	w.entra.RegisterApp(tenantA, hsmAppID).AddCertificate(hsmChain[0])
	w.vault.ImportCertificate("hsm-cert", hsmChain, hsmKey, emulator.CertificateOptions{NonExportable: true, HSM: true})
	hsm, err := credential.NewHSMSignedAssertionCredential(tenantA, hsmAppID, w.vault.URL()+"/certificates/hsm-cert", miCred,
		&credential.HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: base, Vault: vo})
	require.NoError(t, err)
	w.creds["hsm"] = hsm

	// The Easy Auth web app, with a secret (the certificate paths are covered above).
	web := w.entra.RegisterApp(tenantA, webAppID)
	web.AddSecret(webSecret)
	w.app, err = obo.NewAppWithSecret(tenantA, webAppID, webSecret, &obo.AppOptions{ClientOptions: co, DisableInstanceDiscovery: true, TrustEasyAuthHeaders: true, Logger: logger})
	require.NoError(t, err)

	w.secrets = append(w.secrets, keySecrets(key, kvKey, hsmKey)...)
	w.keyParts = keyParts(key, kvKey, hsmKey)
	// The secret values as Key Vault serves them (the PFX holds the key): read them once now.
	sc, err := azsecrets.NewClient(w.vault.URL(), miCred, &azsecrets.ClientOptions{ClientOptions: co, DisableChallengeResourceVerification: true})
	require.NoError(t, err)
	for _, name := range []string{"kv-cert", "hsm-cert"} {
		r, err := sc.GetSecret(context.Background(), name, "", nil)
		require.NoError(t, err)
		w.secrets = append(w.secrets, *r.Value)
	}
	return w
}

// userCreds returns OBO credentials for n users (user tokens valid for an hour).
func (w *world) userCreds(t testing.TB, n int) ([]*obo.EasyAuthOBOCredential, []string) {
	t.Helper()
	creds := make([]*obo.EasyAuthOBOCredential, n)
	oids := make([]string, n)
	for i := range n {
		oids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		w.entra.AddUser(tenantA, emulator.User{OID: oids[i], UPN: fmt.Sprintf("u%d@contoso.example", i)})
		tok := w.entra.UserToken(tenantA, oids[i], webAppID, emulator.UserTokenOptions{Lifetime: time.Hour})
		w.secrets = append(w.secrets, tok)
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set(obo.HeaderAccessToken, tok)
		c, err := w.app.CredentialFromRequest(r)
		require.NoError(t, err)
		creds[i] = c
	}
	return creds, oids
}

// soakDuration is 30 s, 5 s with -short, or AZCREDKIT_SOAK (a Go duration).
func soakDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("AZCREDKIT_SOAK")); err == nil {
		return d
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return 30 * time.Second
}

type slot struct {
	mu       sync.Mutex
	last     azcore.AccessToken
	lifetime time.Duration
}

// usable reports whether s holds a token with more than the cache's margin (a tenth of the
// lifetime, at most 30 s) left: a call must not fail then.
func (s *slot) usable(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	margin := min(30*time.Second, s.lifetime/10)
	return !s.last.ExpiresOn.IsZero() && now.Before(s.last.ExpiresOn.Add(-margin))
}

// TestSoak: 64 goroutines call GetToken on every credential (and 8 users' OBO credentials) while
// Entra and Key Vault throttle, fail, reset connections and stall, and tokens expire every 3 s.
func TestSoak(t *testing.T) {
	const lifetime = 3 * time.Second
	w := newWorld(t, lifetime)
	w.recordAssertions()
	listenAzcoreLog(t, w.logs)
	users, _ := w.userCreds(t, 8)
	type target struct {
		name  string
		cred  azcore.TokenCredential
		opts  policy.TokenRequestOptions
		state *slot
	}
	var targets []target
	scopes := []string{"https://vault.azure.net/.default", "https://storage.azure.com/.default"}
	for _, name := range []string{"signed-assertion", "keyvault-cert", "hsm"} {
		for _, s := range scopes {
			targets = append(targets, target{name, w.creds[name], policy.TokenRequestOptions{Scopes: []string{s}}, &slot{lifetime: lifetime}})
		}
	}
	targets = append(targets, target{"signed-assertion tenant B", w.creds["signed-assertion"], policy.TokenRequestOptions{Scopes: scopes[:1], TenantID: tenantB}, &slot{lifetime: lifetime}})
	for i, u := range users {
		targets = append(targets, target{fmt.Sprintf("obo user %d", i), u, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/user_impersonation"}}, &slot{lifetime: lifetime}})
	}

	duration := soakDuration()
	stop := time.Now().Add(duration)
	var calls, failed, failedWhileValid, expiredHandedOut atomic.Int64
	var faults atomic.Int64
	var faultRequests atomic.Int64
	var wg sync.WaitGroup
	// Fault injector: every 300 ms, one fault into Entra or Key Vault.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for time.Now().Before(stop) {
			time.Sleep(300 * time.Millisecond)
			f := emulator.Fault{Count: 1 + rng.IntN(3)}
			switch rng.IntN(6) {
			case 0:
				f.Status, f.RetryAfter = http.StatusTooManyRequests, time.Duration(rng.IntN(2))*time.Second
			case 1:
				f.Status = http.StatusInternalServerError
			case 2:
				f.Status, f.RetryAfter = http.StatusServiceUnavailable, time.Second
			case 3:
				f.Reset = true
			case 4:
				f.Delay = 1500 * time.Millisecond // beyond some callers' deadline
			case 5:
				f.Status = http.StatusBadGateway
			}
			if rng.IntN(2) == 0 {
				w.entra.Inject(f)
			} else {
				w.vault.Inject(f)
			}
			faults.Add(1)
			faultRequests.Add(int64(f.Count))
		}
	}()
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for time.Now().Before(stop) {
				tg := targets[rng.IntN(len(targets))]
				validBefore := tg.state.usable(time.Now())
				timeout := 5 * time.Second
				if g%8 == 0 {
					timeout = time.Second // impatient callers
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				start := time.Now()
				tok, err := tg.cred.GetToken(ctx, tg.opts)
				cancel()
				calls.Add(1)
				now := time.Now()
				if err != nil {
					if failed.Add(1) <= 5 {
						t.Logf("%s: %v", tg.name, err)
					}
					w.logs.add(err.Error())
					if validBefore && tg.state.usable(now) {
						failedWhileValid.Add(1)
						t.Errorf("%s: GetToken failed while a valid token existed: %v", tg.name, err)
					}
					continue
				}
				// Expired when the call began: the cache handed out a token it knew to be dead. (A
				// token that expires while a loaded machine has not yet run this goroutine again
				// after GetToken returned is not the cache's doing: compare with start, not now.)
				if !start.Before(tok.ExpiresOn) {
					expiredHandedOut.Add(1)
					t.Errorf("%s: GetToken called at %s returned a token that expired at %s", tg.name, start.Format(time.RFC3339Nano), tok.ExpiresOn.Format(time.RFC3339Nano))
				}
				w.sawToken(tok.Token)
				tg.state.mu.Lock()
				if tok.ExpiresOn.After(tg.state.last.ExpiresOn) {
					tg.state.last = tok
				}
				tg.state.mu.Unlock()
				time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()

	tokenReqs := w.entra.Count("token")
	// Each target needs a token about every half lifetime; retries add at most one request per
	// injected faulty answer.
	refreshes := int64(len(targets)) * (int64(duration/(lifetime/2)) + 2)
	t.Logf("soak %v: %d GetToken calls, %d failed (%d while a valid token existed), %d expired tokens handed out; %d faults injected (%d faulty answers); Entra token requests %d (bound %d); Key Vault: secret reads %d, certificate reads %d, signs %d",
		duration, calls.Load(), failed.Load(), failedWhileValid.Load(), expiredHandedOut.Load(), faults.Load(), faultRequests.Load(),
		tokenReqs, refreshes+faultRequests.Load(), w.vault.Count("secrets/get"), w.vault.Count("certificates/get"), w.vault.Count("keys/sign"))
	require.Zero(t, failedWhileValid.Load())
	require.Zero(t, expiredHandedOut.Load())
	require.LessOrEqual(t, tokenReqs, refreshes+faultRequests.Load())
	require.LessOrEqual(t, w.vault.Count("secrets/get"), int64(duration/(5*time.Second))+2+faultRequests.Load())
	require.LessOrEqual(t, w.vault.Count("keys/sign"), 1+faultRequests.Load(), "one assertion lifetime: one signature (plus retried faults)")
	require.Positive(t, calls.Load())
	checkNoSecrets(t, w)
}
