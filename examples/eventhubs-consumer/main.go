// Command eventhubs-consumer reads events from an Event Hub in a customer's tenant as a
// multi-tenant app, with no client secret anywhere. Two ways, chosen with -auth:
//
//   - -auth=federated (no certificate at all, nothing to rotate): the app trusts a user-assigned
//     managed identity of your tenant (A) as a federated identity credential, and the identity's
//     token is the app's client assertion in the customer's tenant (B):
//     credential.NewFederatedCredential(tenantB, appID, managedIdentityOfA, nil).
//   - -auth=certificate (the default): a managed identity in your tenant A reads the app's
//     certificate from your Key Vault, and the app authenticates with it in tenant B:
//     credential.NewKeyVaultCertCredential(tenantB, appID, certURL, managedIdentityOfA, nil). The
//     certificate is loaded on the first token, reused after that, and re-read when Key Vault
//     renews it.
//
// Either way the managed identity never leaves tenant A and the customer never sees a secret. It
// receives from one partition (-partition) or all, for a bounded time, and prints how many events
// and body bytes arrived, not the bodies.
//
// Azure setup:
//   - tenant A: a multi-tenant app registration ("Accounts in any organizational directory");
//   - federated: a user-assigned managed identity of tenant A on the workload (VM, App Service,
//     AKS...), and on the app registration a federated identity credential ("Managed identity"
//     scenario, or Microsoft Graph): issuer https://login.microsoftonline.com/{tenant A}/v2.0,
//     subject the identity's object (principal) ID, audience api://AzureADTokenExchange. The app
//     and the identity must be in the same tenant; the customer's tenant may be any (not another
//     cloud);
//   - certificate: the certificate's public part uploaded to the app; the certificate in a Key
//     Vault of A, with an exportable key; the workload's managed identity has "Key Vault Secrets
//     User" on the certificate;
//   - tenant B (the customer): an admin consents to the app
//     (https://login.microsoftonline.com/{tenant B}/adminconsent?client_id={app}), which creates
//     its service principal there, and gives it "Azure Event Hubs Data Receiver" on the Event Hub.
//
// Run, on the workload in tenant A:
//
//	export AZURE_TENANT_ID=<tenant B> AZURE_CLIENT_ID=<app>
//	go run ./examples/eventhubs-consumer -auth=federated -identity <identity's client ID> -namespace customer-ns.servicebus.windows.net -hub telemetry -from=earliest -duration=30s
//
//	export AZURE_CLIENT_CERTIFICATE_URL=https://vault-of-a.vault.azure.net/certificates/customer-reader
//	go run ./examples/eventhubs-consumer -namespace customer-ns.servicebus.windows.net -hub telemetry -from=earliest -duration=30s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/azcredkit/azcredkit/credential"
)

// settings are the command line.
type settings struct {
	tenant, clientID, certURL, miID  string
	auth                             string
	namespace, hub, group, partition string
	start                            azeventhubs.StartPosition
	duration                         time.Duration
}

func main() {
	var s settings
	var from string
	flag.StringVar(&s.tenant, "tenant", os.Getenv("AZURE_TENANT_ID"), "the customer's tenant ID (B), where the Event Hub is (AZURE_TENANT_ID)")
	flag.StringVar(&s.clientID, "client-id", os.Getenv("AZURE_CLIENT_ID"), "client ID of the multi-tenant app (AZURE_CLIENT_ID)")
	flag.StringVar(&s.certURL, "cert-url", os.Getenv("AZURE_CLIENT_CERTIFICATE_URL"), "the app's certificate in tenant A's vault: https://{vault}/certificates/{name} (AZURE_CLIENT_CERTIFICATE_URL)")
	flag.StringVar(&s.auth, "auth", "certificate", `how the app authenticates: "federated" (the managed identity's token as federated credential: no certificate) or "certificate" (its certificate in Key Vault)`)
	flag.StringVar(&s.miID, "identity", os.Getenv("AZCREDKIT_FEDERATED_IDENTITY_CLIENT_ID"), "client ID of a user-assigned managed identity in tenant A: required with -auth=federated; with -auth=certificate the default is the system-assigned identity (AZCREDKIT_FEDERATED_IDENTITY_CLIENT_ID)")
	flag.StringVar(&s.namespace, "namespace", os.Getenv("EVENTHUB_NAMESPACE"), "Event Hubs namespace: name or name.servicebus.windows.net (EVENTHUB_NAMESPACE)")
	flag.StringVar(&s.hub, "hub", os.Getenv("EVENTHUB_NAME"), "Event Hub name (EVENTHUB_NAME)")
	flag.StringVar(&s.group, "consumer-group", "$Default", "consumer group")
	flag.StringVar(&s.partition, "partition", "", "partition ID to read (default: all partitions)")
	flag.StringVar(&from, "from", "latest", `"latest" (events sent from now on) or "earliest" (everything retained)`)
	flag.DurationVar(&s.duration, "duration", 30*time.Second, "how long to receive")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: eventhubs-consumer [flags]: receive events from a customer's Event Hub with your managed identity as federated credential, or a certificate from your Key Vault")
		flag.PrintDefaults()
	}
	flag.Parse()
	required := [][2]string{{s.tenant, "-tenant (or AZURE_TENANT_ID)"}, {s.clientID, "-client-id (or AZURE_CLIENT_ID)"},
		{s.namespace, "-namespace (or EVENTHUB_NAMESPACE)"}, {s.hub, "-hub (or EVENTHUB_NAME)"}}
	switch s.auth {
	case "certificate":
		required = append(required, [2]string{s.certURL, "-cert-url (or AZURE_CLIENT_CERTIFICATE_URL)"})
	case "federated":
		// Only a user-assigned identity can be a federated identity credential.
		required = append(required, [2]string{s.miID, "-identity (a user-assigned managed identity, with -auth=federated)"})
	default:
		usageError("-auth must be federated or certificate, not %q", s.auth)
	}
	for _, r := range required {
		if r[0] == "" {
			usageError("%s is required", r[1])
		}
	}
	switch from {
	case "latest":
		s.start = azeventhubs.StartPosition{Latest: to(true)}
	case "earliest":
		s.start = azeventhubs.StartPosition{Earliest: to(true)}
	default:
		usageError("-from must be latest or earliest, not %q", from)
	}
	if !strings.Contains(s.namespace, ".") {
		s.namespace += ".servicebus.windows.net"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, s); err != nil {
		fmt.Fprintln(os.Stderr, "eventhubs-consumer:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, s settings) error {
	// Tenant A: the workload's managed identity.
	miOpts := &azidentity.ManagedIdentityCredentialOptions{}
	if s.miID != "" {
		miOpts.ID = azidentity.ClientID(s.miID)
	}
	mi, err := azidentity.NewManagedIdentityCredential(miOpts)
	if err != nil {
		return err
	}
	// Tenant B: the app's service principal, authenticated with the identity's token
	// (federated) or with the certificate the identity reads from Key Vault.
	var cred azcore.TokenCredential
	if s.auth == "federated" {
		cred, err = credential.NewFederatedCredential(s.tenant, s.clientID, mi, nil)
	} else {
		cred, err = credential.NewKeyVaultCertCredential(s.tenant, s.clientID, s.certURL, mi, nil)
	}
	if err != nil {
		return err
	}
	consumer, err := azeventhubs.NewConsumerClient(s.namespace, s.hub, s.group, cred, nil)
	if err != nil {
		return err
	}
	defer consumer.Close(context.Background())

	// The first call gets a token (loading the certificate, or the identity's token): authentication
	// errors show here.
	props, err := consumer.GetEventHubProperties(ctx, nil)
	if err != nil {
		return err
	}
	partitions := props.PartitionIDs
	if s.partition != "" {
		if !slices.Contains(partitions, s.partition) {
			return fmt.Errorf("-partition %q: the Event Hub has partitions %s", s.partition, strings.Join(partitions, ", "))
		}
		partitions = []string{s.partition}
	}

	fmt.Printf("receiving from %s/%s (%s), %d partition(s), for %s\n", s.namespace, s.hub, s.group, len(partitions), s.duration)
	ctx, cancel := context.WithTimeout(ctx, s.duration)
	defer cancel()
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		events, bytes int
		errs          []error
	)
	for _, id := range partitions {
		wg.Go(func() {
			n, b, err := receive(ctx, consumer, id, s.start)
			fmt.Printf("partition %s: %d events, %d body bytes\n", id, n, b)
			mu.Lock()
			defer mu.Unlock()
			events, bytes = events+n, bytes+b
			if err != nil {
				errs = append(errs, fmt.Errorf("partition %s: %w", id, err))
			}
		})
	}
	wg.Wait()
	fmt.Printf("total: %d events, %d body bytes\n", events, bytes)
	return errors.Join(errs...)
}

// receive counts the events of one partition until ctx ends.
func receive(ctx context.Context, consumer *azeventhubs.ConsumerClient, id string, start azeventhubs.StartPosition) (events, bytes int, err error) {
	pc, err := consumer.NewPartitionClient(id, &azeventhubs.PartitionClientOptions{StartPosition: start})
	if err != nil {
		return 0, 0, err
	}
	defer pc.Close(context.Background())
	for {
		batch, err := pc.ReceiveEvents(ctx, 100, nil)
		for _, e := range batch {
			events++
			bytes += len(e.Body)
		}
		if ctx.Err() != nil {
			return events, bytes, nil // the receive window is over
		}
		if err != nil {
			return events, bytes, err // after the client's own retries
		}
	}
}

func to[T any](v T) *T { return &v }

func usageError(format string, args ...any) {
	fmt.Fprintf(flag.CommandLine.Output(), "eventhubs-consumer: "+format+"\n\n", args...)
	flag.Usage()
	os.Exit(2)
}
