package emulator

// Counts are what clients did to an [Emulator] since it started or since [Emulator.ResetCounts].
type Counts struct {
	// TokenRequests is every request to Entra ID's token endpoint, failed and faulted ones
	// included; FailedTokenRequests those answered with an error.
	TokenRequests, FailedTokenRequests int64
	// ClientCredentialsRequests and OBOExchanges are the token requests with the
	// client_credentials and the On-Behalf-Of grant.
	ClientCredentialsRequests, OBOExchanges int64
	// ManagedIdentityTokens is every request to the managed identity endpoint.
	ManagedIdentityTokens int64
	// GitHubActionsTokens is every request to the GitHub Actions token endpoints
	// (GitHubActionsEnv), refused ones included.
	GitHubActionsTokens int64
	// VaultRequests is every request to the vault, the 401 challenges (VaultChallenges) and
	// faulted requests included.
	VaultRequests, VaultChallenges int64
	// SecretReads, CertificateReads, KeyReads and SignOperations are authenticated requests of
	// those operations (secrets/get, certificates/get, keys/get, keys/sign), those refused for
	// lack of access included; faulted requests count in VaultRequests only.
	SecretReads, CertificateReads, KeyReads, SignOperations int64
	// SigningKeyFetches counts the requests for Entra ID's signing keys (jwks_uri) and
	// OpenIDConfigurationFetches those for the OpenID configuration documents: what a token
	// verifier costs Entra.
	SigningKeyFetches, OpenIDConfigurationFetches int64
}

// Counts returns the counters. Each is read atomically, not all of them at once: read them when
// the clients are done.
func (e *Emulator) Counts() Counts {
	return Counts{
		TokenRequests:              e.entra.Count("token"),
		FailedTokenRequests:        e.entra.Count("token:failed"),
		ClientCredentialsRequests:  e.entra.Count("token:client_credentials"),
		OBOExchanges:               e.entra.Count("token:obo"),
		ManagedIdentityTokens:      e.mi.Count("token"),
		GitHubActionsTokens:        e.gitHubActionsCount("token"),
		VaultRequests:              e.vault.Count("total"),
		VaultChallenges:            e.vault.Count("challenge"),
		SecretReads:                e.vault.Count("secrets/get"),
		CertificateReads:           e.vault.Count("certificates/get"),
		KeyReads:                   e.vault.Count("keys/get"),
		SignOperations:             e.vault.Count("keys/sign"),
		SigningKeyFetches:          e.entra.Count("keys"),
		OpenIDConfigurationFetches: e.entra.Count("openid_configuration"),
	}
}

// ResetCounts sets every counter to 0.
func (e *Emulator) ResetCounts() {
	e.entra.ResetCounts()
	e.vault.ResetCounts()
	e.mi.ResetCounts()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.actions {
		a.ResetCounts()
	}
}
