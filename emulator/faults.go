package emulator

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/azcredkit/azcredkit/internal/emulator"
)

// Service is the part of an [Emulator] that a [Fault] applies to.
type Service int

// The services faults apply to.
const (
	// EntraID is Entra ID's token endpoint (every grant).
	EntraID Service = iota
	// EntraIDSigningKeys is what token verifiers fetch from Entra ID: the OpenID configuration
	// documents and the signing keys (jwks_uri).
	EntraIDSigningKeys
	// KeyVault is every request to the vault, the 401 challenge included.
	KeyVault
	// KeyVaultSecrets, KeyVaultCertificates and KeyVaultKeys are the vault's requests under
	// /secrets/, /certificates/ and /keys/ (KeyVaultKeys: key reads and keys/sign, the
	// endpoint an HSM credential needs).
	KeyVaultSecrets
	KeyVaultCertificates
	KeyVaultKeys
	// ManagedIdentity is the managed identity endpoint.
	ManagedIdentity
)

// String returns the service's name, such as "KeyVaultKeys".
func (s Service) String() string {
	switch s {
	case EntraID:
		return "EntraID"
	case EntraIDSigningKeys:
		return "EntraIDSigningKeys"
	case KeyVault:
		return "KeyVault"
	case KeyVaultSecrets:
		return "KeyVaultSecrets"
	case KeyVaultCertificates:
		return "KeyVaultCertificates"
	case KeyVaultKeys:
		return "KeyVaultKeys"
	case ManagedIdentity:
		return "ManagedIdentity"
	}
	return fmt.Sprintf("Service(%d)", int(s))
}

// Fault is a failure injected by [Emulator.Inject] into the next Count requests to Service.
// Faults are used up in the order they were injected; a request takes at most one.
type Fault struct {
	// Service the fault applies to; the zero value is EntraID (the token endpoint).
	Service Service
	// Count is how many requests the fault applies to; 0 means 1, and a negative Count applies it
	// to every request until the stop function of Inject is called (an outage).
	Count int
	// Status is the HTTP status to answer, 400 to 599 (429, 500, 503...), with the service's
	// error body (Entra: temporarily_unavailable for 429 and 5xx; Key Vault: Throttled,
	// ServiceUnavailable, InternalServerError); 0 answers normally after Delay.
	Status int
	// RetryAfter, when positive, is sent as the Retry-After header in whole seconds (rounded up);
	// azcore's retry policy waits that long before it tries again.
	RetryAfter time.Duration
	// Delay is how long to wait before answering (latency). The wait ends early, without an
	// answer, when the client gives up or the emulator closes.
	Delay time.Duration
	// Reset closes the connection without an answer (after Delay).
	Reset bool
}

// Inject adds a fault and returns a function that ends it (requests it has not reached yet are
// served normally; calling stop again does nothing). It fails on an unknown Service, a Status
// out of 400 to 599, a negative Delay or RetryAfter, and a fault that would do nothing.
func (e *Emulator) Inject(f Fault) (stop func(), err error) {
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		return nil, fmt.Errorf("emulator: fault status %d is not an error status (400 to 599)", f.Status)
	}
	if f.Delay < 0 || f.RetryAfter < 0 {
		return nil, fmt.Errorf("emulator: fault Delay %v and RetryAfter %v must not be negative", f.Delay, f.RetryAfter)
	}
	if f.Status == 0 && f.Delay == 0 && !f.Reset {
		return nil, fmt.Errorf("emulator: the fault does nothing: set Status, Delay or Reset")
	}
	match, inject, err := e.faultTarget(f.Service)
	if err != nil {
		return nil, err
	}
	var stopped atomic.Bool
	count := f.Count
	if count < 0 {
		count = math.MaxInt32
	}
	inject(emulator.Fault{
		Count:      count,
		Status:     f.Status,
		RetryAfter: f.RetryAfter,
		Delay:      f.Delay,
		Reset:      f.Reset,
		Match:      func(r *http.Request) bool { return !stopped.Load() && match(r) },
	})
	return func() { stopped.Store(true) }, nil
}

// faultTarget returns the request match of a service and the emulator to inject into.
func (e *Emulator) faultTarget(s Service) (func(*http.Request) bool, func(emulator.Fault), error) {
	under := func(prefix string) func(*http.Request) bool {
		return func(r *http.Request) bool { return strings.HasPrefix(strings.ToLower(r.URL.Path), prefix) }
	}
	switch s {
	case EntraID:
		return func(r *http.Request) bool {
			return strings.HasSuffix(strings.ToLower(r.URL.Path), "/oauth2/v2.0/token")
		}, e.entra.Inject, nil
	case EntraIDSigningKeys:
		return func(r *http.Request) bool {
			p := strings.ToLower(r.URL.Path)
			return strings.HasSuffix(p, "/.well-known/openid-configuration") || strings.HasSuffix(p, "/discovery/v2.0/keys") || strings.HasSuffix(p, "/discovery/keys")
		}, e.entra.Inject, nil
	case KeyVault:
		return func(*http.Request) bool { return true }, e.vault.Inject, nil
	case KeyVaultSecrets:
		return under("/secrets/"), e.vault.Inject, nil
	case KeyVaultCertificates:
		return under("/certificates/"), e.vault.Inject, nil
	case KeyVaultKeys:
		return under("/keys/"), e.vault.Inject, nil
	case ManagedIdentity:
		return func(*http.Request) bool { return true }, e.mi.Inject, nil
	}
	return nil, nil, fmt.Errorf("emulator: unknown fault service %v", s)
}

// EntraError is an error answer of Entra ID's token endpoint, for [Emulator.InjectEntraError].
type EntraError struct {
	// Status is the HTTP status; 0 means 401 for invalid_client and 400 otherwise.
	Status int
	// Error is the OAuth error code, such as "invalid_client" or "invalid_grant"; "" means
	// "invalid_request".
	Error string
	// Code is the AADSTS number, such as 7000222 (an expired client secret); 0 for none.
	Code int
	// Description is the message; "AADSTS{Code}: " goes in front of it unless it starts with
	// "AADSTS", and Entra's trace ID, correlation ID and timestamp are appended.
	Description string
	// SubError is the optional suberror, such as "basic_action" or "consent_required".
	SubError string
	// Claims is the optional claims challenge, a JSON object as a string.
	Claims string
}

type pendingEntraError struct {
	left    int
	stopped bool
	answer  EntraError
}

// InjectEntraError answers the next count token requests (every grant; 0 means 1, negative until
// stop is called) with entraErr in Entra's JSON shape, after the request is parsed and before it
// is checked, whatever its credentials. It returns a function that ends it.
func (e *Emulator) InjectEntraError(count int, entraErr EntraError) (stop func()) {
	if count == 0 {
		count = 1
	}
	p := &pendingEntraError{left: count, answer: entraErr}
	e.mu.Lock()
	e.entraErrors = append(e.entraErrors, p)
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		p.stopped = true
		e.mu.Unlock()
	}
}

// entraErrorHook is the Entra emulator's token hook: it answers with the first pending error.
func (e *Emulator) entraErrorHook(*emulator.TokenRequest) *emulator.ErrorResponse {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.entraErrors) > 0 {
		p := e.entraErrors[0]
		if p.stopped || p.left == 0 {
			e.entraErrors = e.entraErrors[1:]
			continue
		}
		if p.left > 0 {
			p.left--
		}
		a := p.answer
		return &emulator.ErrorResponse{Status: a.Status, Error: a.Error, Code: a.Code, Description: a.Description, SubError: a.SubError, Claims: a.Claims}
	}
	return nil
}
