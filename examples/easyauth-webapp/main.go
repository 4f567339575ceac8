// Command easyauth-webapp is a web app for Azure App Service with authentication ("Easy Auth")
// that lists the blobs of a Storage container as the signed-in user: Storage checks the user's own
// permissions, not the app's. The app itself authenticates with a certificate from Key Vault, so
// it holds no client secret.
//
// The pattern: obo.NewAppWithAssertion(tenant, app, certCredential, nil) creates the middle tier
// once; App.Middleware takes the user's access token that Easy Auth passes in
// X-MS-TOKEN-AAD-ACCESS-TOKEN (or an API caller's "Authorization: Bearer"), and the handler gets a
// credential for that user with obo.CredentialFromContext, for any Azure SDK client. Tokens are
// exchanged On-Behalf-Of and cached per user. When Entra ID wants more from the user (MFA,
// consent), *obo.InteractionRequiredError.WriteResponse sends a browser back through the sign-in
// with the claims challenge, and gives an API caller a 401 with WWW-Authenticate. GET /healthz
// needs no sign-in.
//
// Azure setup:
//   - an app registration: "Expose an API" with the scope user_impersonation
//     (api://{client ID}/user_impersonation); API permission "Azure Storage / user_impersonation"
//     (delegated, with admin consent); its certificate's public part under "Certificates & secrets";
//   - the certificate in Key Vault with an exportable key; the App Service's managed identity has
//     "Key Vault Secrets User" on it;
//   - App Service authentication with that app registration, the token store on, and the login
//     parameters "scope=openid profile offline_access api://{client ID}/user_impersonation" so that
//     it keeps an access token for this app (an id token cannot be exchanged); exclude /healthz
//     (globalValidation.excludedPaths) if unauthenticated requests are redirected to sign-in;
//   - each user who lists blobs: "Storage Blob Data Reader" on the container (or the account);
//   - app settings AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_CERTIFICATE_URL,
//     AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_CONTAINER. App Service sets PORT.
//
// X-MS-* headers are trusted only behind App Service authentication, which removes client-sent
// copies. Either way the user's access token (from the header or "Authorization: Bearer") is
// verified before it is used: signature with the tenant's published keys, issuer, tenant, audience,
// lifetime. For local development, -dev trusts the headers from anyone, and -use-secret
// authenticates the app with AZURE_CLIENT_SECRET instead of the certificate:
//
//	AZURE_CLIENT_SECRET=... go run ./examples/easyauth-webapp -dev -use-secret
//	curl -H "Authorization: Bearer $USER_TOKEN" -H "Accept: application/json" localhost:8080/
//
// With several instances, -redis shares the users' OBO tokens between them through Azure Cache for
// Redis or Azure Managed Redis (Microsoft Entra authentication with the managed identity, TLS),
// encrypted with the keys in OBO_SHARED_CACHE_KEYS (a Key Vault reference): see redis.go. Locally:
//
//	OBO_SHARED_CACHE_KEYS=$(head -c 32 /dev/urandom | base64) go run ./examples/easyauth-webapp -dev -use-secret -redis 127.0.0.1:6379 -redis-auth none
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/azcredkit/azcredkit/credential"
	"github.com/azcredkit/azcredkit/obo"
)

func main() {
	var (
		tenant    = flag.String("tenant", os.Getenv("AZURE_TENANT_ID"), "tenant ID of the app registration (AZURE_TENANT_ID)")
		clientID  = flag.String("client-id", os.Getenv("AZURE_CLIENT_ID"), "client ID of the app registration (AZURE_CLIENT_ID)")
		certURL   = flag.String("cert-url", os.Getenv("AZURE_CLIENT_CERTIFICATE_URL"), "the app's certificate: https://{vault}/certificates/{name} (AZURE_CLIENT_CERTIFICATE_URL)")
		miID      = flag.String("identity", "", "client ID of the user-assigned managed identity that reads the vault (default: system-assigned)")
		account   = flag.String("account", os.Getenv("AZURE_STORAGE_ACCOUNT"), "storage account name or blob endpoint URL (AZURE_STORAGE_ACCOUNT)")
		container = flag.String("container", os.Getenv("AZURE_STORAGE_CONTAINER"), "container to list (AZURE_STORAGE_CONTAINER)")
		useSecret = flag.Bool("use-secret", false, "local development: authenticate the app with AZURE_CLIENT_SECRET instead of the certificate")
		dev       = flag.Bool("dev", false, "local development: trust X-MS-* headers from any client (never in production)")
	)
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: easyauth-webapp [flags]: list a container's blobs as the signed-in user")
		flag.PrintDefaults()
	}
	flag.Parse()
	secret := os.Getenv("AZURE_CLIENT_SECRET") // read only with -use-secret; never a flag (-h would show it)
	required := [][2]string{{*tenant, "-tenant (or AZURE_TENANT_ID)"}, {*clientID, "-client-id (or AZURE_CLIENT_ID)"},
		{*account, "-account (or AZURE_STORAGE_ACCOUNT)"}, {*container, "-container (or AZURE_STORAGE_CONTAINER)"}}
	if *useSecret {
		required = append(required, [2]string{secret, "AZURE_CLIENT_SECRET (with -use-secret)"})
	} else {
		required = append(required, [2]string{*certURL, "-cert-url (or AZURE_CLIENT_CERTIFICATE_URL)"})
	}
	for _, s := range required {
		if s[0] == "" {
			fmt.Fprintf(flag.CommandLine.Output(), "easyauth-webapp: %s is required\n\n", s[1])
			flag.Usage()
			os.Exit(2)
		}
	}
	accountURL := *account
	if !strings.Contains(accountURL, "://") {
		accountURL = "https://" + accountURL + ".blob.core.windows.net/"
	}

	opts := &obo.AppOptions{TrustEasyAuthHeaders: *dev}
	rdb, err := sharedCache(opts, *miID) // -redis: tokens shared by every instance
	if err != nil {
		log.Fatal(err)
	}
	if rdb != nil {
		defer rdb.Close()
	}
	app, err := newApp(*tenant, *clientID, *certURL, *miID, secret, *useSecret, opts)
	if err != nil {
		log.Fatal(err)
	}
	s := &server{accountURL: accountURL, container: *container}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /{$}", app.Middleware(http.HandlerFunc(s.listBlobs))) // 401 without a user token
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done() // App Service stops the container with SIGTERM
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		_ = app.FlushSharedCache(shutdown) // the last tokens serve the instances that replace this one
	}()
	log.Printf("listening on %s (Easy Auth headers trusted from anyone: %v)", addr, *dev)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		stop()
		log.Fatal(err)
	}
}

// newApp creates the middle tier. In production it authenticates with its certificate, read from
// Key Vault by the App Service's managed identity: no secret. One App per process: it holds the
// per-user token cache.
func newApp(tenant, clientID, certURL, miID, secret string, useSecret bool, opts *obo.AppOptions) (*obo.App, error) {
	if useSecret {
		return obo.NewAppWithSecret(tenant, clientID, secret, opts)
	}
	miOpts := &azidentity.ManagedIdentityCredentialOptions{}
	if miID != "" {
		miOpts.ID = azidentity.ClientID(miID)
	}
	mi, err := azidentity.NewManagedIdentityCredential(miOpts)
	if err != nil {
		return nil, err
	}
	cert, err := credential.NewKeyVaultCertCredential(tenant, clientID, certURL, mi, nil)
	if err != nil {
		return nil, err
	}
	return obo.NewAppWithAssertion(tenant, clientID, cert, opts)
}

type server struct{ accountURL, container string }

type blob struct {
	Name         string    `json:"name"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"lastModified"`
}

var page = template.Must(template.New("").Parse(`<!doctype html><title>{{.Container}}</title>
<p>Signed in as {{.User}}. Blobs in {{.Container}} (first 100):</p>
<ul>{{range .Blobs}}<li>{{.Name}} ({{.Size}} bytes, {{.LastModified.Format "2006-01-02 15:04"}})</li>{{end}}</ul>`))

// listBlobs lists the first 100 blobs of the container as the signed-in user.
func (s *server) listBlobs(w http.ResponseWriter, r *http.Request) {
	user, _ := obo.CredentialFromContext(r.Context()) // put there by App.Middleware
	// A client per request is cheap: the user's Storage token is cached by the App.
	client, err := azblob.NewClient(s.accountURL, user, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	first100 := int32(100)
	resp, err := client.NewListBlobsFlatPager(s.container, &azblob.ListBlobsFlatOptions{MaxResults: &first100}).NextPage(r.Context())
	var ir *obo.InteractionRequiredError
	var re *azcore.ResponseError
	switch {
	case errors.As(err, &ir):
		ir.WriteResponse(w, r) // MFA, consent...: sign in again with the claims challenge
		return
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		http.Error(w, "Storage refused: you need the Storage Blob Data Reader role on this container", http.StatusForbidden)
		return
	case err != nil:
		log.Printf("listing blobs for user %s: %v", user.UserObjectID(), err) // errors never hold tokens
		http.Error(w, "listing the blobs failed", http.StatusBadGateway)
		return
	}
	blobs := []blob{}
	for _, b := range resp.Segment.BlobItems {
		item := blob{Name: *b.Name}
		if p := b.Properties; p != nil && p.ContentLength != nil && p.LastModified != nil {
			item.Size, item.LastModified = *p.ContentLength, *p.LastModified
		}
		blobs = append(blobs, item)
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") || r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user": user.UserName(), "container": s.container, "blobs": blobs})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, map[string]any{"User": user.UserName(), "Container": s.container, "Blobs": blobs})
}
