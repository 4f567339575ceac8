package credential

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/azcredkit/azcredkit/internal/entra"
)

// Backoff of the AADSTS70021 retries: 500 ms, 1 s, 2 s, 4 s, then 8 s, each with ±10% jitter.
const (
	noMatchFirstDelay = 500 * time.Millisecond
	noMatchMaxDelay   = 8 * time.Second
)

// noMatchRetry retries token requests that Entra answers with AADSTS70021: no federated identity
// credential matches the presented token, which is also what Entra answers for a while after a
// new one was added (Microsoft's "Important considerations and restrictions for federated
// identity credentials": "It takes time for the federated identity credential to be propagated
// throughout a region after being initially configured... an authorization request might fail
// with error message: AADSTS70021").
//
// It is a per-call policy of the pipeline to Entra: it sees the answer before MSAL turns it into
// an error, and it runs inside the one token request that the token cache shares among concurrent
// callers, so N callers still cost one request (and its retries). MSAL's form body is an
// in-memory copy that azcore rewinds, so resending it is safe. Retries end after c.retry in all,
// when the request's context ends, or at the first answer that is not AADSTS70021.
type noMatchRetry struct {
	c        *FederatedCredential
	logger   *slog.Logger
	clientID string
}

func (p *noMatchRetry) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	if raw.Method != http.MethodPost || !strings.HasSuffix(raw.URL.Path, "/oauth2/v2.0/token") {
		return req.Next()
	}
	start := time.Now()
	delay := noMatchFirstDelay
	for attempt := 1; ; attempt++ {
		resp, err := req.Next()
		if err != nil || !p.isNoMatch(req, resp) {
			return resp, err
		}
		p.c.lastNoMatch.Store(time.Now().UnixNano())
		wait := delay + time.Duration((rand.Float64()*0.2-0.1)*float64(delay))
		if time.Since(start)+wait > p.c.retry {
			return resp, nil
		}
		if pt := p.c.src.presented.Load(); pt != nil {
			entra.Log(p.logger, slog.LevelWarn, credNameFederated, "Entra found no federated identity credential matching the presented token (AADSTS70021); retrying in case a new one is still propagating",
				slog.String("client_id", p.clientID), slog.String("issuer", pt.iss), slog.String("subject", pt.sub), slog.String("audience", pt.aud),
				slog.Int("attempt", attempt), slog.Duration("retry_in", wait))
		}
		_ = resp.Body.Close()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-raw.Context().Done():
			t.Stop()
			return nil, raw.Context().Err()
		}
		if err := req.RewindBody(); err != nil {
			return nil, err
		}
		delay = min(2*delay, noMatchMaxDelay)
	}
}

// isNoMatch reports whether resp is Entra's AADSTS70021 answer, and keeps it for the error of
// callers whose context ends during the retries. The body (bounded) is put back for MSAL.
func (p *noMatchRetry) isNoMatch(req *policy.Request, resp *http.Response) bool {
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized || resp.Body == nil {
		return false
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, entra.MaxErrorBody))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	if err != nil {
		return false
	}
	var b struct {
		ErrorCodes []int `json:"error_codes"`
	}
	if json.Unmarshal(data, &b) != nil || len(b.ErrorCodes) == 0 || b.ErrorCodes[0] != 70021 {
		return false
	}
	// For the error of callers whose context ends meanwhile: NewError reads the body and puts it
	// back, so resp stays readable for MSAL.
	tenant, _, _ := strings.Cut(strings.TrimPrefix(req.Raw().URL.Path, "/"), "/")
	p.c.noMatchErr.Store(entra.NewError(credNameFederated, p.clientID, tenant, requestScopes(req), resp))
	return true
}

// requestScopes reads the scope of the token request's form (an in-memory body).
func requestScopes(req *policy.Request) []string {
	body := req.Body()
	if body == nil {
		return nil
	}
	defer func() { _ = req.RewindBody() }()
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(body, 1<<20))
	if err != nil {
		return nil
	}
	form, err := url.ParseQuery(string(data))
	if err != nil {
		return nil
	}
	return strings.Fields(form.Get("scope"))
}
