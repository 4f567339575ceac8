package emulator

import (
	"fmt"

	"github.com/azcredkit/azcredkit/internal/emulator"
)

// ManagedIdentityOptions shape a managed identity added with [Emulator.AddManagedIdentity].
type ManagedIdentityOptions struct {
	// UserAssigned makes a user-assigned identity, which answers only requests that name it
	// (azidentity.ManagedIdentityCredentialOptions.ID: its ClientID, its ObjectID or its
	// ResourceID). Without it the identity is the app's system-assigned identity (at most one),
	// which answers requests that name none. Optional.
	UserAssigned bool
	// ResourceID is the ARM resource ID of a user-assigned identity
	// (/subscriptions/.../userAssignedIdentities/{name}), matched against
	// azidentity.ResourceID and sent in the xms_mirid claim. Optional: without it the tokens of
	// a user-assigned identity carry one ending in /userAssignedIdentities/{client ID}, those of
	// the system-assigned identity its App Service app's (.../Microsoft.Web/sites/{client ID}).
	ResourceID string
}

// AddManagedIdentity gives the workload under test a managed identity: clientID in tenantID
// (created if needed), served by the emulator's App Service managed identity endpoint (see
// [Emulator.ManagedIdentityEnv]). options may be nil. Its tokens are app tokens of tenantID
// (azp and appid clientID, appidacr "2", idtyp "app"): the vault accepts them when tenantID is
// the vault's tenant and GrantVaultAccess(tenantID, clientID) was called, so
// azidentity.ManagedIdentityCredential can be the vault credential of
// credential.NewKeyVaultCertCredential and credential.NewHSMSignedAssertionCredential.
//
// Its tokens live at most 4 minutes (real ones about a day): MSAL Go keeps managed identity tokens
// in one cache per process, keyed by identity and resource but not by endpoint, and does not
// cache a token with less than 5 minutes left. So a test binary running several emulators is
// never handed one emulator's token for another's vault; in exchange every request of an Azure
// SDK client asks the endpoint for a token (see Counts.ManagedIdentityTokens).
//
// A user-assigned identity can also stand in for an app's certificate: its token for
// api://AzureADTokenExchange is a federated client assertion of an app of the same tenant that
// trusts it (see ManagedIdentityObjectID and AddFederatedCredential).
func (e *Emulator) AddManagedIdentity(tenantID, clientID string, options *ManagedIdentityOptions) error {
	if err := checkID("tenant ID", tenantID); err != nil {
		return err
	}
	if err := checkID("client ID", clientID); err != nil {
		return err
	}
	var o ManagedIdentityOptions
	if options != nil {
		o = *options
	}
	if err := e.mi.Add(emulator.Identity{TenantID: tenantID, ClientID: clientID, ResourceID: o.ResourceID, UserAssigned: o.UserAssigned}); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	return nil
}

// ManagedIdentityEnv returns the environment of an App Service app with the managed identities
// added by AddManagedIdentity: IDENTITY_ENDPOINT ("https://127.0.0.1:{port}/msi/token") and
// IDENTITY_HEADER (a secret of this emulator that requests must carry). Set it before creating
// the credential and keep it while the credential is used: in a test, for k, v := range
// emu.ManagedIdentityEnv() { t.Setenv(k, v) }; for a process, in exec.Cmd.Env.
// azidentity.ManagedIdentityCredential then uses the App Service protocol (chosen when it is
// created; MSAL Go reads the two variables again at every token request, so a process talks to
// one emulator's managed identity endpoint at a time); give it ClientOptions so that it trusts
// the endpoint's TLS certificate.
func (e *Emulator) ManagedIdentityEnv() map[string]string {
	return map[string]string{
		"IDENTITY_ENDPOINT": e.mi.Endpoint(),
		"IDENTITY_HEADER":   e.mi.Header(),
	}
}
