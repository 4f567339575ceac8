package assertion

import (
	"context"
	"errors"
	"fmt"
)

// ProviderFunc adapts a function to Provider: for example assertions from your own store, or from
// a credential that only exposes a callback. A panic in the function is returned as an error, and
// so is an empty assertion.
//
//	p := assertion.ProviderFunc(func(ctx context.Context, audience string) (string, error) {
//		return myAssertion(ctx, audience)
//	})
//	app, err := obo.NewAppWithAssertion(tenantID, clientID, p, nil)
type ProviderFunc func(ctx context.Context, audience string) (string, error)

// Assertion calls f. It implements Provider.
func (f ProviderFunc) Assertion(ctx context.Context, audience string) (a string, err error) {
	if f == nil {
		return "", fmt.Errorf("assertion: ProviderFunc: %w: the function is nil", ErrInvalidOptions)
	}
	defer func() {
		if r := recover(); r != nil {
			a, err = "", fmt.Errorf("assertion: the assertion function panicked: %v", r)
		}
	}()
	a, err = f(ctx, audience)
	if err != nil {
		return "", err
	}
	if a == "" {
		return "", errEmptyAssertion
	}
	return a, nil
}

var errEmptyAssertion = errors.New("assertion: the assertion function returned an empty assertion and no error")

// FromCallback adapts the callback of azidentity.NewClientAssertionCredential (and of
// azidentity.NewOnBehalfOfCredentialWithClientAssertions), func(ctx) (string, error), to
// Provider, so that whatever already feeds that credential can also authenticate an
// obo.App. Such callbacks receive no audience: they return assertions whose audience is fixed,
// as federated tokens (a Kubernetes service account token, a GitHub Actions token, a managed
// identity's token for api://AzureADTokenExchange) are. For those, prefer
// credential.NewFederatedCredential, which also caches the token and explains Entra's refusals.
func FromCallback(getAssertion func(ctx context.Context) (string, error)) Provider {
	if getAssertion == nil {
		return ProviderFunc(nil)
	}
	return ProviderFunc(func(ctx context.Context, _ string) (string, error) { return getAssertion(ctx) })
}

var _ Provider = ProviderFunc(nil)
