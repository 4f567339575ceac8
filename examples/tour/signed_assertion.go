package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
)

func stepSignedAssertion(ctx context.Context, w *world) error {
	cert, err := emulator.NewTestCertificate("tour-ci-deployer")
	if err != nil {
		return err
	}
	if err := w.emu.RegisterApp(tenantA, appID, cert.Certificate); err != nil {
		return err
	}
	fmt.Printf("   registered app %s in tenant %s with certificate %s (thumbprint %s)\n", appID, tenantA, cert.Certificate.Subject.CommonName, assertion.Thumbprint(cert.Certificate))

	signer, err := assertion.NewLocalSigner(cert.Key, assertion.PS256)
	if err != nil {
		return err
	}
	// Instance discovery stays on: the emulator's ClientOptions answer it.
	o := &credential.SignedAssertionCredentialOptions{ClientOptions: w.emu.ClientOptions()}
	cred, err := credential.NewSignedAssertionCredential(tenantA, appID, []*x509.Certificate{cert.Certificate}, signer, o)
	if err != nil {
		return err
	}
	w.emu.ResetCounts()
	start := time.Now()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
	if err != nil {
		return err
	}
	fmt.Printf("   first token in %v (PS256 client assertion with x5t#S256, verified by the emulator with the registered certificate)\n", time.Since(start).Round(time.Millisecond))
	if err := describe(w, tok.Token, tok.ExpiresOn); err != nil {
		return err
	}

	// 1,000 concurrent callers: all served from the cache.
	start = time.Now()
	if err := concurrently(1000, func() error {
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultRes}})
		return err
	}); err != nil {
		return err
	}
	n := w.emu.Counts().TokenRequests
	fmt.Printf("   1,000 concurrent GetToken calls in %v; token requests to Entra so far: %d\n", time.Since(start).Round(time.Microsecond), n)
	if n != 1 {
		return fmt.Errorf("expected 1 token request, Entra saw %d", n)
	}
	return nil
}
