package otelmetrics_test

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/otelmetrics"
)

// A credential's measurements in OpenTelemetry: here read back with the SDK's manual reader; in a
// service, the provider of your exporter (otel.GetMeterProvider()).
func ExampleNew() {
	emu, err := emulator.Start(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer emu.Close()
	cert, _ := emulator.NewTestCertificate("my-service")
	_ = emu.RegisterApp(tenantID, clientID, cert.Certificate)

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = provider.Shutdown(context.Background()) }()

	rec, err := otelmetrics.New(provider, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	cred, err := credential.NewCertificateCredential(tenantID, clientID, cert.PEM(), "", &credential.SignedAssertionCredentialOptions{
		ClientOptions: emu.ClientOptions(),
		Metrics:       rec,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		_, _ = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
	}

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "azcredkit.token.requests" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				source, _ := dp.Attributes.Value(otelmetrics.AttrSource)
				fmt.Println(m.Name, source.AsString(), dp.Value)
			}
		}
	}
	// Unordered output:
	// azcredkit.token.requests entra 1
	// azcredkit.token.requests memory 2
}
