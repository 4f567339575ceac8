// Command azcredkit-emulator runs the Microsoft Entra ID, Key Vault and managed identity emulators
// of package github.com/azcredkit/azcredkit/emulator as a process, for the tests of a service in
// any language (Go, Python, .NET, Java, Node.js) or a docker compose setup:
//
//	go run ./cmd/azcredkit-emulator [flags]
//
// Run with no arguments it serves on free 127.0.0.1 ports. It registers apps, certificates,
// managed identities and secrets from flags or a small JSON file (-config), writes the
// emulator's CA certificate to a PEM file, and prints the environment a process needs, one
// KEY=value per line (comments start with #), ending with the line "# ready":
//
//	AZURE_AUTHORITY_HOST=https://127.0.0.1:PORT/      Entra ID (azidentity, MSAL, azure-identity)
//	AZURE_KEYVAULT_URL=https://127.0.0.1:PORT         the vault
//	AZCREDKIT_EMULATOR_CA_FILE=/path/ca.pem           the CA to trust; also as
//	SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS
//	IDENTITY_ENDPOINT, IDENTITY_HEADER                with a managed identity (App Service protocol)
//
// It stops cleanly on SIGINT (Ctrl-C) or SIGTERM and exits 0. Everything listens on 127.0.0.1
// only: from a container, use the host's network (network_mode: host). It is for tests only.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/azcredkit/azcredkit/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Config is the JSON file given with -config. Every field is optional.
type Config struct {
	// VaultTenant is the vault's tenant; default: the tenant of the first app or identity with
	// vault access.
	VaultTenant string `json:"vaultTenant"`
	// TokenLifetime of Entra ID's tokens, such as "10m"; default 1h.
	TokenLifetime string `json:"tokenLifetime"`
	// VaultCertificates are imported (File, Password) or, without File, created.
	VaultCertificates []VaultCertificateConfig `json:"vaultCertificates"`
	// Apps to register.
	Apps []AppConfig `json:"apps"`
	// ManagedIdentities of the service under test.
	ManagedIdentities []IdentityConfig `json:"managedIdentities"`
	// Secrets of the vault, by name.
	Secrets map[string]string `json:"secrets"`
	// VaultAccess grants more apps or identities access to the vault.
	VaultAccess []AccessConfig `json:"vaultAccess"`
	// RequireMFA lists resources whose On-Behalf-Of tokens need MFA.
	RequireMFA []string `json:"requireMfa"`
}

// AccessConfig names an app or identity that may use the vault.
type AccessConfig struct {
	Tenant   string `json:"tenant"`
	ClientID string `json:"clientId"`
}

// VaultCertificateConfig is a certificate of the vault.
type VaultCertificateConfig struct {
	Name string `json:"name"`
	// File is a PKCS#12 or PEM file with the key, imported with Password. Without File, the
	// certificate is created with the options below.
	File          string `json:"file"`
	Password      string `json:"password"`
	NonExportable bool   `json:"nonExportable"`
	HSM           bool   `json:"hsm"`
	PEM           bool   `json:"pem"`
	CommonName    string `json:"commonName"`
}

// AppConfig is an app registration.
type AppConfig struct {
	Tenant   string `json:"tenant"`
	ClientID string `json:"clientId"`
	// Secret, when set, is a client secret of the app.
	Secret string `json:"secret"`
	// Certificates are files (PEM or DER, the first certificate counts) or "vault:NAME", the
	// latest version of a vault certificate.
	Certificates []string `json:"certificates"`
	// OtherTenants provision the app in more tenants (a multi-tenant app).
	OtherTenants []string `json:"otherTenants"`
	// VaultAccess grants the app access to the vault.
	VaultAccess bool `json:"vaultAccess"`
}

// IdentityConfig is a managed identity.
type IdentityConfig struct {
	Tenant       string `json:"tenant"`
	ClientID     string `json:"clientId"`
	UserAssigned bool   `json:"userAssigned"`
	ResourceID   string `json:"resourceId"`
	VaultAccess  bool   `json:"vaultAccess"`
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// run is the command; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("azcredkit-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configFile    = fs.String("config", "", "JSON `file` with apps, vault certificates, managed identities and secrets")
		entraPort     = fs.Int("entra-port", 0, "127.0.0.1 `port` of Entra ID (0: a free one)")
		vaultPort     = fs.Int("vault-port", 0, "127.0.0.1 `port` of the vault (0: a free one)")
		identityPort  = fs.Int("identity-port", 0, "127.0.0.1 `port` of the managed identity endpoint (0: a free one)")
		vaultTenant   = fs.String("vault-tenant", "", "the vault's tenant `ID` (default: the first one granted access)")
		tokenLifetime = fs.Duration("token-lifetime", 0, "lifetime of Entra ID's tokens (default 1h)")
		caFile        = fs.String("ca-file", "", "write the CA certificate (PEM) to this `path` (default: a temporary file, removed on exit)")
		envFile       = fs.String("env-file", "", "also write the environment (KEY=value lines) to this `path`, for docker compose's env_file")
		secretApps    listFlag
		certApps      listFlag
		vaultAccess   listFlag
		identities    listFlag
		importCerts   listFlag
		createCerts   listFlag
		secrets       listFlag
		mfa           listFlag
	)
	fs.Var(&secretApps, "secret-app", "register an app with a client secret: `TENANT,CLIENT,SECRET` (repeatable)")
	fs.Var(&certApps, "cert-app", "register an app with a certificate: `TENANT,CLIENT,FILE` where FILE is a PEM or DER certificate or vault:NAME (repeatable)")
	fs.Var(&vaultAccess, "vault-access", "grant vault access: `TENANT,CLIENT` (repeatable)")
	fs.Var(&identities, "managed-identity", "serve a managed identity: `TENANT,CLIENT[,user-assigned]` (repeatable)")
	fs.Var(&importCerts, "import-cert", "import a certificate with its key into the vault: `NAME,FILE[,PASSWORD]` (repeatable)")
	fs.Var(&createCerts, "create-cert", "create a certificate in the vault: `NAME[,non-exportable][,hsm][,pem]` (repeatable)")
	fs.Var(&secrets, "secret", "store a secret in the vault: `NAME=VALUE` (repeatable)")
	fs.Var(&mfa, "require-mfa", "On-Behalf-Of tokens for this `resource` need MFA (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./cmd/azcredkit-emulator [flags]\n\n"+
			"Runs Microsoft Entra ID, Key Vault and a managed identity endpoint on 127.0.0.1 for tests,\n"+
			"prints the environment a process needs (KEY=value lines ending with \"# ready\"), and stops\n"+
			"on SIGINT or SIGTERM.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "azcredkit-emulator: unexpected arguments %q (see -h)\n", fs.Args())
		return 2
	}

	var cfg Config
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			fmt.Fprintf(stderr, "azcredkit-emulator: %v\n", err)
			return 2
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			fmt.Fprintf(stderr, "azcredkit-emulator: reading %s: %v\n", *configFile, err)
			return 2
		}
		base := filepath.Dir(*configFile)
		cfg.resolvePaths(base)
	}
	if err := cfg.addFlags(secretApps, certApps, vaultAccess, identities, importCerts, createCerts, secrets, mfa); err != nil {
		fmt.Fprintf(stderr, "azcredkit-emulator: %v\n", err)
		return 2
	}
	if *vaultTenant != "" {
		cfg.VaultTenant = *vaultTenant
	}
	opts := &emulator.Options{VaultTenant: cfg.VaultTenant, EntraPort: *entraPort, VaultPort: *vaultPort, ManagedIdentityPort: *identityPort, TokenLifetime: *tokenLifetime}
	if cfg.TokenLifetime != "" && *tokenLifetime == 0 {
		d, err := time.ParseDuration(cfg.TokenLifetime)
		if err != nil {
			fmt.Fprintf(stderr, "azcredkit-emulator: tokenLifetime: %v\n", err)
			return 2
		}
		opts.TokenLifetime = d
	}

	emu, err := emulator.Start(opts)
	if err != nil {
		fmt.Fprintf(stderr, "azcredkit-emulator: %v\n", err)
		return 1
	}
	defer emu.Close()
	if err := cfg.apply(emu); err != nil {
		fmt.Fprintf(stderr, "azcredkit-emulator: %v\n", err)
		return 2
	}

	ca := *caFile
	if ca == "" {
		dir, err := os.MkdirTemp("", "azcredkit-emulator-")
		if err != nil {
			fmt.Fprintf(stderr, "azcredkit-emulator: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		ca = filepath.Join(dir, "ca.pem")
	}
	if abs, err := filepath.Abs(ca); err == nil {
		ca = abs
	}
	if err := os.WriteFile(ca, emu.CACertificatePEM(), 0o644); err != nil {
		fmt.Fprintf(stderr, "azcredkit-emulator: writing the CA certificate: %v\n", err)
		return 1
	}
	env := environment(emu, ca, len(cfg.ManagedIdentities) > 0)
	if *envFile != "" {
		var b strings.Builder
		for _, kv := range env {
			fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
		}
		if err := os.WriteFile(*envFile, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintf(stderr, "azcredkit-emulator: writing the environment: %v\n", err)
			return 1
		}
	}

	fmt.Fprintln(stdout, "# azcredkit emulator: Microsoft Entra ID, Key Vault and a managed identity endpoint on 127.0.0.1, for tests only.")
	fmt.Fprintln(stdout, "# Key Vault clients must skip the challenge resource check (Go and .NET: DisableChallengeResourceVerification; Python: verify_challenge_resource=False).")
	fmt.Fprintln(stdout, "# Stop with Ctrl-C (SIGINT) or SIGTERM.")
	for _, kv := range env {
		fmt.Fprintf(stdout, "%s=%s\n", kv[0], kv[1])
	}
	fmt.Fprintln(stdout, "# ready")

	<-ctx.Done()
	emu.Close()
	fmt.Fprintln(stderr, "azcredkit-emulator: stopped")
	return 0
}

// environment is what a process needs to use the emulator.
func environment(emu *emulator.Emulator, caFile string, identity bool) [][2]string {
	env := [][2]string{
		{"AZURE_AUTHORITY_HOST", emu.AuthorityHost()},
		{"AZURE_KEYVAULT_URL", emu.VaultURL()},
		{"AZCREDKIT_EMULATOR_CA_FILE", caFile},
		{"SSL_CERT_FILE", caFile},
		{"REQUESTS_CA_BUNDLE", caFile},
		{"NODE_EXTRA_CA_CERTS", caFile},
	}
	if identity {
		mi := emu.ManagedIdentityEnv()
		env = append(env, [2]string{"IDENTITY_ENDPOINT", mi["IDENTITY_ENDPOINT"]}, [2]string{"IDENTITY_HEADER", mi["IDENTITY_HEADER"]})
	}
	return env
}

// resolvePaths makes the file names of the config relative to its directory.
func (c *Config) resolvePaths(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, "vault:") {
			return p
		}
		return filepath.Join(base, p)
	}
	for i := range c.VaultCertificates {
		c.VaultCertificates[i].File = abs(c.VaultCertificates[i].File)
	}
	for i := range c.Apps {
		for j, f := range c.Apps[i].Certificates {
			c.Apps[i].Certificates[j] = abs(f)
		}
	}
}

// addFlags adds what the flags say to the config.
func (c *Config) addFlags(secretApps, certApps, vaultAccess, identities, importCerts, createCerts, secrets, mfa []string) error {
	parts := func(flagName, v string, min, max int) ([]string, error) {
		p := strings.SplitN(v, ",", max)
		if len(p) < min {
			shown := fmt.Sprintf(" %q", v)
			if flagName == "secret-app" {
				shown = "" // it may hold a secret
			}
			return nil, fmt.Errorf("-%s%s: want %d to %d comma-separated values (see -h)", flagName, shown, min, max)
		}
		for i := range p {
			p[i] = strings.TrimSpace(p[i])
		}
		return p, nil
	}
	for _, v := range secretApps {
		p, err := parts("secret-app", v, 3, 3)
		if err != nil {
			return err
		}
		c.Apps = append(c.Apps, AppConfig{Tenant: p[0], ClientID: p[1], Secret: p[2]})
	}
	for _, v := range certApps {
		p, err := parts("cert-app", v, 3, 3)
		if err != nil {
			return err
		}
		c.Apps = append(c.Apps, AppConfig{Tenant: p[0], ClientID: p[1], Certificates: []string{p[2]}})
	}
	for _, v := range vaultAccess {
		p, err := parts("vault-access", v, 2, 2)
		if err != nil {
			return err
		}
		c.VaultAccess = append(c.VaultAccess, AccessConfig{Tenant: p[0], ClientID: p[1]})
	}
	for _, v := range identities {
		p, err := parts("managed-identity", v, 2, 3)
		if err != nil {
			return err
		}
		id := IdentityConfig{Tenant: p[0], ClientID: p[1]}
		if len(p) == 3 {
			if p[2] != "user-assigned" {
				return fmt.Errorf("-managed-identity %q: the third value can only be user-assigned", v)
			}
			id.UserAssigned = true
		}
		c.ManagedIdentities = append(c.ManagedIdentities, id)
	}
	for _, v := range importCerts {
		p, err := parts("import-cert", v, 2, 3)
		if err != nil {
			return err
		}
		vc := VaultCertificateConfig{Name: p[0], File: p[1]}
		if len(p) == 3 {
			vc.Password = p[2]
		}
		c.VaultCertificates = append(c.VaultCertificates, vc)
	}
	for _, v := range createCerts {
		p, err := parts("create-cert", v, 1, 4)
		if err != nil {
			return err
		}
		vc := VaultCertificateConfig{Name: p[0]}
		for _, o := range p[1:] {
			switch o {
			case "non-exportable":
				vc.NonExportable = true
			case "hsm":
				vc.HSM = true
			case "pem":
				vc.PEM = true
			default:
				return fmt.Errorf("-create-cert %q: unknown option %q (non-exportable, hsm, pem)", v, o)
			}
		}
		c.VaultCertificates = append(c.VaultCertificates, vc)
	}
	for _, v := range secrets {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return fmt.Errorf("-secret: want NAME=VALUE, got a value without '='")
		}
		if c.Secrets == nil {
			c.Secrets = map[string]string{}
		}
		c.Secrets[name] = value
	}
	c.RequireMFA = append(c.RequireMFA, mfa...)
	return nil
}

// apply registers the config with the emulator: vault certificates first, so that apps can name
// them.
func (c *Config) apply(emu *emulator.Emulator) error {
	for _, vc := range c.VaultCertificates {
		if vc.File != "" {
			data, err := os.ReadFile(vc.File)
			if err != nil {
				return fmt.Errorf("vault certificate %s: %w", vc.Name, err)
			}
			if _, err := emu.ImportCertificate(vc.Name, data, vc.Password); err != nil {
				return err
			}
			continue
		}
		if _, err := emu.CreateCertificate(vc.Name, &emulator.CertificateOptions{NonExportable: vc.NonExportable, HSM: vc.HSM, PEM: vc.PEM, CommonName: vc.CommonName}); err != nil {
			return err
		}
	}
	for _, a := range c.Apps {
		var certs []*x509.Certificate
		for _, f := range a.Certificates {
			cert, err := readCertificate(emu, f)
			if err != nil {
				return fmt.Errorf("app %s: %w", a.ClientID, err)
			}
			certs = append(certs, cert)
		}
		for _, tenant := range append([]string{a.Tenant}, a.OtherTenants...) {
			if err := emu.RegisterApp(tenant, a.ClientID, certs...); err != nil {
				return err
			}
		}
		if a.Secret != "" {
			if err := emu.RegisterSecretApp(a.Tenant, a.ClientID, a.Secret); err != nil {
				return err
			}
		}
		if a.VaultAccess {
			emu.GrantVaultAccess(a.Tenant, a.ClientID)
		}
	}
	for _, id := range c.ManagedIdentities {
		if err := emu.AddManagedIdentity(id.Tenant, id.ClientID, &emulator.ManagedIdentityOptions{UserAssigned: id.UserAssigned, ResourceID: id.ResourceID}); err != nil {
			return err
		}
		if id.VaultAccess {
			emu.GrantVaultAccess(id.Tenant, id.ClientID)
		}
	}
	for _, a := range c.VaultAccess {
		emu.GrantVaultAccess(a.Tenant, a.ClientID)
	}
	for name, value := range c.Secrets {
		if _, err := emu.SetSecret(name, value); err != nil {
			return err
		}
	}
	for _, r := range c.RequireMFA {
		emu.RequireMFA(r)
	}
	return nil
}

// readCertificate reads the first certificate of a PEM or DER file, or the latest version of a
// vault certificate ("vault:NAME").
func readCertificate(emu *emulator.Emulator, file string) (*x509.Certificate, error) {
	if name, ok := strings.CutPrefix(file, "vault:"); ok {
		vc, err := emu.GetCertificate(name)
		if err != nil {
			return nil, err
		}
		return vc.Certificate, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if strings.Contains(string(data), "-----BEGIN") {
		for {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				return nil, fmt.Errorf("%s holds no CERTIFICATE block", file)
			}
			if b.Type == "CERTIFICATE" {
				data = b.Bytes
				break
			}
		}
	}
	cert, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cert, nil
}
