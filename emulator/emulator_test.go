package emulator_test

import (
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"

	"github.com/azcredkit/azcredkit/emulator"
)

// UserToken's claims, and its signature checked as a resource API would: with a key found
// through the tenant's OpenID configuration.
func TestUserToken(t *testing.T) {
	emu := start(t, nil)
	raw := emu.UserToken(tenantA, "api://"+apiID, alice, 30*time.Minute)

	getJSON := func(u string, v any) {
		resp, err := emu.HTTPClient().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d", u, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var oidc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(emu.AuthorityHost()+tenantA+"/v2.0/.well-known/openid-configuration", &oidc)
	var jwks struct {
		Keys []struct{ Kid, N, E string } `json:"keys"`
	}
	getJSON(oidc.JWKSURI, &jwks)
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		for _, k := range jwks.Keys {
			if k.Kid == tok.Header["kid"] {
				n, _ := base64.RawURLEncoding.DecodeString(k.N)
				e, _ := base64.RawURLEncoding.DecodeString(k.E)
				return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
			}
		}
		return nil, errors.New("kid not published")
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(oidc.Issuer), jwt.WithAudience("api://"+apiID), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("the user token does not verify with the published keys: %v", err)
	}
	want := map[string]any{
		"tid": tenantA, "oid": alice.ObjectID, "sub": alice.ObjectID, "upn": alice.UserPrincipalName,
		"preferred_username": alice.UserPrincipalName, "scp": "user_impersonation", "ver": "2.0",
		"iss": emu.AuthorityHost() + tenantA + "/v2.0",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("%s = %v, want %v", k, claims[k], v)
		}
	}
	if amr, _ := json.Marshal(claims["amr"]); string(amr) != `["pwd","mfa"]` {
		t.Errorf("amr = %s", amr)
	}
	exp, _ := claims.GetExpirationTime()
	if d := time.Until(exp.Time); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("expires in %v, want 30 minutes", d)
	}

	bobs, err := emu.VerifyToken(emu.UserToken(tenantA, apiID, bob, 0))
	if err != nil {
		t.Fatal(err)
	}
	if amr, _ := json.Marshal(bobs["amr"]); string(amr) != `["pwd"]` || bobs["aud"] != apiID {
		t.Errorf("without MFA: amr %s aud %v", amr, bobs["aud"])
	}
	if _, err := emu.VerifyToken(emu.UserToken(tenantA, apiID, bob, -time.Minute)); err == nil {
		t.Error("a token with a negative lifetime verified: it should have expired")
	}
}

func TestStartAndClose(t *testing.T) {
	t.Run("chosen ports", func(t *testing.T) {
		ports := freePorts(t, 3)
		emu := start(t, &emulator.Options{EntraPort: ports[0], VaultPort: ports[1], ManagedIdentityPort: ports[2]})
		if want := "https://127.0.0.1:" + strconv.Itoa(ports[0]) + "/"; emu.AuthorityHost() != want {
			t.Errorf("AuthorityHost %s, want %s", emu.AuthorityHost(), want)
		}
		if want := "https://127.0.0.1:" + strconv.Itoa(ports[1]); emu.VaultURL() != want {
			t.Errorf("VaultURL %s, want %s", emu.VaultURL(), want)
		}
		if want := "https://127.0.0.1:" + strconv.Itoa(ports[2]) + "/msi/token"; emu.ManagedIdentityEnv()["IDENTITY_ENDPOINT"] != want {
			t.Errorf("IDENTITY_ENDPOINT %s, want %s", emu.ManagedIdentityEnv()["IDENTITY_ENDPOINT"], want)
		}
		if _, err := emulator.Start(&emulator.Options{VaultPort: ports[1]}); err == nil || !strings.Contains(err.Error(), strconv.Itoa(ports[1])) {
			t.Errorf("a port in use: want an error naming it, got %v", err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []emulator.Options{{EntraPort: -1}, {VaultPort: 70000}, {TokenLifetime: -time.Second}, {VaultTenant: "a/b"}} {
			if emu, err := emulator.Start(&o); err == nil {
				emu.Close()
				t.Errorf("Start(%+v) succeeded", o)
			}
		}
	})
	t.Run("TLS trusts only the emulator CA", func(t *testing.T) {
		emu := start(t, nil)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: emu.CertPool()}}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(emu.AuthorityHost() + "common/discovery/instance?api-version=1.1&authorization_endpoint=" + emu.AuthorityHost() + "common/oauth2/v2.0/authorize")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("instance discovery: HTTP %d", resp.StatusCode)
		}
		if !strings.Contains(string(emu.CACertificatePEM()), "BEGIN CERTIFICATE") {
			t.Error("CACertificatePEM is not PEM")
		}
	})
	t.Run("Close twice, then requests fail", func(t *testing.T) {
		emu, err := emulator.Start(nil)
		if err != nil {
			t.Fatal(err)
		}
		cred := certCredential(t, emu, tenantA, appID)
		emu.Close()
		emu.Close()
		if _, err := getToken(t, cred, vaultScope); err == nil {
			t.Error("a token after Close")
		}
	})
	t.Run("TokenLifetime", func(t *testing.T) {
		emu := start(t, &emulator.Options{TokenLifetime: 90 * time.Second})
		tok, err := getToken(t, certCredential(t, emu, tenantA, appID), vaultScope)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(tok.ExpiresOn); d > 90*time.Second || d < 60*time.Second {
			t.Errorf("token expires in %v, want 90s", d)
		}
	})
}

func TestRegisterRejectsBadInput(t *testing.T) {
	emu := start(t, nil)
	c := newTestCertificate(t, "x")
	for name, err := range map[string]error{
		"empty tenant":      emu.RegisterApp("", appID, c.Certificate),
		"tenant with slash": emu.RegisterApp("a/b", appID),
		"client with space": emu.RegisterApp(tenantA, "a b"),
		"nil certificate":   emu.RegisterApp(tenantA, appID, nil),
		"empty secret":      emu.RegisterSecretApp(tenantA, appID, ""),
		"unknown app":       emu.UnregisterCertificate("nobody", c.Certificate),
		"managed identity":  emu.AddManagedIdentity("", miID, nil),
		"two system-assigned": func() error {
			if err := emu.AddManagedIdentity(tenantA, miID, nil); err != nil {
				return nil
			}
			return emu.AddManagedIdentity(tenantA, appID, nil)
		}(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A user-assigned identity answers only when named; the vault tenant is the first granted one.
func TestUserAssignedManagedIdentity(t *testing.T) {
	emu := start(t, nil)
	const resourceID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader"
	if err := emu.AddManagedIdentity(tenantB, miID, &emulator.ManagedIdentityOptions{UserAssigned: true, ResourceID: resourceID}); err != nil {
		t.Fatal(err)
	}
	setManagedIdentityEnv(t, emu)
	for name, id := range map[string]azidentity.ManagedIDKind{"client ID": azidentity.ClientID(miID), "resource ID": azidentity.ResourceID(resourceID)} {
		mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: fastRetries(emu), ID: id})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := getToken(t, mi, storageScope)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cl := claims(t, emu, tok.Token); cl["appid"] != miID || cl["tid"] != tenantB || cl["xms_mirid"] != resourceID || cl["idtyp"] != "app" {
			t.Errorf("%s: claims %v", name, cl)
		}
		if d := time.Until(tok.ExpiresOn); d > 5*time.Minute {
			t.Errorf("%s: a managed identity token living %v: MSAL would cache it for the whole process", name, d)
		}
	}
	system, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: fastRetries(emu)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := getToken(t, system, storageScope); err == nil || !strings.Contains(err.Error(), "Unable to load the proper Managed Identity") {
		t.Errorf("no system-assigned identity: want App Service's error, got %v", err)
	}
}

// freePorts returns n ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
