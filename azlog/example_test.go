package azlog_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/azlog"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
)

// A service that already listens to azcore/log sees azcredkit's records there, in azidentity's
// words: here one token from Entra and one from the cache.
func ExampleNewHandler() {
	emu, err := emulator.Start(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer emu.Close()
	const tenantID, clientID = "72f988bf-0000-4000-8000-000000000001", "5b1a3e9c-0000-4000-8000-0000000000a1"
	cert, _ := emulator.NewTestCertificate("my-service")
	_ = emu.RegisterApp(tenantID, clientID, cert.Certificate)

	// The service's azcore/log listener (log.SetListener(listener) in main); this one prints the
	// events without the details in parentheses, which hold times.
	listener := func(e log.Event, msg string) {
		msg, _, _ = strings.Cut(msg, " (")
		fmt.Printf("[%s] %s\n", e, msg)
	}
	cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{
		ClientOptions: emu.ClientOptions(),
		Logger:        slog.New(azlog.NewHandler(listener, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// [Authentication] CertificateCredential.GetToken() acquired a token for scope "https://vault.azure.net/.default"
	// [Authentication] CertificateCredential.GetToken() acquired a token for scope "https://vault.azure.net/.default"
}
