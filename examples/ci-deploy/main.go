// Command ci-deploy is an on-premises CI/CD deploy step that calls Azure Resource Manager as an
// app registration authenticated with a certificate kept in Key Vault: no client secret is stored
// in the CI system, and Key Vault renews the certificate.
//
// The pattern: credential.NewKeyVaultCertCredential reads the certificate and its exportable
// private key from the certificate's Key Vault secret on first use, signs client assertions
// locally, and re-reads the vault when the certificate is renewed (hourly, and at once when Entra
// ID rejects the old one). The vault itself is read without a secret too: with the build agent's
// managed identity (-vault-auth=managed-identity: an Azure Arc-enabled server, or an Azure VM) or
// with azidentity.DefaultAzureCredential (-vault-auth=default: also "az login" on a workstation).
//
// By default it only lists the subscription's resource groups (-action=list). -action=apply
// creates or updates one resource group with tags, as a deploy would.
//
// Azure setup:
//   - an app registration for the deploy, with the certificate's public part uploaded under
//     "Certificates & secrets"; its service principal has "Reader" on the subscription for
//     -action=list, "Contributor" (or a role with Microsoft.Resources/subscriptions/resourceGroups/write)
//     for -action=apply;
//   - the certificate in Key Vault, created or imported with an exportable key (PKCS#12 or PEM);
//   - the build agent's identity has "Key Vault Secrets User" on the certificate (the key is read
//     from its secret), or an access policy with Get on secrets.
//
// Run:
//
//	export AZURE_TENANT_ID=<tenant> AZURE_CLIENT_ID=<deploy app> AZURE_SUBSCRIPTION_ID=<subscription>
//	export AZURE_CLIENT_CERTIFICATE_URL=https://myvault.vault.azure.net/certificates/deploy
//	go run ./examples/ci-deploy -vault-auth=managed-identity
//	go run ./examples/ci-deploy -vault-auth=managed-identity -action=apply -group=rg-app -location=westeurope -tags=env=prod,owner=ci
//
// Beware: DefaultAzureCredential reads AZURE_CLIENT_ID too, as the client ID of a user-assigned
// managed identity. Here AZURE_CLIENT_ID is the deploy app, so on a machine with a managed
// identity use -vault-auth=managed-identity (with -vault-identity for a user-assigned one), or
// pass the app with -client-id instead of AZURE_CLIENT_ID.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/azcredkit/azcredkit/credential"
)

func main() {
	var (
		tenant       = flag.String("tenant", os.Getenv("AZURE_TENANT_ID"), "tenant ID of the deploy app (AZURE_TENANT_ID)")
		clientID     = flag.String("client-id", os.Getenv("AZURE_CLIENT_ID"), "client ID of the deploy app (AZURE_CLIENT_ID)")
		subscription = flag.String("subscription", os.Getenv("AZURE_SUBSCRIPTION_ID"), "subscription to deploy to (AZURE_SUBSCRIPTION_ID)")
		certURL      = flag.String("cert-url", os.Getenv("AZURE_CLIENT_CERTIFICATE_URL"), "Key Vault certificate: https://{vault}/certificates/{name}[/{version}] (AZURE_CLIENT_CERTIFICATE_URL)")
		vaultAuth    = flag.String("vault-auth", "default", `how to read the vault: "default" (DefaultAzureCredential) or "managed-identity"`)
		vaultID      = flag.String("vault-identity", "", "client ID of a user-assigned managed identity for -vault-auth=managed-identity (default: system-assigned)")
		action       = flag.String("action", "list", `"list" resource groups (read-only) or "apply" -group with -location and -tags`)
		group        = flag.String("group", "", "resource group for -action=apply")
		location     = flag.String("location", "", "Azure region of -group for -action=apply, e.g. westeurope")
		tags         = flag.String("tags", "", "tags for -action=apply: key=value,key=value")
		verbose      = flag.Bool("v", false, "log tokens acquired and certificate loads (never tokens or keys)")
		timeout      = flag.Duration("timeout", 2*time.Minute, "give up after this long")
	)
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: ci-deploy [flags]: call Azure Resource Manager as an app whose certificate is in Key Vault")
		flag.PrintDefaults()
	}
	flag.Parse()
	required := [][2]string{{*tenant, "-tenant (or AZURE_TENANT_ID)"}, {*clientID, "-client-id (or AZURE_CLIENT_ID)"},
		{*subscription, "-subscription (or AZURE_SUBSCRIPTION_ID)"}, {*certURL, "-cert-url (or AZURE_CLIENT_CERTIFICATE_URL)"}}
	if *action == "apply" {
		required = append(required, [2]string{*group, "-group"}, [2]string{*location, "-location"})
	}
	for _, s := range required {
		if s[0] == "" {
			usageError("%s is required", s[1])
		}
	}
	if *action != "list" && *action != "apply" {
		usageError("-action must be list or apply, not %q", *action)
	}
	tagMap, err := parseTags(*tags)
	if err != nil {
		usageError("%v", err)
	}

	// The vault credential: whatever identity this machine has. No secret either way.
	var vaultCred azcore.TokenCredential
	switch *vaultAuth {
	case "default":
		vaultCred, err = azidentity.NewDefaultAzureCredential(nil)
	case "managed-identity":
		o := &azidentity.ManagedIdentityCredentialOptions{}
		if *vaultID != "" {
			o.ID = azidentity.ClientID(*vaultID)
		}
		vaultCred, err = azidentity.NewManagedIdentityCredential(o)
	default:
		usageError("-vault-auth must be default or managed-identity, not %q", *vaultAuth)
	}
	if err != nil {
		fail(err)
	}

	// The deploy app's credential: its certificate is loaded from Key Vault on the first token.
	opts := &credential.KeyVaultCertCredentialOptions{}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cred, err := credential.NewKeyVaultCertCredential(*tenant, *clientID, *certURL, vaultCred, opts)
	if err != nil {
		fail(err)
	}
	// Any Azure SDK client takes it: here Azure Resource Manager.
	groups, err := armresources.NewResourceGroupsClient(*subscription, cred, nil)
	if err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := deploy(ctx, groups, *action, *group, *location, tagMap); err != nil {
		cancel()
		fail(err) // a Key Vault or Entra ID error says which identity lacks what, and what to do
	}
}

// deploy lists the resource groups, or creates or updates one.
func deploy(ctx context.Context, groups *armresources.ResourceGroupsClient, action, group, location string, tags map[string]*string) error {
	if action == "list" {
		n := 0
		for pager := groups.NewListPager(nil); pager.More(); {
			page, err := pager.NextPage(ctx) // the first request loads the certificate and gets a token
			if err != nil {
				return err
			}
			for _, g := range page.Value {
				fmt.Printf("%-40s %-16s %d tags\n", deref(g.Name), deref(g.Location), len(g.Tags))
				n++
			}
		}
		fmt.Printf("%d resource groups\n", n)
		return nil
	}
	res, err := groups.CreateOrUpdate(ctx, group, armresources.ResourceGroup{Location: &location, Tags: tags}, nil)
	if err != nil {
		return err
	}
	state := ""
	if res.Properties != nil {
		state = deref(res.Properties.ProvisioningState)
	}
	fmt.Printf("resource group %s in %s: %s, %d tags\n", deref(res.Name), deref(res.Location), state, len(res.Tags))
	return nil
}

// parseTags parses key=value,key=value.
func parseTags(s string) (map[string]*string, error) {
	tags := map[string]*string{}
	for kv := range strings.SplitSeq(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-tags: %q is not key=value", kv)
		}
		tags[k] = &v
	}
	return tags, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func usageError(format string, args ...any) {
	fmt.Fprintf(flag.CommandLine.Output(), "ci-deploy: "+format+"\n\n", args...)
	flag.Usage()
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ci-deploy:", err)
	os.Exit(1)
}
