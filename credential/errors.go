package credential

import (
	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
)

// AuthenticationError is a token request refused by Microsoft Entra ID. It carries the HTTP
// status, Entra's error and AADSTS code, the correlation and trace IDs, and a hint on what to
// fix; errors.As also finds the *azidentity.AuthenticationFailedError it wraps (with the raw
// response), so code written for azidentity keeps working. Its message never holds a token,
// an assertion or a secret. Errors that did not come from Entra (network failures, cancelled
// contexts, a failing Key Vault) are returned as they are, wrapped with the credential's name.
type AuthenticationError = entra.Error

// optionsError marks a configuration error (tenant, client ID, authority host, a tenant the
// options do not allow) so that errors.Is matches assertion.ErrInvalidOptions; the message is
// err's.
type optionsError struct{ error }

func (e optionsError) Unwrap() []error { return []error{e.error, assertion.ErrInvalidOptions} }
