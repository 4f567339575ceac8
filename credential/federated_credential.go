package credential

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/golang-jwt/jwt/v5"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/entra"
	"github.com/azcredkit/azcredkit/internal/safetext"
	"github.com/azcredkit/azcredkit/internal/tokencache"
)

const credNameFederated = "FederatedCredential"

// Token exchange audiences: the audience of a token that Microsoft Entra ID accepts as a federated
// client assertion, per cloud. NewFederatedCredential asks its source for "{audience}/.default".
const (
	TokenExchangeAudience      = "api://AzureADTokenExchange"
	TokenExchangeAudienceUSGov = "api://AzureADTokenExchangeUSGov"
	TokenExchangeAudienceChina = "api://AzureADTokenExchangeChina"
)

// DefaultPropagationRetry is how long a token request that Entra answers with AADSTS70021 is
// retried by default (see FederatedCredentialOptions.PropagationRetry).
const DefaultPropagationRetry = 30 * time.Second

// FederatedCredentialOptions configure NewFederatedCredential. nil means the defaults.
type FederatedCredentialOptions struct {
	// SignedAssertionCredentialOptions: the pipeline to Entra, tenants, logging. The certificate
	// options (SendCertificateChain, AssertionLifetime) do not apply: leave them unset.
	SignedAssertionCredentialOptions
	// Audience of the source's tokens: "" means the cloud's token exchange audience
	// (api://AzureADTokenExchange in the public cloud and any cloud not known to be US Gov or
	// China, api://AzureADTokenExchangeUSGov, api://AzureADTokenExchangeChina). Set it when the
	// app's federated identity credential names another audience. Optional.
	Audience string
	// PropagationRetry is how long a token request answered AADSTS70021 (no federated identity
	// credential matches the presented token; also seen for a while after a new one was added,
	// while it propagates) is retried, with backoff from 500 ms to 8 s, before the error is
	// returned: 0 means DefaultPropagationRetry (30 s), a negative value no retry. Callers
	// whose context ends first get an error that says so and carries Entra's answer. Optional.
	PropagationRetry time.Duration
}

// FederatedCredential authenticates an app (service principal) with no certificate and no secret:
// its client assertion is a token from a source that the app trusts as a federated identity
// credential (workload identity federation), for example
//
//   - a user-assigned managed identity (azidentity.NewManagedIdentityCredential), for a workload
//     that runs in Azure: the app's record has issuer https://login.microsoftonline.com/{tenant}/v2.0
//     and subject the identity's object (principal) ID; the app may then get tokens in other
//     tenants (a multi-tenant app), not in other clouds;
//   - the Kubernetes service account token that workload identity projects into a file
//     (NewTokenFileSource with AZURE_FEDERATED_TOKEN_FILE);
//   - the OIDC token of a GitHub Actions job (NewGitHubActionsSource).
//
// The source's token is requested for the cloud's token exchange audience and reused until
// shortly before it expires; concurrent callers that find no valid app token share one source
// request and one Entra request. Tokens are cached as by the other credentials of this package.
//
// When Entra finds no matching federated identity credential (AADSTS70021, also seen while a new
// one propagates) the request is retried for PropagationRetry; the error then names the issuer,
// subject and audience of the presented token (decoded, never the token) and what to configure.
// AADSTS700211 (issuer), 700212 (audience), 700222, 700226, 700236 and a token of another cloud
// get their own explanations.
//
// It implements azcore.TokenCredential and assertion.Provider (obo.NewAppWithAssertion runs an
// Easy Auth middle tier on it: no secret, no certificate; the obo.App's own requests are not
// retried on AADSTS70021).
type FederatedCredential struct {
	src  *federatedSource
	tc   *tokenClient
	host string // the authority host, for the cross-cloud hint
	// retry is how long AADSTS70021 is retried; lastNoMatch is the time (unix nanoseconds) of
	// the last such answer, for the error of a caller whose context ended during the retries.
	retry       time.Duration
	lastNoMatch atomic.Int64
	noMatchErr  atomic.Pointer[entra.Error]
}

// NewFederatedCredential authenticates clientID in tenantID with tokens from source as its client
// assertions: for example a user-assigned managed identity that the app trusts as a federated
// identity credential. Tokens for the assertion are requested for Audience.
//
// The source is asked for "{Audience}/.default" with no tenant of its own. NewFederatedCredential
// does no I/O.
func NewFederatedCredential(tenantID, clientID string, source azcore.TokenCredential, options *FederatedCredentialOptions) (*FederatedCredential, error) {
	var o FederatedCredentialOptions
	if options != nil {
		o = *options
	}
	if source == nil {
		return nil, optionsError{fmt.Errorf("%s: the source is nil: pass the credential whose tokens the app trusts, for example azidentity.NewManagedIdentityCredential with the user-assigned identity's client ID, or NewTokenFileSource", credNameFederated)}
	}
	if o.SendCertificateChain || o.AssertionLifetime != 0 {
		return nil, optionsError{fmt.Errorf("%s: SendCertificateChain and AssertionLifetime do not apply: a federated credential presents the source's token, not a certificate assertion", credNameFederated)}
	}
	host, err := entra.AuthorityHost(o.ClientOptions.Cloud)
	if err != nil {
		return nil, optionsError{fmt.Errorf("%s: %w", credNameFederated, err)}
	}
	aud := o.Audience
	if aud == "" {
		aud = exchangeAudience(host)
	}
	if strings.HasSuffix(aud, "/.default") || strings.ContainsAny(aud, " \t\r\n") {
		return nil, optionsError{fmt.Errorf("%s: Audience %q must be the audience itself (for example %s), without /.default or spaces", credNameFederated, safetext.Clip(aud, 100), TokenExchangeAudience)}
	}
	c := &FederatedCredential{host: host, retry: o.PropagationRetry}
	if c.retry == 0 {
		c.retry = DefaultPropagationRetry
	}
	c.src = &federatedSource{source: source, audience: aud, scope: aud + "/.default"}
	c.src.policy = &tokencache.Policy{Observe: entra.Observer(o.Logger, credNameFederated, clientID, "", c.src.scope, slog.String("token", "federated source (client assertion)"))}
	so := o.SignedAssertionCredentialOptions
	if c.retry > 0 {
		// The retry runs inside the token request that the token cache shares among callers:
		// a pipeline policy sees Entra's answer before MSAL turns it into an error.
		so.ClientOptions.PerCallPolicies = append(append([]policy.Policy(nil), so.ClientOptions.PerCallPolicies...), &noMatchRetry{c: c, logger: o.Logger, clientID: clientID})
	}
	c.tc, err = newTokenClient(credNameFederated, tenantID, clientID, c.src, &so)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// exchangeAudience is the token exchange audience of the cloud whose authority host is host.
func exchangeAudience(host string) string {
	switch cloudOf(host) {
	case "US Government":
		return TokenExchangeAudienceUSGov
	case "China":
		return TokenExchangeAudienceChina
	}
	return TokenExchangeAudience
}

// cloudOf names the cloud of an authority or issuer host; "" for hosts not known to be Entra's.
func cloudOf(hostOrURL string) string {
	h := hostOrURL
	if u, err := url.Parse(hostOrURL); err == nil && u.Host != "" {
		h = u.Host
	}
	h = strings.ToLower(h)
	switch {
	case h == "login.microsoftonline.us" || strings.HasSuffix(h, ".microsoftonline.us"):
		return "US Government"
	case h == "login.chinacloudapi.cn" || h == "login.partner.microsoftonline.cn" || strings.HasSuffix(h, ".chinacloudapi.cn"):
		return "China"
	case h == "login.microsoftonline.com" || h == "login.microsoft.com" || h == "login.windows.net" || h == "sts.windows.net":
		return "public"
	}
	return ""
}

// GetToken returns an access token for opts.Scopes (one resource scope ending in "/.default"). It
// implements azcore.TokenCredential.
func (c *FederatedCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.tc.getToken(ctx, &opts)
	if err != nil {
		return tok, c.explain(ctx, err)
	}
	return tok, nil
}

// Assertion returns the source's token, the client assertion this credential presents (the
// audience, a token endpoint, does not change it). It implements assertion.Provider, for example
// for obo.NewAppWithAssertion.
func (c *FederatedCredential) Assertion(ctx context.Context, _ string) (string, error) {
	return c.src.Assertion(ctx, "")
}

// federatedSource caches the source's token, the client assertion: one slot, refreshed in the
// background before it expires, one request for all concurrent callers.
type federatedSource struct {
	source          azcore.TokenCredential
	audience, scope string
	slot            tokencache.Slot
	policy          *tokencache.Policy
	presented       atomic.Pointer[presentedToken]
}

// presentedToken is what the messages may say about the presented token: its issuer, subject and
// audience, clipped; never the token.
type presentedToken struct {
	iss, sub, aud string
	exp           time.Time
}

// Assertion implements assertion.Provider.
func (s *federatedSource) Assertion(ctx context.Context, _ string) (string, error) {
	tok, err := s.slot.Get(ctx, s.policy, s.fetch)
	if err != nil {
		return "", err
	}
	return tok.Token, nil
}

func (s *federatedSource) fetch(ctx context.Context) (tok azcore.AccessToken, err error) {
	defer func() {
		if r := recover(); r != nil {
			tok, err = azcore.AccessToken{}, fmt.Errorf("%s: the source (%T) panicked getting a token for %s: %v", credNameFederated, s.source, s.scope, r)
		}
	}()
	tok, err = s.source.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("%s: getting the token to present as client assertion from the source (%T) for %s: %w", credNameFederated, s.source, s.scope, err)
	}
	p, perr := decodePresented(tok.Token)
	if perr != nil {
		return azcore.AccessToken{}, fmt.Errorf("%s: the source (%T) returned a token for %s that is %w", credNameFederated, s.source, s.scope, perr)
	}
	// The assertion must not outlive the token's own exp, whatever the source says.
	if !p.exp.IsZero() && (tok.ExpiresOn.IsZero() || p.exp.Before(tok.ExpiresOn)) {
		tok.ExpiresOn = p.exp
	}
	switch {
	case tok.ExpiresOn.IsZero():
		return azcore.AccessToken{}, fmt.Errorf("%s: the source (%T) returned a token for %s with no expiry (no exp claim): %w", credNameFederated, s.source, s.scope, ErrInvalidFederatedToken)
	case !time.Now().Before(tok.ExpiresOn):
		return azcore.AccessToken{}, fmt.Errorf("%s: the source (%T) returned a token for %s (issuer %q, subject %q) that expired at %s: %w", credNameFederated, s.source, s.scope, p.iss, p.sub, tok.ExpiresOn.UTC().Format(time.RFC3339), ErrInvalidFederatedToken)
	}
	s.presented.Store(p)
	return tok, nil
}

// maxPresentedToken bounds the token decoded for messages and expiry.
const maxPresentedToken = 64 << 10

// errNotJWT: Entra accepts only JWTs as federated client assertions.
var errNotJWT = errors.New("not a JWT (Microsoft Entra ID accepts only a JWT as a federated client assertion)")

// decodePresented decodes (without verifying: it is only for messages and the expiry) the claims
// of a token.
func decodePresented(token string) (*presentedToken, error) {
	if token == "" {
		return nil, errors.New("empty")
	}
	if len(token) > maxPresentedToken {
		return nil, fmt.Errorf("%d bytes long, more than a token can be: %w", len(token), errNotJWT)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		return nil, errNotJWT
	}
	p := &presentedToken{}
	p.iss, _ = claims["iss"].(string)
	p.sub, _ = claims["sub"].(string)
	switch a := claims["aud"].(type) {
	case string:
		p.aud = a
	case []any:
		var auds []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				auds = append(auds, s)
			}
		}
		p.aud = strings.Join(auds, ",")
	}
	p.iss, p.sub, p.aud = safetext.Clip(p.iss, 200), safetext.Clip(p.sub, 200), safetext.Clip(p.aud, 200)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.exp = exp.Time
	}
	return p, nil
}

// tokenExchangeAppID is the aud Entra puts in its tokens for api://AzureADTokenExchange.
const tokenExchangeAppID = "fb60f99c-7a34-4190-8149-302f77469936"

// explain returns err with a hint for federation refusals: an *AuthenticationError (a copy: the
// original is shared by the callers of one request) whose Hint names the presented token's
// issuer, subject and audience and what to configure.
func (c *FederatedCredential) explain(ctx context.Context, err error) error {
	var ee *entra.Error
	if !errors.As(err, &ee) {
		// A caller whose context ended while the request was retried after AADSTS70021.
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) && time.Since(time.Unix(0, c.lastNoMatch.Load())) < c.retry+time.Minute {
			if last := c.noMatchErr.Load(); last != nil {
				return &waitedNoMatch{err: err, last: c.decorate(last)}
			}
		}
		return err
	}
	if err != error(ee) { // wrapped by something else: leave it as it is
		return err
	}
	return c.decorate(ee)
}

// decorate returns a copy of ee with a federation hint, or ee when there is none.
func (c *FederatedCredential) decorate(ee *entra.Error) *entra.Error {
	h := c.hint(ee)
	if h == "" {
		return ee
	}
	cp := *ee
	cp.Hint = h
	return &cp
}

// waitedNoMatch is the error of a caller whose context ended while AADSTS70021 was retried: it
// wraps the context's error and Entra's last answer (errors.As finds the
// *azidentity.AuthenticationFailedError).
type waitedNoMatch struct {
	err  error
	last *entra.Error
}

func (e *waitedNoMatch) Error() string {
	return e.err.Error() + "; meanwhile the request was being retried after: " + e.last.Error()
}

func (e *waitedNoMatch) Unwrap() []error { return []error{e.err, e.last} }

func (*waitedNoMatch) NonRetriable() {}

// hint explains Entra's refusals of a federated client assertion. Sources of the codes and their
// meaning:
//   - 70021 (no matching record; also during propagation): Microsoft's "Important considerations
//     and restrictions for federated identity credentials" (learn.microsoft.com/entra/workload-id/
//     workload-identity-federation-considerations), which FACTS.md records.
//   - 700222 "AAD-issued tokens may not be used for federated identity flows": the same page, for
//     records whose issuer is Entra itself (login.microsoftonline.com, sts.windows.net...), and
//     MicrosoftDocs/azure-docs#116459 and #90321; since managed identities may be trusted, it
//     remains the answer for Entra-issued tokens that are not a same-tenant, same-cloud
//     user-assigned managed identity's.
//   - 700211 (issuer), 7002121/700212 (audience), 700226 "Only MSI tokens may be used as Federated
//     Identity Credentials for AAD issuer", 700236 "Entra ID tokens issued by issuer ... may not be
//     used ... for applications or managed identities registered in this tenant": the failure
//     modes recorded in arsenvlad/entra-cross-tenant-app-fic-managed-identity, and users' reports
//     (Azure/login#517 for the case-sensitive subject).
//   - Cross-cloud: "Configure an application to trust a managed identity" says the app and the
//     identity share a tenant and that other clouds are not supported, without naming a code; a
//     wrong authority host for the tenant's cloud is AADSTS900382 "Confidential Client is not
//     supported in Cross Cloud request" (MicrosoftDocs/azure-docs#35616, #45945). So the
//     cross-cloud explanation is derived from the presented token (an Entra issuer of another host
//     than the authority, or another cloud's token exchange audience), whatever the code.
func (c *FederatedCredential) hint(ee *entra.Error) string {
	p := c.src.presented.Load()
	if p == nil {
		p = &presentedToken{}
	}
	tok := fmt.Sprintf("the presented token (issuer %q, subject %q, audience %q)", p.iss, p.sub, p.aud)
	app := "app registration " + ee.ClientID
	record := fmt.Sprintf("a federated identity credential on %s (Certificates & secrets > Federated credentials) with exactly issuer %q and subject %q (both case-sensitive) and audience %q", app, p.iss, p.sub, c.src.audience)
	mi := "for a user-assigned managed identity the issuer is https://login.microsoftonline.com/{tenant of the app}/v2.0 and the subject is the identity's object (principal) ID, not its client ID"
	cross := c.crossCloud(p)
	var h string
	switch ee.AADSTS {
	case 70021, 700213, 7002138:
		retried := fmt.Sprintf("the request was retried for up to %v", c.retry.Round(100*time.Millisecond))
		if c.retry < 0 {
			retried = "set FederatedCredentialOptions.PropagationRetry to retry meanwhile"
		}
		h = fmt.Sprintf("no federated identity credential matches %s: add %s; %s. A credential added minutes ago may still be propagating: %s", tok, record, mi, retried)
	case 700211:
		h = fmt.Sprintf("no federated identity credential on %s has the issuer of %s: add %s; %s", app, tok, record, mi)
	case 700212, 7002121:
		h = fmt.Sprintf("the audience of %s is not the audience of the app's federated identity credential: the source was asked for %q; set FederatedCredentialOptions.Audience to the credential's audience, or the credential's audience to %q", tok, c.src.audience, c.src.audience)
	case 700222:
		h = fmt.Sprintf("Entra refuses %s as a federated credential: a token issued by Microsoft Entra ID is accepted only from a user-assigned managed identity of the app's own tenant and cloud (not from another app, a system-assigned identity or another cloud)", tok)
	case 700226:
		h = fmt.Sprintf("%s was issued by Microsoft Entra ID to something that is not a managed identity (an app?): only a user-assigned managed identity's token can be trusted this way; use azidentity.NewManagedIdentityCredential with the identity's client ID as the source", tok)
	case 700236:
		h = fmt.Sprintf("%s comes from a managed identity of another tenant than app %s: the app registration and the managed identity must be in the same tenant (the app can still get tokens in other tenants where it has a service principal: TokenRequestOptions.TenantID and AdditionallyAllowedTenants)", tok, ee.ClientID)
	case 900382:
		h = fmt.Sprintf("the authority host %s is not the cloud of tenant %s: set ClientOptions.Cloud to the tenant's cloud", c.host, ee.Tenant)
	case 700024:
		h = fmt.Sprintf("%s is expired or not yet valid (expiry %s): check the source and this machine's clock", tok, p.exp.UTC().Format(time.RFC3339))
	case 50013, 50027:
		h = fmt.Sprintf("Entra could not validate %s (signature, format or issuer keys): check that the source is the identity provider the app's federated identity credential names", tok)
	default:
		return ""
	}
	if cross != "" {
		h = cross + "; " + h
	}
	return h
}

// crossCloud explains a presented token of another cloud: an Entra-issued token whose issuer host
// is not this credential's authority host, or a token exchange audience of another cloud.
func (c *FederatedCredential) crossCloud(p *presentedToken) string {
	u, err := url.Parse(p.iss)
	if err != nil || u.Host == "" {
		return ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	entraShaped := cloudOf(u.Host) != "" || len(parts) == 2 && parts[1] == "v2.0"
	ah, _ := url.Parse(c.host)
	if entraShaped && ah != nil && !strings.EqualFold(u.Host, ah.Host) {
		from, to := cloudOf(u.Host), cloudOf(c.host)
		if from == "" {
			from = u.Host
		}
		if to == "" {
			to = ah.Host
		}
		return fmt.Sprintf("the presented token was issued by Microsoft Entra ID of another cloud (%s) than this credential's authority (%s): federation with a managed identity works across tenants but not across clouds; use an identity of the app's cloud, asked for %s", from, to, exchangeAudience(c.host))
	}
	aud := p.aud
	if aud == tokenExchangeAppID { // Entra's aud for api://AzureADTokenExchange
		aud = TokenExchangeAudience
	}
	if want := exchangeAudience(c.host); (aud == TokenExchangeAudienceUSGov || aud == TokenExchangeAudienceChina || aud == TokenExchangeAudience) && aud != want {
		return fmt.Sprintf("the presented token is for %s, the token exchange audience of another cloud than this credential's authority (%s), whose audience is %s", aud, c.host, want)
	}
	return ""
}

var (
	_ azcore.TokenCredential = (*FederatedCredential)(nil)
	_ assertion.Provider     = (*FederatedCredential)(nil)
)
