package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/redis/go-redis/v9"

	"github.com/azcredkit/azcredkit/emulator"
	"github.com/azcredkit/azcredkit/internal/redisserver"
	"github.com/azcredkit/azcredkit/obo"
	"github.com/azcredkit/azcredkit/obo/rediscache"
)

const (
	fleetAppID  = "5b1a3e9c-0000-4000-8000-0000000000a6"
	fleetSecret = "tour-only-secret" // the tour's shortcut; the OBO step shows the certificate way
)

// stepRedis runs two instances of one web app behind a load balancer without affinity: they
// share the users' OBO tokens through one Redis (a real redis-server, started here), so each
// user costs one exchange for the whole fleet, a restarted instance none, and a Redis outage
// only costs exchanges.
func stepRedis(ctx context.Context, w *world) error {
	srv, err := redisserver.Run(ctx, nil)
	if errors.Is(err, redisserver.ErrNotInstalled) {
		fmt.Printf("   redis-server is not installed here (%q installs it)\n", redisserver.InstallCommand)
		return errSkipped
	}
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("   redis-server listening at %s (no persistence)\n", srv.Addr())

	if err := w.emu.RegisterSecretApp(tenantA, fleetAppID, fleetSecret); err != nil {
		return err
	}
	// The key that encrypts the shared entries lives in Key Vault; every instance reads it with
	// its managed identity at start.
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if _, err := w.emu.SetSecret("obo-shared-cache-keys", base64.StdEncoding.EncodeToString(key)); err != nil {
		return err
	}
	mi, err := vaultCredential(w)
	if err != nil {
		return err
	}
	vault, err := azsecrets.NewClient(w.emu.VaultURL(), mi, &azsecrets.ClientOptions{ClientOptions: w.emu.ClientOptions(), DisableChallengeResourceVerification: true})
	if err != nil {
		return err
	}
	secret, err := vault.GetSecret(ctx, "obo-shared-cache-keys", "", nil)
	if err != nil {
		return err
	}
	var keys [][]byte
	for _, s := range strings.Split(*secret.Value, ",") {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("the secret obo-shared-cache-keys is not base64 keys separated by commas")
		}
		keys = append(keys, k)
	}

	var clients []*redis.Client
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	instance := func() (*obo.App, error) {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()}) // in Azure: TLS and Entra ID (README)
		clients = append(clients, rdb)
		return obo.NewAppWithSecret(tenantA, fleetAppID, fleetSecret, &obo.AppOptions{
			ClientOptions:   w.emu.ClientOptions(),
			SharedCache:     rediscache.New(rdb, nil),
			SharedCacheKeys: keys,
		})
	}
	apps := make([]*obo.App, 2)
	for i := range apps {
		if apps[i], err = instance(); err != nil {
			return err
		}
	}
	users := map[string]string{}
	for i, name := range []string{"dave", "erin", "frank"} {
		users[name] = w.emu.UserToken(tenantA, fleetAppID, emulator.User{ObjectID: fmt.Sprintf("0000000%d-0000-4000-8000-00000000bbbb", i+1), UserPrincipalName: name + "@contoso.example"}, time.Hour)
	}
	request := func(a *obo.App, userToken string) (time.Duration, error) {
		start := time.Now()
		c, err := a.Credential(userToken)
		if err != nil {
			return 0, err
		}
		_, err = c.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/user_impersonation"}})
		return time.Since(start), err
	}
	flush := func() error {
		for _, a := range apps {
			if err := a.FlushSharedCache(ctx); err != nil {
				return err
			}
		}
		return nil
	}

	w.emu.ResetCounts()
	for round := range 4 { // each user's requests alternate between the instances
		for _, tok := range users {
			if _, err := request(apps[round%2], tok); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	n := w.emu.Counts().OBOExchanges
	fmt.Printf("   3 users x 4 requests over 2 instances: %d On-Behalf-Of exchanges (one per user for the fleet, not one per instance)\n", n)
	if n != 3 {
		return fmt.Errorf("expected 3 exchanges, Entra saw %d", n)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	clients = append(clients, rdb)
	keysInRedis, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		return err
	}
	if len(keysInRedis) != 3 {
		return fmt.Errorf("expected 3 entries in Redis, found %d", len(keysInRedis))
	}
	ttl, _ := rdb.PTTL(ctx, keysInRedis[0]).Result()
	fmt.Printf("   Redis holds %d entries, e.g. %.40s… (an HMAC: no token, no user), AES-256-GCM values, expiring with their tokens (in %v)\n",
		len(keysInRedis), keysInRedis[0], ttl.Round(time.Minute))

	// A deploy restarts instance 2: its own cache starts empty, Redis still has the tokens.
	if apps[1], err = instance(); err != nil {
		return err
	}
	for _, tok := range users {
		if _, err := request(apps[1], tok); err != nil {
			return err
		}
	}
	restarted := w.emu.Counts().OBOExchanges - n
	fmt.Printf("   instance 2 restarted and served the 3 users: %d new exchanges\n", restarted)
	if restarted != 0 {
		return fmt.Errorf("expected no exchange after the restart, Entra saw %d", restarted)
	}

	// Redis goes down: requests go on with each instance's cache and Entra. (go-redis would log
	// each failed dial; the tour prints its own summary.)
	redis.SetLogger(discard{})
	if err := srv.Stop(); err != nil {
		return err
	}
	late := w.emu.UserToken(tenantA, fleetAppID, emulator.User{ObjectID: "00000004-0000-4000-8000-00000000bbbb", UserPrincipalName: "grace@contoso.example"}, time.Hour)
	worst := time.Duration(0)
	for _, a := range apps {
		d, err := request(a, late)
		if err != nil {
			return fmt.Errorf("with Redis down: %w", err)
		}
		worst = max(worst, d)
	}
	failed := apps[0].SharedCacheStats().Failures + apps[1].SharedCacheStats().Failures
	fmt.Printf("   Redis stopped: a new user's requests on both instances still succeed (slowest %v; %d Redis calls failed, each a miss, no error)\n", worst.Round(time.Millisecond), failed)
	// A graceful shutdown waits for the writes still queued (they fail here: Redis is down).
	return flush()
}

// discard is a go-redis logger that drops everything.
type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}
