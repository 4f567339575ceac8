package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
)

func inject(t *testing.T, emu *emulator.Emulator, f emulator.Fault) (stop func()) {
	t.Helper()
	stop, err := emu.Inject(f)
	if err != nil {
		t.Fatal(err)
	}
	return stop
}

func TestFaultsEntraID(t *testing.T) {
	emu := start(t, nil)
	cred := certCredential(t, emu, tenantA, appID)

	t.Run("429 with Retry-After is honoured by azcore's retry", func(t *testing.T) {
		emu.ResetCounts()
		inject(t, emu, emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})
		begin := time.Now()
		if _, err := getToken(t, cred, vaultScope); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(begin); d < time.Second {
			t.Errorf("the retry came after %v, before Retry-After", d)
		}
		if n := emu.Counts(); n.TokenRequests != 2 || n.FailedTokenRequests != 1 {
			t.Errorf("want 2 token requests, 1 failed: %+v", n)
		}
	})
	t.Run("503 then a reset connection are retried", func(t *testing.T) {
		emu.ResetCounts()
		inject(t, emu, emulator.Fault{Status: http.StatusServiceUnavailable})
		inject(t, emu, emulator.Fault{Reset: true})
		if _, err := getToken(t, cred, storageScope); err != nil {
			t.Fatal(err)
		}
		if n := emu.Counts(); n.TokenRequests != 3 {
			t.Errorf("want 3 token requests: %+v", n)
		}
	})
	t.Run("latency beyond the caller's deadline", func(t *testing.T) {
		stop := inject(t, emu, emulator.Fault{Delay: 20 * time.Second, Count: -1})
		defer stop()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		begin := time.Now()
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want context.DeadlineExceeded, got %v", err)
		}
		if d := time.Since(begin); d > 10*time.Second {
			t.Errorf("GetToken returned after %v, long after its deadline", d)
		}
	})
	t.Run("a chosen AADSTS error", func(t *testing.T) {
		emu.InjectEntraError(1, emulator.EntraError{Error: "invalid_client", Code: 7000274, Description: "The certificate is revoked (test)."})
		_, err := getToken(t, cred, "https://eventhubs.azure.net/.default")
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) || afe.RawResponse.StatusCode != http.StatusUnauthorized || !strings.Contains(err.Error(), "AADSTS7000274") {
			t.Fatalf("want a 401 AuthenticationFailedError with AADSTS7000274, got %v", err)
		}
		if _, err := getToken(t, cred, "https://eventhubs.azure.net/.default"); err != nil {
			t.Fatalf("the next request: %v", err)
		}
	})
	t.Run("a stopped AADSTS error no longer applies", func(t *testing.T) {
		stop := emu.InjectEntraError(-1, emulator.EntraError{Code: 50058})
		stop()
		if _, err := getToken(t, cred, "https://database.windows.net/.default"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("signing keys outage", func(t *testing.T) {
		stop := inject(t, emu, emulator.Fault{Service: emulator.EntraIDSigningKeys, Status: http.StatusServiceUnavailable, Count: -1})
		u := emu.AuthorityHost() + tenantA + "/v2.0/.well-known/openid-configuration"
		status := func() int {
			resp, err := emu.HTTPClient().Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if s := status(); s != http.StatusServiceUnavailable {
			t.Errorf("OpenID configuration during the outage: HTTP %d", s)
		}
		stop()
		if s := status(); s != http.StatusOK {
			t.Errorf("OpenID configuration after the outage: HTTP %d", s)
		}
	})
}

func TestFaultsKeyVault(t *testing.T) {
	emu := start(t, nil)
	reader := vaultReader(t, emu)

	t.Run("503 with Retry-After on secrets", func(t *testing.T) {
		if _, err := emu.SetSecret("db-password", "hunter2"); err != nil {
			t.Fatal(err)
		}
		client, err := azsecrets.NewClient(emu.VaultURL(), reader, &azsecrets.ClientOptions{ClientOptions: fastRetries(emu), DisableChallengeResourceVerification: true})
		if err != nil {
			t.Fatal(err)
		}
		emu.ResetCounts()
		inject(t, emu, emulator.Fault{Service: emulator.KeyVaultSecrets, Status: http.StatusServiceUnavailable, RetryAfter: time.Second})
		begin := time.Now()
		resp, err := client.GetSecret(ctxFor(t), "db-password", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *resp.Value != "hunter2" || time.Since(begin) < time.Second {
			t.Errorf("after the fault: value ok %v, after %v", *resp.Value == "hunter2", time.Since(begin))
		}
		if n := emu.Counts(); n.VaultRequests != 3 || n.VaultChallenges != 1 || n.SecretReads != 1 {
			t.Errorf("want 3 vault requests (faulted, challenged, read): %+v", n)
		}
	})
	t.Run("key endpoint outage stops the HSM credential until it ends", func(t *testing.T) {
		vc, err := emu.CreateCertificate("hsm", &emulator.CertificateOptions{HSM: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := emu.RegisterApp(tenantA, appID, vc.Certificate); err != nil {
			t.Fatal(err)
		}
		o := &credential.HSMSignedAssertionCredentialOptions{Vault: emu.KeyVaultClientOptions()}
		o.ClientOptions = fastRetries(emu)
		o.Vault.Retry = policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond}
		cred, err := credential.NewHSMSignedAssertionCredential(tenantA, appID, vc.URL, reader, o)
		if err != nil {
			t.Fatal(err)
		}
		stop := inject(t, emu, emulator.Fault{Service: emulator.KeyVaultKeys, Status: http.StatusServiceUnavailable, Count: -1})
		if _, err := getToken(t, cred, vaultScope); err == nil {
			t.Fatal("GetToken succeeded while keys/sign was down")
		}
		stop()
		if _, err := getToken(t, cred, vaultScope); err != nil {
			t.Fatalf("after the outage: %v", err)
		}
	})
}

func TestFaultsManagedIdentity(t *testing.T) {
	emu := start(t, nil)
	if err := emu.AddManagedIdentity(tenantA, miID, nil); err != nil {
		t.Fatal(err)
	}
	setManagedIdentityEnv(t, emu)
	o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: fastRetries(emu)}
	mi, err := azidentity.NewManagedIdentityCredential(o)
	if err != nil {
		t.Fatal(err)
	}
	inject(t, emu, emulator.Fault{Service: emulator.ManagedIdentity, Status: http.StatusInternalServerError})
	if _, err := getToken(t, mi, vaultScope); err != nil {
		t.Fatal(err)
	}
	if n := emu.Counts(); n.ManagedIdentityTokens != 2 {
		t.Errorf("want 2 managed identity requests (one faulted): %+v", n)
	}
}

func TestInjectRejectsFaultsThatMakeNoSense(t *testing.T) {
	emu := start(t, nil)
	for name, f := range map[string]emulator.Fault{
		"nothing":         {},
		"a 200":           {Status: http.StatusOK},
		"a 302":           {Status: http.StatusFound},
		"an unknown one":  {Service: emulator.Service(99), Status: 500},
		"negative delay":  {Delay: -time.Second, Status: 500},
		"negative R-A":    {RetryAfter: -time.Second, Status: 429},
		"status too high": {Status: 600},
	} {
		if stop, err := emu.Inject(f); err == nil || stop != nil {
			t.Errorf("%s: Inject(%+v) = %v, want an error", name, f, err)
		}
	}
}
