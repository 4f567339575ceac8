package assertion_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/assertion"
	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// panickySigner is a user's Signer with a bug.
type panickySigner struct {
	assertion.Signer
	gate chan struct{}
}

func (s *panickySigner) Sign(context.Context, []byte) ([]byte, error) {
	<-s.gate
	var sessions []int
	return nil, fmt.Errorf("session %d", sessions[len(s.gate)+1]) // index out of range: a runtime panic
}

// A panic in the Signer runs inside the signature shared by concurrent callers: it must become an
// error for each of them, not kill the process.
func TestBuilderSignerPanicBecomesError(t *testing.T) {
	key := testcerts.RSA(2048, 2)
	cert := testcerts.Cert(key, testcerts.Options{})
	s := &panickySigner{Signer: localSigner(t, key, ""), gate: make(chan struct{})}
	b, err := assertion.NewBuilder(clientID, []*x509.Certificate{cert}, s, nil)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Assertion(context.Background(), aud)
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(s.gate)
	wg.Wait()
	for _, err := range errs {
		require.ErrorIs(t, err, assertion.ErrPanic)
		require.ErrorContains(t, err, "*assertion_test.panickySigner")
		require.ErrorContains(t, err, "index out of range")
		require.ErrorContains(t, err, assertion.Thumbprint(cert))
	}
}

// panickyAlgSigner panics in Algorithm, which NewBuilder calls.
type panickyAlgSigner struct{ assertion.Signer }

func (panickyAlgSigner) Algorithm() string { panic(errors.New("not initialised")) }

func TestNewBuilderSignerPanicBecomesError(t *testing.T) {
	key := testcerts.RSA(2048, 2)
	cert := testcerts.Cert(key, testcerts.Options{})
	b, err := assertion.NewBuilder(clientID, []*x509.Certificate{cert}, panickyAlgSigner{}, nil)
	require.Nil(t, b)
	require.ErrorIs(t, err, assertion.ErrPanic)
	require.ErrorContains(t, err, "not initialised")
}
