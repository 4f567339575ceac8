// Package emulator runs Microsoft Entra ID and Azure Key Vault on 127.0.0.1 for the tests of your
// own service: no Azure account, no network, no hand-written fake transports. Application code
// won't need this package; its tests will.
//
// [Start] returns an [Emulator] serving three HTTPS endpoints on free ports (like
// net/http/httptest): Entra ID's token service (client credentials with a secret or a
// certificate assertion, On-Behalf-Of, OpenID configuration and signing keys, instance
// discovery), a Key Vault (certificates, secrets, keys and keys/sign, with the 401 challenge) and
// an App Service managed identity endpoint. They behave like the real services where it matters
// to a client: client assertions are verified against the registered certificates (RS256 with
// x5t, PS256 with x5t#S256), errors have Entra's and Key Vault's shapes and codes (AADSTS700027,
// 50076 with a claims challenge, Key Vault 401/403/404...), Key Vault accepts only the tokens of
// its tenant for the apps granted access, and non-exportable certificates can only sign through
// keys/sign.
//
// # Pointing clients at it
//
// [Emulator.ClientOptions] is the azcore.ClientOptions for any client: the authority host and a
// transport that trusts the emulator's TLS certificate and answers MSAL's instance discovery, so
// DisableInstanceDiscovery is optional. Put it in azidentity's, azcredkit's and the Azure SDK
// clients' options. Key Vault clients (azsecrets, azkeys, azcertificates, and
// keyvault.ClientOptions) also need DisableChallengeResourceVerification, because the vault's
// host is 127.0.0.1 and not *.vault.azure.net: [Emulator.KeyVaultClientOptions] has it set.
//
// # What a test can do
//
//   - Register apps with certificates ([Emulator.RegisterApp]) or a secret
//     ([Emulator.RegisterSecretApp]), let them use the vault ([Emulator.GrantVaultAccess]).
//   - Put certificates in the vault: import PKCS#12 or PEM ([Emulator.ImportCertificate]), create
//     exportable or non-exportable (HSM) ones ([Emulator.CreateCertificate]), rotate them
//     ([Emulator.RotateCertificate]); store secrets ([Emulator.SetSecret]).
//   - Issue user tokens ([Emulator.UserToken]) for On-Behalf-Of, and require MFA for a resource
//     ([Emulator.RequireMFA]) to test step-up.
//   - Serve a managed identity ([Emulator.AddManagedIdentity], [Emulator.ManagedIdentityEnv]) to
//     azidentity.ManagedIdentityCredential.
//   - Authenticate apps with no certificate and no secret (workload identity federation): add
//     federated identity credentials ([Emulator.AddFederatedCredential]) that trust a
//     user-assigned managed identity ([Emulator.Issuer], [Emulator.ManagedIdentityObjectID]), a
//     Kubernetes service account token ([Emulator.IssueFederatedToken]) or a GitHub Actions job
//     ([Emulator.GitHubActionsEnv]), for credential.NewFederatedCredential.
//   - Inject faults ([Emulator.Inject]: 429 and 5xx with Retry-After, latency, reset connections,
//     outages of one endpoint; [Emulator.InjectEntraError]: an AADSTS error of your choice) and
//     count what clients did ([Emulator.Counts]).
//
// Every Emulator is independent: its tenants, apps, vault, faults and counters are its own, so
// tests may run several at once. All of them trust one CA per process ([Emulator.CertPool],
// [Emulator.CACertificatePEM]). The emulator is for tests only: nothing in it is secure.
//
// # Other processes and languages
//
// The command github.com/azcredkit/azcredkit/cmd/azcredkit-emulator runs the same emulators as a
// process and prints the environment a service in any language needs (AZURE_AUTHORITY_HOST, the
// vault URL, the CA file to trust).
//
// # Observability
//
// Emulator.Counts counts what the emulators served (token requests, secret reads, sign
// operations...): the service-side view to set beside a credential's own figures (package
// metrics, metrics.Memory in a test) and spans (ClientOptions.TracingProvider works against the
// emulators as against Azure).
package emulator
