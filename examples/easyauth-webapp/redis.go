package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/redis/go-redis/v9"

	"github.com/azcredkit/azcredkit/obo"
	"github.com/azcredkit/azcredkit/obo/rediscache"
)

// With -redis, the instances of the app share the users' OBO tokens through Redis (Azure Cache
// for Redis or Azure Managed Redis): one exchange per user for all instances, none after a
// restart. The entries are encrypted with the keys in OBO_SHARED_CACHE_KEYS: base64 32-byte keys
// separated by commas, the first encrypts. In App Service, make that app setting a Key Vault
// reference (@Microsoft.KeyVault(SecretUri=https://{vault}.vault.azure.net/secrets/obo-shared-cache-keys/))
// so that the keys live in Key Vault; create one with
//
//	head -c 32 /dev/urandom | base64
var (
	redisAddr = flag.String("redis", os.Getenv("REDIS_ADDR"), "share the users' OBO tokens between instances through this Redis, host:port, for example myapp.redis.cache.windows.net:6380 (REDIS_ADDR); keys from OBO_SHARED_CACHE_KEYS")
	redisAuth = flag.String("redis-auth", "entra", `authentication to Redis: "entra" (Microsoft Entra ID with the managed identity, over TLS), "key" (the access key in REDIS_PASSWORD, over TLS) or "none" (local development: no TLS, no authentication)`)
)

// redisScope is the scope of Microsoft Entra tokens for Azure Cache for Redis and Azure Managed
// Redis.
const redisScope = "https://redis.azure.com/.default"

// sharedCache sets opts.SharedCache and opts.SharedCacheKeys from -redis; it returns the client
// to close at exit (nil without -redis).
func sharedCache(opts *obo.AppOptions, miID string) (*redis.Client, error) {
	if *redisAddr == "" {
		return nil, nil
	}
	keys, err := parseKeys(os.Getenv("OBO_SHARED_CACHE_KEYS"))
	if err != nil {
		return nil, err
	}
	ro := &redis.Options{Addr: *redisAddr, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	switch *redisAuth {
	case "entra":
		miOpts := &azidentity.ManagedIdentityCredentialOptions{}
		if miID != "" {
			miOpts.ID = azidentity.ClientID(miID)
		}
		mi, err := azidentity.NewManagedIdentityCredential(miOpts)
		if err != nil {
			return nil, err
		}
		// Each new connection authenticates with a current token, its user name the identity's
		// object ID. Connections end before their token can expire (azidentity hands out tokens
		// with at least 5 minutes left). github.com/redis/go-redis-entraid does the same and
		// re-authenticates open connections instead.
		ro.CredentialsProviderContext = func(ctx context.Context) (string, string, error) {
			tok, err := mi.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{redisScope}})
			if err != nil {
				return "", "", err
			}
			oid, err := objectID(tok.Token)
			return oid, tok.Token, err
		}
		ro.ConnMaxLifetime = 4 * time.Minute
	case "key":
		ro.Password = os.Getenv("REDIS_PASSWORD")
		if ro.Password == "" {
			return nil, errors.New("-redis-auth=key needs the access key in REDIS_PASSWORD")
		}
	case "none":
		ro.TLSConfig = nil
	default:
		return nil, fmt.Errorf("-redis-auth is %q; use entra, key or none", *redisAuth)
	}
	rdb := redis.NewClient(ro)
	// The first connection (TLS, authentication) is made now rather than by the first request.
	// Not fatal: the app works without Redis, and go-redis connects again later.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		log.Printf("Redis at %s is not reachable yet (the app goes on without it until it is): %v", *redisAddr, err)
	}
	opts.SharedCache = rediscache.New(rdb, nil)
	opts.SharedCacheKeys = keys
	return rdb, nil
}

// parseKeys reads base64 keys separated by commas; it never shows them in an error.
func parseKeys(s string) ([][]byte, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("-redis needs the keys that encrypt the shared tokens in OBO_SHARED_CACHE_KEYS (base64 32-byte keys separated by commas, the first encrypts; create one with: head -c 32 /dev/urandom | base64)")
	}
	var keys [][]byte
	for i, part := range strings.Split(s, ",") {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(part))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("OBO_SHARED_CACHE_KEYS: key %d is not the base64 of 32 bytes", i+1)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// objectID reads the oid claim of a Microsoft Entra access token (the Redis user name of the
// identity). The token is not verified here: Redis verifies it.
func objectID(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("the Redis access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("the Redis access token's payload is not base64url")
	}
	var claims struct {
		OID string `json:"oid"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.OID == "" {
		return "", errors.New("the Redis access token has no oid claim")
	}
	return claims.OID, nil
}
