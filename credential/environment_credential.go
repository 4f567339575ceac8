package credential

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/keyvault"
)

const credNameEnvironment = "EnvironmentCredential"

// The environment variables NewEnvironmentCredential reads. The AZURE_ ones are the variables
// Azure users know, read as azidentity reads them; the AZCREDKIT_ ones are azcredkit's own, for
// what Azure has no variable.
const (
	EnvTenantID                   = "AZURE_TENANT_ID"
	EnvClientID                   = "AZURE_CLIENT_ID"
	EnvClientCertificatePath      = "AZURE_CLIENT_CERTIFICATE_PATH"
	EnvClientCertificatePassword  = "AZURE_CLIENT_CERTIFICATE_PASSWORD"
	EnvClientSendCertificateChain = "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN"
	EnvFederatedTokenFile         = "AZURE_FEDERATED_TOKEN_FILE"
	EnvAdditionallyAllowedTenants = "AZURE_ADDITIONALLY_ALLOWED_TENANTS"
	EnvAuthorityHost              = "AZURE_AUTHORITY_HOST"
	envClientSecret               = "AZURE_CLIENT_SECRET"

	// EnvFederatedIdentityClientID: the client ID of the user-assigned managed identity that the
	// app trusts as a federated identity credential (App Service's
	// OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID plays the same part for Easy Auth).
	EnvFederatedIdentityClientID = "AZCREDKIT_FEDERATED_IDENTITY_CLIENT_ID"
	// EnvKeyVaultCertificateURL: the app's certificate in Key Vault,
	// https://{vault}/certificates/{name}[/{version}]; with EnvManagedHSMKeyURL, the certificate
	// of the Managed HSM key.
	EnvKeyVaultCertificateURL = "AZCREDKIT_KEYVAULT_CERTIFICATE_URL"
	// EnvKeyVaultHSM: "true" or "1" when the Key Vault certificate's key is not exportable (an
	// HSM key): Key Vault signs (NewHSMSignedAssertionCredential) instead of handing out the key.
	EnvKeyVaultHSM = "AZCREDKIT_KEYVAULT_HSM"
	// EnvManagedHSMKeyURL: a Managed HSM key, https://{hsm}.managedhsm.azure.net/keys/{name}.
	EnvManagedHSMKeyURL = "AZCREDKIT_MANAGED_HSM_KEY_URL"
	// EnvCertificateChainPath: a PEM file with the certificate(s) of the Managed HSM key.
	EnvCertificateChainPath = "AZCREDKIT_CERTIFICATE_CHAIN_PATH"
	// EnvVaultIdentityClientID: the client ID of the user-assigned managed identity that reads
	// Key Vault or uses the Managed HSM; unset: the system-assigned identity. (AZURE_CLIENT_ID is
	// the app, never the vault's identity.)
	EnvVaultIdentityClientID = "AZCREDKIT_VAULT_IDENTITY_CLIENT_ID"
)

// EnvironmentCredentialOptions configure NewEnvironmentCredential. nil means the defaults.
type EnvironmentCredentialOptions struct {
	// SignedAssertionCredentialOptions: the pipeline to Entra and the other shared options;
	// the variables override SendCertificateChain and AdditionallyAllowedTenants when set.
	SignedAssertionCredentialOptions
	// Vault is the pipeline to Key Vault and Managed HSM. Optional.
	Vault keyvault.ClientOptions
	// ManagedIdentity returns the credential of the managed identity with clientID ("" for the
	// system-assigned one): for Key Vault and Managed HSM, and as the federated source of
	// AZCREDKIT_FEDERATED_IDENTITY_CLIENT_ID. nil means azidentity.NewManagedIdentityCredential.
	// Optional.
	ManagedIdentity func(clientID string) (azcore.TokenCredential, error)
}

// EnvironmentCredential is the credential NewEnvironmentCredential chose; it passes GetToken and
// Assertion to it.
type EnvironmentCredential struct {
	cred interface {
		azcore.TokenCredential
		assertion.Provider
	}
	kind string
}

// EnvironmentError lists every problem with the environment's configuration: each missing,
// contradictory or unusable variable. errors.Is matches assertion.ErrInvalidOptions.
type EnvironmentError struct {
	// Problems says, one entry per problem, what to set or unset.
	Problems []string
}

func (e *EnvironmentError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: the environment does not configure a credential (%d problem", credNameEnvironment, len(e.Problems))
	if len(e.Problems) != 1 {
		sb.WriteString("s")
	}
	sb.WriteString("):")
	for i, p := range e.Problems {
		fmt.Fprintf(&sb, " (%d) %s;", i+1, p)
	}
	s := sb.String()
	return s[:len(s)-1]
}

// Unwrap returns assertion.ErrInvalidOptions.
func (e *EnvironmentError) Unwrap() error { return assertion.ErrInvalidOptions }

// NewEnvironmentCredential picks the app's credential from environment variables: the app is
// AZURE_TENANT_ID and AZURE_CLIENT_ID, and exactly one of these says how it authenticates:
//
//	AZURE_CLIENT_CERTIFICATE_PATH           a PEM or PFX file with the key (with AZURE_CLIENT_CERTIFICATE_PASSWORD,
//	                                        AZURE_CLIENT_SEND_CERTIFICATE_CHAIN): NewCertificateCredential
//	AZURE_FEDERATED_TOKEN_FILE              Kubernetes workload identity: NewFederatedCredential + NewTokenFileSource
//	AZCREDKIT_FEDERATED_IDENTITY_CLIENT_ID  a user-assigned managed identity as federated credential: NewFederatedCredential
//	AZCREDKIT_KEYVAULT_CERTIFICATE_URL      a Key Vault certificate: NewKeyVaultCertCredential, or with
//	                                        AZCREDKIT_KEYVAULT_HSM=true NewHSMSignedAssertionCredential
//	AZCREDKIT_MANAGED_HSM_KEY_URL           a Managed HSM key, with AZCREDKIT_CERTIFICATE_CHAIN_PATH or
//	                                        AZCREDKIT_KEYVAULT_CERTIFICATE_URL for its certificate: NewManagedHSMCredential
//
// Key Vault and Managed HSM are read with the managed identity AZCREDKIT_VAULT_IDENTITY_CLIENT_ID
// (the system-assigned one when unset). AZURE_ADDITIONALLY_ALLOWED_TENANTS (separated by ";",
// "*" for any) and AZURE_AUTHORITY_HOST apply to every choice. The AZURE_ variables mean what
// they mean to azidentity: AZURE_CLIENT_SEND_CERTIFICATE_CHAIN is on for "1" or "true" in any
// case; an empty AZURE_CLIENT_CERTIFICATE_PASSWORD is no password. Client secrets
// (AZURE_CLIENT_SECRET) are not used.
//
// The certificate file is read now; nothing else is, and there is no network I/O. When the
// variables do not make one credential, the error is an *EnvironmentError listing every problem
// at once: what is missing and what contradicts what.
func NewEnvironmentCredential(options *EnvironmentCredentialOptions) (*EnvironmentCredential, error) {
	var o EnvironmentCredentialOptions
	if options != nil {
		o = *options
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	get := func(name string) string { return strings.TrimSpace(os.Getenv(name)) }

	tenant, client := get(EnvTenantID), get(EnvClientID)
	switch {
	case tenant == "":
		add("%s is not set: set it to the app's tenant (directory) ID", EnvTenantID)
	case !entra.ValidTenantID(tenant):
		add("%s %q is not a tenant ID: it may contain only letters, digits, '-' and '.'", EnvTenantID, tenant)
	}
	if client == "" {
		add("%s is not set: set it to the app's application (client) ID", EnvClientID)
	}
	if v := os.Getenv(EnvAdditionallyAllowedTenants); v != "" {
		o.AdditionallyAllowedTenants = strings.Split(v, ";") // as azidentity: ";"-separated
	}
	if v, ok := os.LookupEnv(EnvClientSendCertificateChain); ok {
		o.SendCertificateChain = v == "1" || strings.ToLower(v) == "true" // as azidentity
	}
	if h := get(EnvAuthorityHost); h != "" && o.ClientOptions.Cloud.ActiveDirectoryAuthorityHost == "" {
		if u, err := url.Parse(h); err != nil || u.Scheme != "https" || u.Host == "" {
			add("%s %q is not an https URL (for example https://login.microsoftonline.us/)", EnvAuthorityHost, h)
		}
	}

	certPath, password := get(EnvClientCertificatePath), os.Getenv(EnvClientCertificatePassword)
	tokenFile, fedMI := get(EnvFederatedTokenFile), get(EnvFederatedIdentityClientID)
	kvURL, hsmKey, chainPath := get(EnvKeyVaultCertificateURL), get(EnvManagedHSMKeyURL), get(EnvCertificateChainPath)
	kvHSM, kvHSMErr := envBool(get(EnvKeyVaultHSM))
	vaultMI := get(EnvVaultIdentityClientID)

	// Which credential: exactly one chooser.
	var chosen []string
	for _, c := range [][2]string{{EnvClientCertificatePath, certPath}, {EnvFederatedTokenFile, tokenFile}, {EnvFederatedIdentityClientID, fedMI}, {EnvManagedHSMKeyURL, hsmKey}} {
		if c[1] != "" {
			chosen = append(chosen, c[0])
		}
	}
	if kvURL != "" && hsmKey == "" {
		chosen = append(chosen, EnvKeyVaultCertificateURL)
	}
	switch {
	case len(chosen) == 0:
		msg := fmt.Sprintf("no variable says how the app authenticates: set one of %s (a certificate file), %s (Kubernetes workload identity), %s (a managed identity as federated credential), %s (a Key Vault certificate) or %s (a Managed HSM key)",
			EnvClientCertificatePath, EnvFederatedTokenFile, EnvFederatedIdentityClientID, EnvKeyVaultCertificateURL, EnvManagedHSMKeyURL)
		if os.Getenv(envClientSecret) != "" {
			msg += fmt.Sprintf("; %s is set, but azcredkit authenticates without client secrets", envClientSecret)
		}
		problems = append(problems, msg)
	case len(chosen) > 1:
		add("%s each choose a credential: set only one of them", strings.Join(chosen, " and "))
	}

	// Variables that only make sense with a choice that was not made.
	if password != "" && certPath == "" {
		add("%s is set but %s is not: the password is for the certificate file", EnvClientCertificatePassword, EnvClientCertificatePath)
	}
	if kvHSMErr != nil {
		add("%s %q: %v", EnvKeyVaultHSM, os.Getenv(EnvKeyVaultHSM), kvHSMErr)
	} else if kvHSM && (kvURL == "" || hsmKey != "") {
		if hsmKey != "" {
			add("%s is set with %s: a Managed HSM always signs, and %s then names only the certificate; unset %s", EnvKeyVaultHSM, EnvManagedHSMKeyURL, EnvKeyVaultCertificateURL, EnvKeyVaultHSM)
		} else {
			add("%s is set but %s is not: it says how to use a Key Vault certificate", EnvKeyVaultHSM, EnvKeyVaultCertificateURL)
		}
	}
	if hsmKey != "" {
		switch {
		case chainPath == "" && kvURL == "":
			add("%s needs the key's certificate: set %s (a PEM file) or %s (a Key Vault certificate)", EnvManagedHSMKeyURL, EnvCertificateChainPath, EnvKeyVaultCertificateURL)
		case chainPath != "" && kvURL != "":
			add("%s and %s both name the certificate of %s: set only one", EnvCertificateChainPath, EnvKeyVaultCertificateURL, EnvManagedHSMKeyURL)
		}
		if _, err := keyvault.ParseKeyURL(hsmKey); err != nil {
			add("%s: %v", EnvManagedHSMKeyURL, err)
		}
	} else if chainPath != "" {
		add("%s is set but %s is not: the chain is for a Managed HSM key", EnvCertificateChainPath, EnvManagedHSMKeyURL)
	}
	if kvURL != "" {
		if _, err := keyvault.ParseCertificateURL(kvURL); err != nil {
			add("%s: %v", EnvKeyVaultCertificateURL, err)
		}
	}
	if vaultMI != "" && kvURL == "" && hsmKey == "" {
		add("%s is set but neither %s nor %s is: it names the identity that reads the vault", EnvVaultIdentityClientID, EnvKeyVaultCertificateURL, EnvManagedHSMKeyURL)
	}
	var certData []byte
	if certPath != "" {
		var err error
		if certData, err = os.ReadFile(certPath); err != nil {
			add("%s: %v", EnvClientCertificatePath, err)
		} else if _, _, err := keyvault.ParseCertificate(certData, password); err != nil {
			add("%s %s: %v", EnvClientCertificatePath, certPath, err)
		}
	}
	if len(problems) > 0 {
		return nil, &EnvironmentError{Problems: problems}
	}

	mi := o.ManagedIdentity
	if mi == nil {
		mi = defaultManagedIdentity
	}
	so := o.SignedAssertionCredentialOptions
	c := &EnvironmentCredential{}
	var err error
	switch chosen[0] {
	case EnvClientCertificatePath:
		c.kind = "certificate file " + certPath
		c.cred, err = NewCertificateCredential(tenant, client, certData, password, &so)
	case EnvFederatedTokenFile:
		c.kind = "federated token file " + tokenFile
		var src *TokenFileSource
		if src, err = NewTokenFileSource(tokenFile); err == nil {
			c.cred, err = NewFederatedCredential(tenant, client, src, &FederatedCredentialOptions{SignedAssertionCredentialOptions: withoutCertOptions(so)})
		}
	case EnvFederatedIdentityClientID:
		c.kind = "managed identity " + fedMI + " as federated credential"
		var src azcore.TokenCredential
		if src, err = mi(fedMI); err == nil {
			c.cred, err = NewFederatedCredential(tenant, client, src, &FederatedCredentialOptions{SignedAssertionCredentialOptions: withoutCertOptions(so)})
		}
	case EnvKeyVaultCertificateURL:
		var vc azcore.TokenCredential
		if vc, err = mi(vaultMI); err != nil {
			break
		}
		if kvHSM {
			c.kind = "Key Vault certificate " + kvURL + " (Key Vault signs)"
			c.cred, err = NewHSMSignedAssertionCredential(tenant, client, kvURL, vc, &HSMSignedAssertionCredentialOptions{SignedAssertionCredentialOptions: so, Vault: o.Vault})
		} else {
			c.kind = "Key Vault certificate " + kvURL
			c.cred, err = NewKeyVaultCertCredential(tenant, client, kvURL, vc, &KeyVaultCertCredentialOptions{SignedAssertionCredentialOptions: so, Vault: o.Vault})
		}
	case EnvManagedHSMKeyURL:
		c.kind = "Managed HSM key " + hsmKey
		var vc azcore.TokenCredential
		if vc, err = mi(vaultMI); err != nil {
			break
		}
		var chain CertificateChainSource = CertificatesFromFile(chainPath)
		if kvURL != "" {
			if chain, err = CertificatesFromKeyVault(kvURL, vc, &o.Vault); err != nil {
				break
			}
		}
		c.cred, err = NewManagedHSMCredential(tenant, client, hsmKey, chain, vc, &ManagedHSMCredentialOptions{SignedAssertionCredentialOptions: so, Vault: o.Vault})
	}
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", credNameEnvironment, c.kind, err)
	}
	// azidentity writes "EnvironmentCredential will authenticate with {Credential}" here.
	entra.Log(so.Logger, slog.LevelInfo, credNameEnvironment, "credential chosen from the environment",
		slog.String(entra.AttrEvent, "credential_chosen"), slog.String("chosen", chosenName(c.cred)), slog.String("kind", c.kind))
	return c, nil
}

// chosenName is the name the chosen credential uses in its errors, logs and spans.
func chosenName(c azcore.TokenCredential) string {
	switch c := c.(type) {
	case *SignedAssertionCredential:
		return c.tc.client.Credential() // CertificateCredential for a file
	case *FederatedCredential:
		return credNameFederated
	case *KeyVaultCertCredential:
		return credNameKeyVaultCert
	case *HSMSignedAssertionCredential:
		return credNameHSM
	case *ManagedHSMCredential:
		return credNameManagedHSM
	}
	return fmt.Sprintf("%T", c)
}

// withoutCertOptions drops the certificate options, which a federated credential refuses
// (AZURE_CLIENT_SEND_CERTIFICATE_CHAIN may be set for every pod of a cluster).
func withoutCertOptions(o SignedAssertionCredentialOptions) SignedAssertionCredentialOptions {
	o.SendCertificateChain, o.AssertionLifetime = false, 0
	return o
}

// envBool reads one of azcredkit's boolean variables: "" (unset), "0", "false" or "1", "true".
func envBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, errors.New(`use "true" or "false"`)
}

func defaultManagedIdentity(clientID string) (azcore.TokenCredential, error) {
	o := &azidentity.ManagedIdentityCredentialOptions{}
	if clientID != "" {
		o.ID = azidentity.ClientID(clientID)
	}
	return azidentity.NewManagedIdentityCredential(o)
}

// Kind describes the chosen credential, for example "federated token file /var/run/...".
func (c *EnvironmentCredential) Kind() string { return c.kind }

// Credential returns the chosen credential: a *SignedAssertionCredential, *FederatedCredential,
// *KeyVaultCertCredential, *HSMSignedAssertionCredential or *ManagedHSMCredential.
func (c *EnvironmentCredential) Credential() azcore.TokenCredential { return c.cred }

// GetToken returns an access token from the chosen credential. It implements
// azcore.TokenCredential.
func (c *EnvironmentCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return c.cred.GetToken(ctx, opts)
}

// Assertion returns a client assertion from the chosen credential. It implements
// assertion.Provider, for example for obo.NewAppWithAssertion.
func (c *EnvironmentCredential) Assertion(ctx context.Context, audience string) (string, error) {
	return c.cred.Assertion(ctx, audience)
}

var (
	_ azcore.TokenCredential = (*EnvironmentCredential)(nil)
	_ assertion.Provider     = (*EnvironmentCredential)(nil)
)
