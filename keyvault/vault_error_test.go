package keyvault

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/stretchr/testify/require"
)

// TestVaultErrorClassification: Key Vault's 403 answers are told apart by their inner error
// code (FACTS, "Recorded behaviour"): network refusals are not disabled objects, whatever their
// message says.
func TestVaultErrorClassification(t *testing.T) {
	kv := ObjectURL{Vault: "https://myvault.vault.azure.net", Collection: "secrets", Name: "app-cert"}
	hsm := ObjectURL{Vault: "https://myhsm.managedhsm.azure.net", Collection: "keys", Name: "hsm-key"}
	body := func(code, inner, msg string) []byte {
		b := `{"error":{"code":"` + code + `","message":"` + msg + `"`
		if inner != "" {
			b += `,"innererror":{"code":"` + inner + `"}`
		}
		return []byte(b + `}}`)
	}
	for _, tc := range []struct {
		name      string
		op        string
		obj       ObjectURL
		body      []byte
		is, isNot []error
		hint      string
	}{
		{"public network access disabled", "secrets/get", kv,
			body("Forbidden", "ForbiddenByConnection", "Public network access is disabled and request is not from a trusted service nor via an approved private link."),
			[]error{ErrNetworkRefused, ErrAccessDenied}, []error{ErrDisabled}, "private endpoint"},
		{"firewall", "secrets/get", kv,
			body("Forbidden", "ForbiddenByFirewall", "Client address is not authorized and caller is not a trusted service."),
			[]error{ErrNetworkRefused, ErrAccessDenied}, []error{ErrDisabled}, "firewall"},
		{"network refusal without inner error", "secrets/get", kv,
			body("Forbidden", "", "Public network access is disabled and request is not from a trusted service nor via an approved private link."),
			[]error{ErrNetworkRefused}, []error{ErrDisabled}, "network rules"},
		{"disabled secret", "secrets/get", kv, body("Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret."),
			[]error{ErrDisabled}, []error{ErrAccessDenied, ErrNetworkRefused}, "enable it"},
		{"disabled key", "keys/sign", hsm, body("Forbidden", "KeyDisabled", "Operation sign is not allowed on a disabled key."),
			[]error{ErrDisabled}, []error{ErrAccessDenied}, "enable it"},
		{"disabled certificate", "certificates/get", kv, body("Forbidden", "CertificateDisabled", "Operation get is not allowed on a disabled certificate."),
			[]error{ErrDisabled}, []error{ErrAccessDenied}, "enable it"},
		{"RBAC", "secrets/get", kv, body("Forbidden", "ForbiddenByRbac", "Caller is not authorized to perform action on resource."),
			[]error{ErrAccessDenied}, []error{ErrNetworkRefused, ErrDisabled}, `"Key Vault Secrets User" role`},
		{"access policy", "secrets/get", kv, body("Forbidden", "AccessDenied", "The user, group or application does not have secrets get permission."),
			[]error{ErrAccessDenied}, []error{ErrNetworkRefused}, "access policy with Get on secrets"},
		{"Managed HSM", "keys/sign", hsm, body("AccessDenied", "", "Not authorized to access Microsoft.KeyVault/managedHsm/keys/sign/action on /keys/hsm-key"),
			[]error{ErrAccessDenied}, []error{ErrNetworkRefused}, `"Managed HSM Crypto User" role of the Managed HSM's local RBAC`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{
				StatusCode: http.StatusForbidden,
				Header:     http.Header{"Content-Type": {"application/json"}},
				Body:       io.NopCloser(bytes.NewReader(tc.body)),
				Request:    httptest.NewRequest(http.MethodGet, tc.obj.String()+"?api-version=7.5", nil),
			}
			err := vaultError(tc.op, tc.obj, runtime.NewResponseError(resp))
			for _, s := range tc.is {
				require.ErrorIs(t, err, s)
			}
			for _, s := range tc.isNot {
				require.False(t, errors.Is(err, s), "wraps %v: %v", s, err)
			}
			require.ErrorContains(t, err, tc.hint)
			if tc.obj == hsm {
				require.NotContains(t, err.Error(), "access policy with")
			}
		})
	}
}
