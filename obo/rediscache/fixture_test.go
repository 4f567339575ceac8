package rediscache_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/redis/go-redis/v9"

	"github.com/azcredkit/azcredkit/internal/emulator"
	"github.com/azcredkit/azcredkit/internal/redisserver"
	"github.com/azcredkit/azcredkit/internal/testguard"
	"github.com/azcredkit/azcredkit/obo"
	"github.com/azcredkit/azcredkit/obo/rediscache"
)

// The fleet tests: several Apps (instances of one web app), each with its own Redis client, share
// one real redis-server and one Entra emulator, which counts the On-Behalf-Of exchanges.

const (
	tenant    = "aaaaaaaa-0000-0000-0000-00000000000a"
	apiID     = "a1a1a1a1-0000-0000-0000-0000000000a1"
	apiSecret = "middle-tier-secret"
	storage   = "https://storage.azure.com/user_impersonation"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // go-redis logs each failed dial of the outage tests
	testguard.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

type fleet struct {
	entra *emulator.Entra
	redis *redisserver.Server
	keys  [][]byte
}

func newFleet(t testing.TB) *fleet {
	t.Helper()
	srv := redisserver.Start(t, nil)
	e := emulator.NewEntra()
	t.Cleanup(e.Close)
	e.AddTenant(tenant)
	e.RegisterApp(tenant, apiID).AddSecret(apiSecret)
	return &fleet{entra: e, redis: srv, keys: [][]byte{newKey()}}
}

func newKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

// client is a new Redis client of the fleet's server, closed when the test ends.
func (f *fleet) client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: f.redis.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// app is a new instance: an App with its own Redis client; keys nil means the fleet's.
func (f *fleet) app(t testing.TB, keys [][]byte, mod func(*obo.AppOptions)) *obo.App {
	t.Helper()
	if keys == nil {
		keys = f.keys
	}
	co := f.entra.ClientOptions()
	co.Retry = policy.RetryOptions{MaxRetries: 1, RetryDelay: 10 * time.Millisecond}
	o := &obo.AppOptions{
		ClientOptions: co, DisableInstanceDiscovery: true,
		SharedCache: rediscache.New(f.client(t), nil), SharedCacheKeys: keys,
	}
	if mod != nil {
		mod(o)
	}
	a, err := obo.NewAppWithSecret(tenant, apiID, apiSecret, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flush(t, a) })
	return a
}

func flush(t testing.TB, apps ...*obo.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range apps {
		if err := a.FlushSharedCache(ctx); err != nil {
			t.Errorf("FlushSharedCache: %v", err)
		}
	}
}

type user struct {
	oid, upn, token string
}

func (f *fleet) user(i int) user {
	u := user{oid: fmt.Sprintf("00000000-0000-0000-0000-%012d", 70_000+i), upn: fmt.Sprintf("fleet-user%d@contoso.example", i)}
	f.entra.AddUser(tenant, emulator.User{OID: u.oid, Name: fmt.Sprintf("Fleet User %d", i), UPN: u.upn})
	u.token = f.entra.UserToken(tenant, u.oid, apiID, emulator.UserTokenOptions{})
	return u
}

func (f *fleet) exchanges() int64 { return f.entra.Count("token:obo") }

func getToken(ctx context.Context, a *obo.App, u user) (azcore.AccessToken, error) {
	c, err := a.Credential(u.token)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{storage}})
}

func mustToken(t testing.TB, a *obo.App, u user) azcore.AccessToken {
	t.Helper()
	tok, err := getToken(context.Background(), a, u)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	return tok
}

// oidOf returns the oid of an OBO token, verified with the emulator's key.
func (f *fleet) oidOf(t testing.TB, tok azcore.AccessToken) string {
	t.Helper()
	claims, err := f.entra.Verify(tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	oid, _ := claims["oid"].(string)
	return oid
}

// keys returns every key in Redis (SCAN).
func (f *fleet) scan(t testing.TB, c *redis.Client) []string {
	t.Helper()
	var all []string
	iter := c.Scan(context.Background(), 0, "*", 100).Iterator()
	for iter.Next(context.Background()) {
		all = append(all, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return all
}
