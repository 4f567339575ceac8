// Command tour shows every azcredkit credential at work against embedded, in-process emulators
// of Microsoft Entra ID, Azure Key Vault and a managed identity endpoint (package emulator, HTTPS on
// 127.0.0.1), used as a service's tests would use them: no Azure account needed.
//
//	go run ./examples/tour
//
// Each step prints what it shows, the claims of the token that matter (tenant, appid/azp, appidacr/azpacr, oid,
// expiry), how many calls reached the services, and how long it took. The tour exits non-zero if
// any step fails.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/azcredkit/azcredkit/emulator"
)

const (
	tenantA  = "72f988bf-0000-4000-8000-00000000000a"
	tenantB  = "3c5f1c2d-0000-4000-8000-00000000000b"
	appID    = "5b1a3e9c-0000-4000-8000-0000000000a1"
	vaultRes = "https://vault.azure.net/.default"
)

// world holds the emulators shared by the steps.
type world struct {
	emu *emulator.Emulator
}

type step struct {
	title string
	run   func(ctx context.Context, w *world) error
}

func main() {
	os.Exit(run())
}

func run() int {
	fmt.Println("azcredkit tour: every credential against local emulators of Microsoft Entra ID and Key Vault")
	fmt.Println()
	emu, err := emulator.Start(&emulator.Options{VaultTenant: tenantA})
	if err != nil {
		fmt.Printf("starting the emulators: %v\n", err)
		return 1
	}
	defer emu.Close()
	w := &world{emu: emu}
	// The workload's managed identity in tenant A, served by the emulator's App Service managed
	// identity endpoint: azidentity.ManagedIdentityCredential reads IDENTITY_ENDPOINT and
	// IDENTITY_HEADER, as on App Service.
	if err := emu.AddManagedIdentity(tenantA, miClientID, nil); err != nil {
		fmt.Printf("adding the managed identity: %v\n", err)
		return 1
	}
	emu.GrantVaultAccess(tenantA, miClientID)
	for k, v := range emu.ManagedIdentityEnv() {
		if err := os.Setenv(k, v); err != nil {
			fmt.Printf("setting %s: %v\n", k, err)
			return 1
		}
	}
	fmt.Printf("Entra ID emulator: %s (tenant A %s, tenant B %s)\n", emu.AuthorityHost(), tenantA, tenantB)
	fmt.Printf("Key Vault emulator: %s (tenant A)\n", emu.VaultURL())
	fmt.Printf("Managed identity endpoint: %s (identity %s of tenant A)\n\n", emu.ManagedIdentityEnv()["IDENTITY_ENDPOINT"], miClientID)

	steps := []step{
		{"SignedAssertionCredential: a certificate and key on disk, no client secret", stepSignedAssertion},
		{"KeyVaultCertCredential: certificate in Key Vault, read by tenant A's identity, token in customer tenant B, rotation", stepKeyVaultCert},
		{"HSMSignedAssertionCredential: the key never leaves the vault; Key Vault signs", stepHSM},
		{"EasyAuthOBOCredential: a web app behind Easy Auth calls Azure as each signed-in user", stepOBO},
		{"FederatedCredential: no certificate at all (a managed identity, a Kubernetes token file, GitHub Actions)", stepFederated},
		{"A real Azure SDK client against a real server: azblob and Azurite, with an HSM-signed assertion", stepAzurite},
		{"Shared OBO cache: two instances of a web app, one Redis, one exchange per user for the fleet", stepRedis},
	}
	failed, skipped := 0, 0
	for i, s := range steps {
		fmt.Printf("== Step %d/%d: %s\n", i+1, len(steps), s.title)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := s.run(ctx, w)
		cancel()
		if errors.Is(err, errSkipped) {
			skipped++
			fmt.Printf("   skipped\n\n")
			continue
		}
		if err != nil {
			failed++
			fmt.Printf("   FAILED after %v: %v\n\n", time.Since(start).Round(time.Millisecond), err)
			continue
		}
		fmt.Printf("   ok (%v)\n\n", time.Since(start).Round(time.Millisecond))
	}
	if failed > 0 {
		fmt.Printf("%d of %d steps failed\n", failed, len(steps))
		return 1
	}
	fmt.Printf("all %d steps passed", len(steps)-skipped)
	if skipped > 0 {
		fmt.Printf(" (%d skipped)", skipped)
	}
	fmt.Println()
	return 0
}

// concurrently runs fn n times at once and returns the first error.
func concurrently(n int, fn func() error) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// describe prints the claims of an access token that a person checking access cares about.
func describe(w *world, token string, expiresOn time.Time) error {
	claims, err := w.emu.VerifyToken(token)
	if err != nil {
		return fmt.Errorf("the emulator did not verify the token: %w", err)
	}
	// v1 tokens (Azure's resources) name the app appid/appidacr, v2 tokens azp/azpacr.
	app, acr := "azp", "azpacr"
	if _, v1 := claims["appid"]; v1 {
		app, acr = "appid", "appidacr"
	}
	fmt.Printf("   token: aud=%v tid=%v %s=%v %s=%v oid=%v expires in %v\n",
		claims["aud"], claims["tid"], app, claims[app], acr, claims[acr], claims["oid"],
		time.Until(expiresOn).Round(time.Second))
	return nil
}
