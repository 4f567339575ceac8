package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/examples/internal/azurite"
)

const storageAppID = "5b1a3e9c-0000-4000-8000-0000000000a5"

// errSkipped marks a step that could not run here (not a failure).
var errSkipped = errors.New("skipped")

// stepAzurite has a real Azure SDK client (azblob) talk to a real Storage emulator that nobody
// here wrote (Azurite, with OAuth on), authenticated by our credentials.
func stepAzurite(ctx context.Context, w *world) error {
	srv, err := azurite.Run(ctx, nil)
	if errors.Is(err, azurite.ErrNotInstalled) {
		fmt.Printf("   Azurite is not installed here (%q installs it; the tests do it themselves)\n", azurite.InstallCommand)
		return errSkipped
	}
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("   Azurite (npm) listening at %s, OAuth on: it checks each token's issuer, audience and lifetime\n", srv.BlobURL)

	mi, err := vaultCredential(w)
	if err != nil {
		return err
	}
	vc, err := w.emu.CreateCertificate("storage-writer", &emulator.CertificateOptions{HSM: true})
	if err != nil {
		return err
	}
	if err := w.emu.RegisterApp(tenantA, storageAppID, vc.Certificate); err != nil {
		return err
	}
	o := &credential.HSMSignedAssertionCredentialOptions{Vault: w.emu.KeyVaultClientOptions()}
	o.ClientOptions = w.emu.ClientOptions()
	cred, err := credential.NewHSMSignedAssertionCredential(tenantA, storageAppID, vc.URL, mi, o)
	if err != nil {
		return err
	}
	// Azurite's TLS certificate is signed by the emulators' CA (one per process; examples/internal/azurite
	// writes it), so the emulator's HTTP client trusts it too.
	client, err := azblob.NewClient(srv.BlobURL, cred, &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: w.emu.HTTPClient()}})
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := client.CreateContainer(ctx, "tour", nil); err != nil {
		return err
	}
	for i := range 3 {
		if _, err := client.UploadBuffer(ctx, "tour", fmt.Sprintf("report-%d.txt", i), []byte(strings.Repeat("azcredkit ", 10)), nil); err != nil {
			return err
		}
	}
	var names []string
	pager := client.NewListBlobsFlatPager("tour", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	fmt.Printf("   azblob with HSMSignedAssertionCredential: created container, uploaded and listed %v in %v (Key Vault signatures: %d)\n",
		names, time.Since(start).Round(time.Millisecond), cred.SignCount())
	if len(names) != 3 {
		return fmt.Errorf("listed %d blobs, want 3", len(names))
	}
	return nil
}
