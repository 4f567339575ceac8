package emulator

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/keyvault"
)

// Options configure an [Emulator]. The zero value is ready to use.
type Options struct {
	// VaultTenant is the tenant whose tokens the vault accepts; "" means the tenant of the first
	// GrantVaultAccess call. Optional.
	VaultTenant string
	// TokenLifetime is the lifetime of the access tokens Entra ID issues (whole seconds, at least
	// 1 second); 0 means 1 hour. On-Behalf-Of tokens live at least 10 minutes and managed
	// identity tokens at most 4 minutes whatever it says (see AddManagedIdentity). Optional.
	TokenLifetime time.Duration
	// EntraPort, VaultPort and ManagedIdentityPort are the 127.0.0.1 ports to listen on; 0 picks
	// a free port. Optional.
	EntraPort, VaultPort, ManagedIdentityPort int
	// FederatedCredentialPropagation delays every federated identity credential added with
	// AddFederatedCredential: the token endpoint sees it only that long after it was added and
	// answers AADSTS70021 meanwhile, as Entra does while a new record propagates (for seconds to
	// minutes), to test that a client retries. 0 makes records visible at once. Optional.
	FederatedCredentialPropagation time.Duration
}

func (o *Options) validate() error {
	if o.VaultTenant != "" {
		if err := checkID("VaultTenant", o.VaultTenant); err != nil {
			return err
		}
	}
	if o.FederatedCredentialPropagation < 0 {
		return fmt.Errorf("emulator: FederatedCredentialPropagation %v is negative: use 0 for records visible at once", o.FederatedCredentialPropagation)
	}
	if o.TokenLifetime < 0 {
		return fmt.Errorf("emulator: TokenLifetime %v is negative: use 0 for the default of 1 hour", o.TokenLifetime)
	}
	for _, p := range []struct {
		name string
		port int
	}{{"EntraPort", o.EntraPort}, {"VaultPort", o.VaultPort}, {"ManagedIdentityPort", o.ManagedIdentityPort}} {
		if p.port < 0 || p.port > 65535 {
			return fmt.Errorf("emulator: %s %d is not a TCP port (0 to 65535; 0 picks a free one)", p.name, p.port)
		}
	}
	return nil
}

// Emulator is a running Microsoft Entra ID, Key Vault and managed identity endpoint, made by
// [Start]. Its methods are safe for concurrent use. Emulators are independent of each other.
type Emulator struct {
	entra *emulator.Entra
	vault *emulator.Vault
	mi    *emulator.ManagedIdentity

	closeOnce sync.Once

	mu          sync.Mutex
	apps        map[string]*emulator.App // by client ID
	granted     []string                 // client IDs with vault access
	certs       map[string]*vaultCert    // vault certificates by lower-case name
	entraErrors []*pendingEntraError
	actions     map[string]*emulator.ActionsOIDC // GitHub Actions token endpoints by subject
	closed      bool
}

// Start runs an Entra ID and a Key Vault emulator (and a managed identity endpoint) over HTTPS on
// 127.0.0.1. options may be nil. Stop it with [Emulator.Close], for example with
// t.Cleanup(emu.Close).
//
// The emulator has no tenant, app or certificate until the test adds them; its vault gives
// access to no one until [Emulator.GrantVaultAccess].
func Start(options *Options) (*Emulator, error) {
	var o Options
	if options != nil {
		o = *options
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	var lns []net.Listener
	for _, port := range []int{o.EntraPort, o.VaultPort, o.ManagedIdentityPort} {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, fmt.Errorf("emulator: listening on 127.0.0.1:%d: %w", port, err)
		}
		lns = append(lns, ln)
	}
	e := &Emulator{apps: map[string]*emulator.App{}, certs: map[string]*vaultCert{}}
	err := safely(func() {
		e.entra = emulator.NewEntraOn(lns[0])
		lns[0] = nil
		if o.TokenLifetime > 0 {
			e.entra.SetTokenLifetime(o.TokenLifetime)
		}
		e.entra.OnToken(e.entraErrorHook)
		e.entra.SetFederatedCredentialPropagation(o.FederatedCredentialPropagation)
		e.vault = emulator.NewVaultOn(e.entra, emulator.VaultOptions{Tenant: o.VaultTenant}, lns[1])
		lns[1] = nil
		e.vault.AllowOnly() // nobody until GrantVaultAccess
		e.mi = emulator.NewManagedIdentityOn(e.entra, lns[2])
		lns[2] = nil
	})
	if err != nil {
		for _, l := range lns {
			if l != nil {
				_ = l.Close()
			}
		}
		e.Close()
		return nil, fmt.Errorf("emulator: starting: %w", err)
	}
	return e, nil
}

// safely runs fn and turns a panic of the internal emulators (misuse they do not expect) into an
// error.
func safely(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	fn()
	return nil
}

// Close stops both servers (and the managed identity and GitHub Actions endpoints) and waits for
// requests in progress to end; calling it again does nothing. Clients get connection errors
// afterwards.
func (e *Emulator) Close() {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		actions := e.actions
		e.mu.Unlock()
		for _, a := range actions {
			a.Close()
		}
		if e.mi != nil {
			e.mi.Close()
		}
		if e.vault != nil {
			e.vault.Close()
		}
		if e.entra != nil {
			e.entra.Close()
		}
	})
}

// ClientOptions points any Azure SDK client, azidentity credential or azcredkit credential at the
// emulator: Cloud.ActiveDirectoryAuthorityHost and a Transport that trusts its TLS certificate
// and also answers instance discovery (DisableInstanceDiscovery is then optional). Each call
// returns a new value; change it freely (Retry, Logging...).
func (e *Emulator) ClientOptions() azcore.ClientOptions { return e.entra.ClientOptions() }

// KeyVaultClientOptions is ClientOptions for the Key Vault pipelines of the azcredkit
// credentials and keyvault.NewSigner, with DisableChallengeResourceVerification set: the
// emulated vault is not on *.vault.azure.net. (For azsecrets, azkeys and azcertificates clients,
// set their DisableChallengeResourceVerification field.)
func (e *Emulator) KeyVaultClientOptions() keyvault.ClientOptions {
	return keyvault.ClientOptions{ClientOptions: e.ClientOptions(), DisableChallengeResourceVerification: true}
}

// AuthorityHost is Entra ID's URL, "https://127.0.0.1:{port}/": the value for
// AZURE_AUTHORITY_HOST and cloud.Configuration.ActiveDirectoryAuthorityHost.
func (e *Emulator) AuthorityHost() string { return e.entra.AuthorityHost() }

// VaultURL is the Key Vault's URL, "https://127.0.0.1:{port}".
func (e *Emulator) VaultURL() string { return e.vault.URL() }

// HTTPClient returns an HTTP client that trusts the emulator's TLS certificate, for requests of
// your own (like httptest.Server.Client). It also routes MSAL's instance discovery to the
// emulator; every other request goes where it is addressed.
func (e *Emulator) HTTPClient() *http.Client { return emulator.HTTPClient() }

// CertPool returns a new pool holding the CA that signs the TLS certificates of every emulator in
// this process.
func (e *Emulator) CertPool() *x509.CertPool { return emulator.CertPool() }

// CACertificatePEM returns that CA's certificate in PEM: write it to a file for a process in
// another language (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS).
func (e *Emulator) CACertificatePEM() []byte { return emulator.CACertificatePEM() }

// VerifyToken checks that token was issued by this emulator's Entra ID or managed identity
// endpoint (RS256 signature with its key, exp and nbf) and returns its claims, for a test to
// look at aud, tid, oid, azp, scp or roles. It does not check aud, iss or tid.
func (e *Emulator) VerifyToken(token string) (map[string]any, error) {
	claims, err := e.entra.Verify(token)
	if err != nil {
		return nil, fmt.Errorf("emulator: the token is not a valid token of this emulator: %w", err)
	}
	return claims, nil
}

// checkID rejects what cannot be a tenant or client ID in a URL path.
func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("emulator: the %s is empty", what)
	}
	if len(id) > 256 {
		return fmt.Errorf("emulator: the %s is %d bytes long: use a GUID or a domain name", what, len(id))
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f || r == '/' || r == '?' || r == '#' || r == '%' || r == '\\' {
			return fmt.Errorf("emulator: the %s %q has a character that cannot be in a URL path: use a GUID or a domain name", what, id)
		}
	}
	return nil
}

var errNilCertificate = errors.New("emulator: a certificate is nil")
