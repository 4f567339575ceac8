package assertion_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
)

func TestProviderFunc(t *testing.T) {
	ctx := context.Background()
	var got string
	p := assertion.ProviderFunc(func(_ context.Context, audience string) (string, error) {
		got = audience
		return "a.b.c", nil
	})
	a, err := p.Assertion(ctx, "https://login.example/t/oauth2/v2.0/token")
	require.NoError(t, err)
	require.Equal(t, "a.b.c", a)
	require.Equal(t, "https://login.example/t/oauth2/v2.0/token", got)

	boom := errors.New("boom")
	for name, c := range map[string]struct {
		p    assertion.Provider
		is   error
		says string
	}{
		"error":     {assertion.ProviderFunc(func(context.Context, string) (string, error) { return "x", boom }), boom, "boom"},
		"panic":     {assertion.ProviderFunc(func(context.Context, string) (string, error) { panic("bug") }), nil, "panicked"},
		"empty":     {assertion.ProviderFunc(func(context.Context, string) (string, error) { return "", nil }), nil, "empty"},
		"nil func":  {assertion.ProviderFunc(nil), assertion.ErrInvalidOptions, "nil"},
		"nil cb":    {assertion.FromCallback(nil), assertion.ErrInvalidOptions, "nil"},
		"cb panics": {assertion.FromCallback(func(context.Context) (string, error) { panic("bug") }), nil, "panicked"},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := c.p.Assertion(ctx, "aud")
			require.Error(t, err)
			require.Empty(t, a)
			require.Contains(t, err.Error(), c.says)
			if c.is != nil {
				require.ErrorIs(t, err, c.is)
			}
		})
	}
	a, err = assertion.FromCallback(func(context.Context) (string, error) { return "x.y.z", nil }).Assertion(ctx, "ignored")
	require.NoError(t, err)
	require.Equal(t, "x.y.z", a)
}
