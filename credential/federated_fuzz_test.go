package credential

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzFederatedToken: whatever a token file or a GitHub answer holds, reading it returns a token
// with its expiry or an error wrapping ErrInvalidFederatedToken; it never panics, and the error
// never holds the input.
func FuzzFederatedToken(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL3giLCJzdWIiOiJzIiwiYXVkIjoiYSIsImV4cCI6OTk5OTk5OTk5OX0.c2ln")
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOiJub3QgYSBudW1iZXIifQ.c2ln")
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiYSIsMSxudWxsXSwiZXhwIjoxZTMwMH0.c2ln")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		tok, err := federatedAccessToken(token, time.Unix(1_700_000_000, 0))
		if err != nil {
			if !errors.Is(err, ErrInvalidFederatedToken) {
				t.Fatalf("error %v does not wrap ErrInvalidFederatedToken", err)
			}
			if len(token) > 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error holds the token")
			}
			return
		}
		if tok.Token != token || tok.ExpiresOn.IsZero() {
			t.Fatalf("token %q, expiry %v", tok.Token, tok.ExpiresOn)
		}
	})
}
