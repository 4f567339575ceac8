package keyvault_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/keyvault"
)

// Key Vault's messages end with a period: the joined message must not read "secret.. To fix".
func TestErrorMessageHasNoDoublePeriod(t *testing.T) {
	e := &keyvault.Error{Op: "secrets/get", StatusCode: 403, Code: "Forbidden", InnerCode: "SecretDisabled",
		Message: "Operation get is not allowed on a disabled secret.", Hint: "enable the secret version"}
	require.Contains(t, e.Error(), "disabled secret. To fix: enable")
	require.NotContains(t, e.Error(), "..")
	e.Message = "no period"
	require.Contains(t, e.Error(), "no period. To fix: enable")
}
