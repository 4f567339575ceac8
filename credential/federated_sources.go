package credential

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/azcredkit/azcredkit/internal/safetext"
)

// ErrInvalidFederatedToken is wrapped by the errors of the federated token sources for a token
// that cannot be presented: an empty file, something that is not a JWT, an expired token.
var ErrInvalidFederatedToken = errors.New("invalid federated token")

// MaxFederatedTokenSize bounds a token file and a GitHub Actions answer (Kubernetes and GitHub
// tokens are 1 to 2 KB).
const MaxFederatedTokenSize = 64 << 10

// TokenFileRereadInterval is the longest a token file's content is used without reading the file
// again; it is also read again as soon as its size or modification time changes.
const TokenFileRereadInterval = 5 * time.Minute

// TokenFileSource is the source of a FederatedCredential for a token that another process keeps
// in a file: the service account token that Kubernetes workload identity projects into the pod
// (AZURE_FEDERATED_TOKEN_FILE; the kubelet replaces it when 80% of its life has passed, at least
// hourly), or any identity provider's token written by a sidecar.
//
// GetToken returns the file's content as the token, with the expiry of its exp claim. The file is
// read again when its size or modification time changes and at least every 5 minutes (as the
// token it returns asks to be refreshed 5 minutes after the read), so a rotated token is used
// within minutes; azidentity.WorkloadIdentityCredential reads the file every 10 minutes. When the
// file cannot be read but the token read before is still valid, that token is returned.
//
//	src, err := credential.NewTokenFileSource(os.Getenv("AZURE_FEDERATED_TOKEN_FILE"))
//	cred, err := credential.NewFederatedCredential(tenantID, clientID, src, nil)
type TokenFileSource struct {
	path string
	mu   sync.Mutex
	cur  *fileToken // guarded by mu
}

type fileToken struct {
	tok     azcore.AccessToken
	modTime time.Time
	size    int64
	readAt  time.Time
}

// NewTokenFileSource returns a source that reads the token in the file at path. It does no I/O.
func NewTokenFileSource(path string) (*TokenFileSource, error) {
	if strings.TrimSpace(path) == "" {
		return nil, optionsError{errors.New("TokenFileSource: the path is empty: set it to the token file (Kubernetes workload identity: AZURE_FEDERATED_TOKEN_FILE, set by the workload identity webhook for pods labelled azure.workload.identity/use: \"true\")")}
	}
	return &TokenFileSource{path: path}, nil
}

// Path returns the file's path.
func (s *TokenFileSource) Path() string { return s.path }

// GetToken returns the token in the file, whatever the scopes (the file's token has the audience
// it was issued for). It implements azcore.TokenCredential.
func (s *TokenFileSource) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if err := ctx.Err(); err != nil {
		return azcore.AccessToken{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	fi, err := os.Stat(s.path)
	if err == nil && s.cur != nil && fi.ModTime().Equal(s.cur.modTime) && fi.Size() == s.cur.size && now.Sub(s.cur.readAt) < TokenFileRereadInterval {
		return s.cur.tok, nil
	}
	var next *fileToken
	if err == nil {
		next, err = s.read(fi, now)
	}
	if err != nil {
		err = s.fileError(err)
		if s.cur != nil && now.Before(s.cur.tok.ExpiresOn) {
			return s.cur.tok, nil // keep serving the valid token read before
		}
		return azcore.AccessToken{}, err
	}
	s.cur = next
	return next.tok, nil
}

func (s *TokenFileSource) read(fi fs.FileInfo, now time.Time) (*fileToken, error) {
	if fi.IsDir() {
		return nil, fmt.Errorf("%w: it is a directory", ErrInvalidFederatedToken)
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFederatedTokenSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFederatedTokenSize {
		return nil, fmt.Errorf("%w: more than %d bytes, which no token is", ErrInvalidFederatedToken, MaxFederatedTokenSize)
	}
	token := string(bytes.TrimSpace(data))
	if token == "" {
		return nil, fmt.Errorf("%w: the file is empty", ErrInvalidFederatedToken)
	}
	tok, err := federatedAccessToken(token, now)
	if err != nil {
		return nil, err
	}
	// Ask to be refreshed (read again) 5 minutes from now, or earlier as the token cache decides.
	if r := now.Add(TokenFileRereadInterval); r.Before(tok.ExpiresOn) {
		tok.RefreshOn = r
	}
	return &fileToken{tok: tok, modTime: fi.ModTime(), size: fi.Size(), readAt: now}, nil
}

func (s *TokenFileSource) fileError(err error) error {
	what := "TokenFileSource: token file " + safetext.Clip(s.path, 300)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist (Kubernetes: is the pod labelled azure.workload.identity/use: \"true\" and its service account annotated with the app's client ID, so that the token is projected?): %w", what, err)
	case errors.Is(err, ErrInvalidFederatedToken):
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s cannot be read: %w", what, err)
}

// federatedAccessToken checks that token is an unexpired JWT and returns it with its expiry.
func federatedAccessToken(token string, now time.Time) (azcore.AccessToken, error) {
	p, err := decodePresented(token)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("%w: %w", ErrInvalidFederatedToken, err)
	}
	if p.exp.IsZero() {
		return azcore.AccessToken{}, fmt.Errorf("%w: the token (issuer %q, subject %q) has no exp claim", ErrInvalidFederatedToken, p.iss, p.sub)
	}
	if !now.Before(p.exp) {
		return azcore.AccessToken{}, fmt.Errorf("%w: the token (issuer %q, subject %q) expired at %s: whatever writes it has stopped renewing it", ErrInvalidFederatedToken, p.iss, p.sub, p.exp.UTC().Format(time.RFC3339))
	}
	return azcore.AccessToken{Token: token, ExpiresOn: p.exp}, nil
}

// GitHubActionsSourceOptions configure NewGitHubActionsSource. nil means the defaults.
type GitHubActionsSourceOptions struct {
	// ClientOptions: the pipeline to the GitHub Actions token endpoint (Transport, Retry...).
	// Optional.
	azcore.ClientOptions
	// RequestURL is the job's token endpoint: "" means $ACTIONS_ID_TOKEN_REQUEST_URL. Optional.
	RequestURL string
	// RequestToken authenticates the request: "" means $ACTIONS_ID_TOKEN_REQUEST_TOKEN. Optional.
	RequestToken string
}

// GitHubActionsSource is the source of a FederatedCredential in a GitHub Actions job: the job's
// OIDC token (issuer https://token.actions.githubusercontent.com, subject for example
// "repo:{owner}/{repo}:ref:refs/heads/main" or "repo:{owner}/{repo}:environment:{name}"),
// requested for the audience of the FederatedCredential (api://AzureADTokenExchange). The job
// needs "permissions: id-token: write", which makes GitHub set ACTIONS_ID_TOKEN_REQUEST_URL and
// ACTIONS_ID_TOKEN_REQUEST_TOKEN. Errors never contain the request token or the token.
//
//	src, err := credential.NewGitHubActionsSource(nil)
//	cred, err := credential.NewFederatedCredential(tenantID, clientID, src, nil)
type GitHubActionsSource struct {
	u     *url.URL
	token string
	pl    runtime.Pipeline
}

// NewGitHubActionsSource returns a source that asks the job's token endpoint for tokens. It reads
// the two variables (when the options do not set them) and does no network I/O.
func NewGitHubActionsSource(options *GitHubActionsSourceOptions) (*GitHubActionsSource, error) {
	var o GitHubActionsSourceOptions
	if options != nil {
		o = *options
	}
	if o.RequestURL == "" {
		o.RequestURL = os.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL")
	}
	if o.RequestToken == "" {
		o.RequestToken = os.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	}
	var missing []string
	if o.RequestURL == "" {
		missing = append(missing, "ACTIONS_ID_TOKEN_REQUEST_URL")
	}
	if o.RequestToken == "" {
		missing = append(missing, "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	}
	if len(missing) > 0 {
		return nil, optionsError{fmt.Errorf("GitHubActionsSource: %s not set: run in a GitHub Actions job with \"permissions: id-token: write\" (GitHub sets both only then)", strings.Join(missing, " and "))}
	}
	u, err := url.Parse(o.RequestURL)
	if err != nil || u.Host == "" || u.Scheme != "https" {
		return nil, optionsError{errors.New("GitHubActionsSource: the request URL (ACTIONS_ID_TOKEN_REQUEST_URL) is not an https URL")}
	}
	co := o.ClientOptions
	// The answer holds the token, the request the request token: never log either.
	co.Logging.IncludeBody = false
	co.Logging.AllowedHeaders = withoutAuthorization(co.Logging.AllowedHeaders)
	return &GitHubActionsSource{u: u, token: o.RequestToken, pl: runtime.NewPipeline("azcredkit", "v0.1.0", runtime.PipelineOptions{}, &co)}, nil
}

func withoutAuthorization(headers []string) []string {
	var out []string
	for _, h := range headers {
		if !strings.EqualFold(h, "Authorization") {
			out = append(out, h)
		}
	}
	return out
}

// GetToken asks the job's token endpoint for a token whose audience is opts' one scope without
// "/.default". It implements azcore.TokenCredential.
func (s *GitHubActionsSource) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 || opts.Scopes[0] == "" {
		return azcore.AccessToken{}, fmt.Errorf("GitHubActionsSource: %w: exactly one scope is needed, the audience followed by /.default (for example %s/.default)", ErrInvalidScopes, TokenExchangeAudience)
	}
	aud := strings.TrimSuffix(opts.Scopes[0], "/.default")
	u := *s.u
	q := u.Query()
	q.Set("audience", aud)
	u.RawQuery = q.Encode()
	req, err := runtime.NewRequest(ctx, http.MethodGet, u.String())
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("GitHubActionsSource: %w", err)
	}
	req.Raw().Header.Set("Authorization", "bearer "+s.token)
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := s.pl.Do(req)
	where := "the GitHub Actions token endpoint (" + s.u.Host + ")"
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("GitHubActionsSource: requesting a token for audience %q from %s: %w", aud, where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = ": the job needs \"permissions: id-token: write\", and the request token is valid only while the job runs"
		}
		return azcore.AccessToken{}, fmt.Errorf("GitHubActionsSource: %s answered HTTP %d for audience %q%s", where, resp.StatusCode, aud, hint)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxFederatedTokenSize+1))
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("GitHubActionsSource: reading the answer of %s: %w", where, err)
	}
	var body struct {
		Value string `json:"value"`
	}
	if len(data) > MaxFederatedTokenSize || json.Unmarshal(data, &body) != nil || body.Value == "" {
		return azcore.AccessToken{}, fmt.Errorf("GitHubActionsSource: %w: %s answered HTTP 200 without a token in {\"value\": ...} (%d bytes)", ErrInvalidFederatedToken, where, len(data))
	}
	tok, err := federatedAccessToken(body.Value, time.Now())
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("GitHubActionsSource: %s: %w", where, err)
	}
	return tok, nil
}

var (
	_ azcore.TokenCredential = (*TokenFileSource)(nil)
	_ azcore.TokenCredential = (*GitHubActionsSource)(nil)
)
