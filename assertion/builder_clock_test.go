package assertion

import (
	"context"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/azcredkit/azcredkit/internal/testcerts"
)

// afterSuspend returns what time.Now returns after the machine slept for d since t: the wall
// clock moved on by d, the monotonic clock did not (it stops during a suspend). Go offers no way
// to build such a time, so the test sets the monotonic reading of t.Add(d) back to t's.
func afterSuspend(t testing.TB, t0 time.Time, d time.Duration) time.Time {
	t.Helper()
	t1 := t0.Add(d)
	type timeLayout struct { // time.Time's fields
		wall uint64
		ext  int64
		loc  *time.Location
	}
	require.Equal(t, unsafe.Sizeof(timeLayout{}), unsafe.Sizeof(time.Time{}))
	(*timeLayout)(unsafe.Pointer(&t1)).ext = (*timeLayout)(unsafe.Pointer(&t0)).ext
	require.Zero(t, t1.Sub(t0), "same monotonic reading (time.Time's layout changed?)")
	require.Equal(t, d, t1.Round(0).Sub(t0.Round(0)), "wall clock moved on")
	return t1
}

type countSigner struct {
	Signer
	n atomic.Int64
}

func (s *countSigner) Sign(ctx context.Context, d []byte) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(ctx, d)
}

// After a suspend longer than the assertion's lifetime, the reused assertion has expired (exp is
// wall time): the Builder must sign a new one although the monotonic clock says it is young.
func TestBuilderReuseChecksWallClockAfterSuspend(t *testing.T) {
	key := testcerts.RSA(2048, 6)
	cert := testcerts.Cert(key, testcerts.Options{})
	ls, err := NewLocalSigner(key, "")
	require.NoError(t, err)
	s := &countSigner{Signer: ls}
	b, err := NewBuilder("client", []*x509.Certificate{cert}, s, nil)
	require.NoError(t, err)
	signedAt := time.Now()
	b.now = func() time.Time { return signedAt }
	const aud = "https://login.example/t/oauth2/v2.0/token"
	first, err := b.Assertion(context.Background(), aud)
	require.NoError(t, err)
	again, err := b.Assertion(context.Background(), aud)
	require.NoError(t, err)
	require.Equal(t, first, again, "reused while half its lifetime remains")

	woke := afterSuspend(t, signedAt, 2*time.Hour)
	b.now = func() time.Time { return woke }
	fresh, err := b.Assertion(context.Background(), aud)
	require.NoError(t, err)
	require.True(t, first != fresh, "an assertion that expired during a suspend is not reused")
	require.Equal(t, int64(2), s.n.Load())
}

func TestBuilderOwns(t *testing.T) {
	key, other := testcerts.RSA(2048, 6), testcerts.RSA(2048, 7)
	cert, otherCert := testcerts.Cert(key, testcerts.Options{}), testcerts.Cert(other, testcerts.Options{})
	ls, err := NewLocalSigner(key, "")
	require.NoError(t, err)
	ols, err := NewLocalSigner(other, "")
	require.NoError(t, err)
	b, err := NewBuilder("client", []*x509.Certificate{cert}, ls, nil)
	require.NoError(t, err)
	b2, err := NewBuilder("client", []*x509.Certificate{otherCert}, ols, nil)
	require.NoError(t, err)
	const aud = "https://login.example/t/oauth2/v2.0/token"
	a, err := b.Assertion(context.Background(), aud)
	require.NoError(t, err)
	a2, err := b2.Assertion(context.Background(), aud)
	require.NoError(t, err)
	require.True(t, b.Owns(a))
	require.False(t, b.Owns(a2))
	require.False(t, b2.Owns(a))
	require.False(t, b.Owns(""))
	require.False(t, b.Owns(b.header))
}
