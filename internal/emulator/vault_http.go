package emulator

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	vaultResource  = "https://vault.azure.net"
	hsmResource    = "https://managedhsm.azure.net"
	maxVaultBody   = 1 << 20
	recoveryLevel  = "Recoverable+Purgeable"
	recoverableDay = 90
)

// vaultOp is a parsed Key Vault request.
type vaultOp struct {
	coll    string // certificates, secrets, keys
	name    string
	version string // "" = latest
	action  string // get, list, sign
}

func (o vaultOp) perm() string { return o.coll + "/" + o.action }

// parseVaultRoute parses the path of a supported operation.
func parseVaultRoute(path string) (vaultOp, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) < 2 || segs[1] == "" {
		return vaultOp{}, false
	}
	// Key Vault identifiers are case-insensitive.
	op := vaultOp{coll: strings.ToLower(segs[0]), name: segs[1], action: "get"}
	switch op.coll {
	case "certificates", "secrets", "keys":
	default:
		return vaultOp{}, false
	}
	rest := segs[2:]
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && rest[0] == "versions":
		op.action = "list"
	case len(rest) == 1 && rest[0] == "sign" && op.coll == "keys":
		op.action = "sign" // azkeys joins "/keys/{name}//sign" into "/keys/{name}/sign"
	case len(rest) == 1:
		op.version = rest[0]
	case len(rest) == 2 && rest[1] == "sign" && op.coll == "keys":
		op.version, op.action = rest[0], "sign"
	case len(rest) == 2 && rest[1] == "":
		op.version = rest[0]
	default:
		return vaultOp{}, false
	}
	return op, true
}

func (v *Vault) serveHTTP(w http.ResponseWriter, r *http.Request) {
	v.srv.count("total")
	h := w.Header()
	h.Set("x-ms-request-id", newUUID())
	h.Set("x-ms-keyvault-region", "local")
	if v.srv.applyFault(w, r, nil, func(status int) { writeVaultFault(w, status) }) {
		return
	}
	claims, ok := v.authenticate(w, r)
	if !ok {
		return
	}
	if !v.networkAllows(w, r) {
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		kvError(w, http.StatusBadRequest, "BadParameter", "", "The 'api-version' query parameter is missing.")
		return
	}
	op, ok := parseVaultRoute(r.URL.Path)
	if ok && v.hsm && op.coll != "keys" {
		ok = false // a Managed HSM holds keys only
	}
	if !ok {
		kvError(w, http.StatusNotFound, "NotFound", "", "The requested resource "+r.URL.Path+" is not supported by the Key Vault emulator.")
		return
	}
	wantMethod := http.MethodGet
	if op.action == "sign" {
		wantMethod = http.MethodPost
	}
	if r.Method != wantMethod {
		h.Set("Allow", wantMethod)
		kvError(w, http.StatusMethodNotAllowed, "BadParameter", "", "The method "+r.Method+" is not supported by the Key Vault emulator for "+r.URL.Path+".")
		return
	}
	v.srv.count(op.perm())
	if !v.authorize(w, claims, op) {
		return
	}
	switch {
	case op.action == "list":
		v.listVersions(w, op)
	case op.action == "sign":
		v.sign(w, r, op)
	case op.coll == "certificates":
		v.getCertificate(w, op)
	case op.coll == "secrets":
		v.getSecret(w, op)
	default:
		v.getKey(w, op)
	}
}

func writeVaultFault(w http.ResponseWriter, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		kvError(w, status, "Throttled", "", "Request was not allowed because the request rate limit was exceeded (injected fault). Retry after the time in the Retry-After header.")
	case status == http.StatusServiceUnavailable:
		kvError(w, status, "ServiceUnavailable", "", "The service is temporarily unavailable (injected fault).")
	case status >= 500:
		kvError(w, status, "InternalServerError", "", "The service encountered an internal error (injected fault).")
	default:
		kvError(w, status, "InjectedFault", "", "Injected fault.")
	}
}

// kvError sends Key Vault's error body.
func kvError(w http.ResponseWriter, status int, code, inner, msg string) {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]any{"code": inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// authenticate checks the bearer token, answering 401 with the challenge when it is missing or
// not acceptable.
func (v *Vault) authenticate(w http.ResponseWriter, r *http.Request) (jwt.MapClaims, bool) {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		v.challenge(w, false, "AKV10000: Request is missing a Bearer or PoP token.")
		return nil, false
	}
	claims, err := v.e.Verify(tok)
	if err != nil {
		msg := "AKV10046: Unable to resolve the key used for signature validation."
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			msg = "Token validation failed: the token is expired."
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			msg = "Token validation failed: the token is not valid yet."
		case errors.Is(err, jwt.ErrTokenMalformed):
			msg = "Token validation failed: the token is malformed."
		}
		v.challenge(w, true, msg)
		return nil, false
	}
	aud, _ := claims["aud"].(string)
	if res := v.resource(); aud != res && aud != res+"/" {
		v.challenge(w, true, "AKV10022: Invalid audience. Expected "+res+", found: "+aud+".")
		return nil, false
	}
	tenant := v.tenantID()
	if tid, _ := claims["tid"].(string); tenant == "" || !strings.EqualFold(tid, tenant) {
		iss, _ := claims["iss"].(string)
		v.challenge(w, true, "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/"+tenant+"/, found "+iss+".")
		return nil, false
	}
	return claims, true
}

// challenge answers 401 with Key Vault's WWW-Authenticate challenge.
func (v *Vault) challenge(w http.ResponseWriter, invalidToken bool, msg string) {
	v.srv.count("challenge")
	c := `Bearer authorization="` + strings.TrimSuffix(v.e.AuthorityHost(), "/") + "/" + v.tenantID() + `", resource="` + v.resource() + `"`
	if invalidToken {
		c += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", c)
	kvError(w, http.StatusUnauthorized, "Unauthorized", "", msg)
}

// resource is the resource of the vault's challenge, whose tokens it accepts.
func (v *Vault) resource() string {
	if v.hsm {
		return hsmResource
	}
	return vaultResource
}

// networkAllows applies SetNetworkRule, answering 403 as Key Vault does when it refuses.
func (v *Vault) networkAllows(w http.ResponseWriter, r *http.Request) bool {
	v.mu.Lock()
	rule := v.network
	v.mu.Unlock()
	switch rule {
	case NetworkPrivateLinkOnly:
		kvError(w, http.StatusForbidden, "Forbidden", "ForbiddenByConnection", "Public network access is disabled and request is not from a trusted service nor via an approved private link.")
		return false
	case NetworkFirewall:
		addr, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			addr = r.RemoteAddr
		}
		kvError(w, http.StatusForbidden, "Forbidden", "ForbiddenByFirewall", "Client address is not authorized and caller is not a trusted service.\r\nClient address: "+addr)
		return false
	}
	return true
}

// authorize applies AllowOnly and Deny.
func (v *Vault) authorize(w http.ResponseWriter, claims jwt.MapClaims, op vaultOp) bool {
	caller, _ := claims["azp"].(string)
	if caller == "" {
		caller, _ = claims["appid"].(string)
	}
	v.mu.Lock()
	denied := (v.allowOnly != nil && !v.allowOnly[caller]) || v.deny[caller][op.perm()]
	v.mu.Unlock()
	if !denied {
		return true
	}
	oid, _ := claims["oid"].(string)
	iss, _ := claims["iss"].(string)
	if v.hsm {
		// Managed HSM's local RBAC.
		action := map[string]string{"get": "read", "list": "read", "sign": "sign/action"}[op.action]
		if action == "read" {
			action = "read/action"
		}
		kvError(w, http.StatusForbidden, "AccessDenied", "",
			"Not authorized to access Microsoft.KeyVault/managedHsm/keys/"+action+" on /keys/"+op.name+" (Activity ID: "+newUUID()+")")
		return false
	}
	kvError(w, http.StatusForbidden, "Forbidden", "AccessDenied",
		"The user, group or application 'appid="+caller+";oid="+oid+";iss="+iss+"' does not have "+op.coll+" "+op.action+
			" permission on key vault '"+v.srv.host+";location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287")
	return false
}

func (v *Vault) notFound(w http.ResponseWriter, op vaultOp) {
	kind := map[string]string{"certificates": "certificate", "secrets": "secret", "keys": "key"}[op.coll]
	code := map[string]string{"certificates": "CertificateNotFound", "secrets": "SecretNotFound", "keys": "KeyNotFound"}[op.coll]
	id := op.name
	if op.version != "" {
		id += "/" + op.version
	}
	article := "A "
	kvError(w, http.StatusNotFound, code, "", article+kind+" with (name/id) "+id+" was not found in this key vault. If you recently deleted this "+kind+" you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
}

func (v *Vault) objectID(coll, name, version string) string {
	return v.URL() + "/" + coll + "/" + name + "/" + version
}

func attributesJSON(a attrs) map[string]any {
	m := map[string]any{
		"enabled":         a.enabled,
		"created":         a.created.Unix(),
		"updated":         a.created.Unix(),
		"recoveryLevel":   recoveryLevel,
		"recoverableDays": recoverableDay,
	}
	if !a.nbf.IsZero() {
		m["nbf"] = a.nbf.Unix()
	}
	if !a.exp.IsZero() {
		m["exp"] = a.exp.Unix()
	}
	return m
}

func tagsJSON(t map[string]string) map[string]string {
	if t == nil {
		return map[string]string{}
	}
	return t
}

func x5t(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (v *Vault) getCertificate(w http.ResponseWriter, op vaultOp) {
	v.mu.Lock()
	list := v.certs[strings.ToLower(op.name)]
	found := findVersion(list, op.version, func(c *certVersion) string { return c.version })
	var c, latest certVersion
	if found != nil {
		c, latest = *found, *list[len(list)-1]
	}
	v.mu.Unlock()
	if found == nil {
		v.notFound(w, op)
		return
	}
	leaf := c.chain[0]
	writeJSON(w, http.StatusOK, map[string]any{
		"id":         v.objectID("certificates", c.name, c.version),
		"kid":        v.objectID("keys", c.name, c.version),
		"sid":        v.objectID("secrets", c.name, c.version),
		"x5t":        x5t(leaf),
		"cer":        base64.StdEncoding.EncodeToString(leaf.Raw),
		"attributes": attributesJSON(c.attrs),
		"policy":     v.policyJSON(&latest),
		"tags":       tagsJSON(c.tags),
	})
}

func (v *Vault) policyJSON(c *certVersion) map[string]any {
	leaf := c.chain[0]
	keyProps := map[string]any{"exportable": c.exportable, "kty": c.kty, "reuse_key": false}
	if c.crv != "" {
		keyProps["crv"] = c.crv
	} else {
		keyProps["key_size"] = c.keySize
	}
	x509Props := map[string]any{
		"subject":         leaf.Subject.String(),
		"ekus":            ekuOIDs(leaf),
		"key_usage":       keyUsageNames(leaf.KeyUsage),
		"validity_months": int(math.Round(leaf.NotAfter.Sub(leaf.NotBefore).Hours() / 730)),
	}
	if len(leaf.DNSNames) > 0 {
		x509Props["sans"] = map[string]any{"dns_names": leaf.DNSNames}
	}
	return map[string]any{
		"id":               v.URL() + "/certificates/" + c.name + "/policy",
		"key_props":        keyProps,
		"secret_props":     map[string]any{"contentType": c.contentType},
		"x509_props":       x509Props,
		"lifetime_actions": []any{map[string]any{"trigger": map[string]any{"lifetime_percentage": 80}, "action": map[string]any{"action_type": "EmailContacts"}}},
		"issuer":           map[string]any{"name": "Unknown"},
		"attributes":       map[string]any{"enabled": true, "created": c.created.Unix(), "updated": c.created.Unix()},
	}
}

func ekuOIDs(c *x509.Certificate) []string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageServerAuth:      "1.3.6.1.5.5.7.3.1",
		x509.ExtKeyUsageClientAuth:      "1.3.6.1.5.5.7.3.2",
		x509.ExtKeyUsageCodeSigning:     "1.3.6.1.5.5.7.3.3",
		x509.ExtKeyUsageEmailProtection: "1.3.6.1.5.5.7.3.4",
	}
	out := []string{}
	for _, u := range c.ExtKeyUsage {
		if n, ok := names[u]; ok {
			out = append(out, n)
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		out = append(out, o.String())
	}
	return out
}

func keyUsageNames(u x509.KeyUsage) []string {
	names := []struct {
		bit  x509.KeyUsage
		name string
	}{
		{x509.KeyUsageDigitalSignature, "digitalSignature"},
		{x509.KeyUsageContentCommitment, "nonRepudiation"},
		{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
		{x509.KeyUsageDataEncipherment, "dataEncipherment"},
		{x509.KeyUsageKeyAgreement, "keyAgreement"},
		{x509.KeyUsageCertSign, "keyCertSign"},
		{x509.KeyUsageCRLSign, "cRLSign"},
	}
	out := []string{}
	for _, n := range names {
		if u&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (v *Vault) getSecret(w http.ResponseWriter, op vaultOp) {
	v.mu.Lock()
	found := findVersion(v.secrets[strings.ToLower(op.name)], op.version, func(s *secretVersion) string { return s.version })
	var s secretVersion
	if found != nil {
		s = *found
	}
	v.mu.Unlock()
	if found == nil {
		v.notFound(w, op)
		return
	}
	if !s.enabled {
		kvError(w, http.StatusForbidden, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret.")
		return
	}
	body := map[string]any{
		"value":       s.value,
		"contentType": s.contentType,
		"id":          v.objectID("secrets", s.name, s.version),
		"attributes":  attributesJSON(s.attrs),
		"tags":        tagsJSON(s.tags),
	}
	if s.managed {
		body["managed"] = true
		body["kid"] = v.objectID("keys", s.name, s.version)
	}
	writeJSON(w, http.StatusOK, body)
}

func (v *Vault) keyJSON(k *keyVersion) map[string]any {
	jwk := map[string]any{
		"kid":     v.objectID("keys", k.name, k.version),
		"kty":     k.kty,
		"key_ops": k.ops,
	}
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		jwk["n"] = base64.RawURLEncoding.EncodeToString(pub.N.Bytes())
		jwk["e"] = base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		jwk["crv"] = pub.Curve.Params().Name
		jwk["x"] = base64.RawURLEncoding.EncodeToString(pub.X.FillBytes(make([]byte, size)))
		jwk["y"] = base64.RawURLEncoding.EncodeToString(pub.Y.FillBytes(make([]byte, size)))
	}
	body := map[string]any{"key": jwk, "attributes": attributesJSON(k.attrs), "tags": tagsJSON(k.tags)}
	if k.managed {
		body["managed"] = true
	}
	return body
}

// keySnapshot returns a copy of the key version op names, or nil.
func (v *Vault) keySnapshot(op vaultOp) *keyVersion {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := findVersion(v.keys[strings.ToLower(op.name)], op.version, func(k *keyVersion) string { return k.version })
	if k == nil {
		return nil
	}
	c := *k
	return &c
}

func (v *Vault) getKey(w http.ResponseWriter, op vaultOp) {
	k := v.keySnapshot(op)
	if k == nil {
		v.notFound(w, op)
		return
	}
	if !k.enabled {
		kvError(w, http.StatusForbidden, "Forbidden", "KeyDisabled", "Operation get is not allowed on a disabled key.")
		return
	}
	writeJSON(w, http.StatusOK, v.keyJSON(k))
}

func (v *Vault) listVersions(w http.ResponseWriter, op vaultOp) {
	name := strings.ToLower(op.name)
	items := []any{}
	v.mu.Lock()
	switch op.coll {
	case "certificates":
		for _, c := range v.certs[name] {
			items = append(items, map[string]any{
				"id": v.objectID("certificates", c.name, c.version), "x5t": x5t(c.chain[0]),
				"attributes": attributesJSON(c.attrs), "tags": tagsJSON(c.tags),
			})
		}
	case "secrets":
		for _, s := range v.secrets[name] {
			item := map[string]any{
				"id": v.objectID("secrets", s.name, s.version), "contentType": s.contentType,
				"attributes": attributesJSON(s.attrs), "tags": tagsJSON(s.tags),
			}
			if s.managed {
				item["managed"] = true
			}
			items = append(items, item)
		}
	case "keys":
		for _, k := range v.keys[name] {
			item := map[string]any{"kid": v.objectID("keys", k.name, k.version), "attributes": attributesJSON(k.attrs), "tags": tagsJSON(k.tags)}
			if k.managed {
				item["managed"] = true
			}
			items = append(items, item)
		}
	}
	v.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"value": items, "nextLink": nil})
}

// signAlg describes a JWS signature algorithm Key Vault signs with.
type signAlg struct {
	hash  crypto.Hash
	pss   bool
	ec    bool
	curve string
}

var signAlgs = map[string]signAlg{
	"RS256": {hash: crypto.SHA256},
	"RS384": {hash: crypto.SHA384},
	"RS512": {hash: crypto.SHA512},
	"PS256": {hash: crypto.SHA256, pss: true},
	"PS384": {hash: crypto.SHA384, pss: true},
	"PS512": {hash: crypto.SHA512, pss: true},
	"ES256": {hash: crypto.SHA256, ec: true, curve: "P-256"},
	"ES384": {hash: crypto.SHA384, ec: true, curve: "P-384"},
	"ES512": {hash: crypto.SHA512, ec: true, curve: "P-521"},
}

func (v *Vault) sign(w http.ResponseWriter, r *http.Request, op vaultOp) {
	k := v.keySnapshot(op)
	if k == nil {
		v.notFound(w, op)
		return
	}
	if !k.enabled {
		kvError(w, http.StatusForbidden, "Forbidden", "KeyDisabled", "Operation sign is not allowed on a disabled key.")
		return
	}
	if !contains(k.ops, "sign") {
		kvError(w, http.StatusForbidden, "Forbidden", "KeyOperationForbidden", "Operation sign is not permitted on this key.")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxVaultBody))
	if err != nil {
		kvError(w, http.StatusBadRequest, "BadParameter", "", "The request body could not be read.")
		return
	}
	var req struct {
		Alg   string `json:"alg"`
		Value string `json:"value"`
	}
	if err := json.Unmarshal(data, &req); err != nil {
		kvError(w, http.StatusBadRequest, "BadParameter", "", "The request body is not valid JSON.")
		return
	}
	alg, ok := signAlgs[req.Alg]
	if !ok {
		kvError(w, http.StatusBadRequest, "BadParameter", "", "Invalid or unsupported signature algorithm '"+req.Alg+"'.")
		return
	}
	digest, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(req.Value, "="))
	if err != nil || len(digest) == 0 {
		kvError(w, http.StatusBadRequest, "BadParameter", "", "Property 'value' must be a base64url-encoded digest.")
		return
	}
	if len(digest) != alg.hash.Size() {
		kvError(w, http.StatusBadRequest, "BadParameter", "", "Invalid digest length: "+req.Alg+" requires a digest of the matching size.")
		return
	}
	var ecKey *ecdsa.PublicKey
	switch pub := k.signer.Public().(type) {
	case *rsa.PublicKey:
		if alg.ec {
			kvError(w, http.StatusBadRequest, "BadParameter", "", "Key and signing algorithm are incompatible.")
			return
		}
	case *ecdsa.PublicKey:
		if !alg.ec || pub.Curve.Params().Name != alg.curve {
			kvError(w, http.StatusBadRequest, "BadParameter", "", "Key and signing algorithm are incompatible.")
			return
		}
		ecKey = pub
	default:
		kvError(w, http.StatusBadRequest, "BadParameter", "", "Key and signing algorithm are incompatible.")
		return
	}
	if wait, throttled := v.takeSignSlot(); throttled {
		v.srv.count("throttled")
		w.Header().Set("Retry-After", retryAfterSeconds(wait))
		kvError(w, http.StatusTooManyRequests, "Throttled", "", "Request was not allowed because the request rate limit was exceeded. Retry after "+retryAfterSeconds(wait)+" seconds.")
		return
	}
	var opts crypto.SignerOpts = alg.hash
	if alg.pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: alg.hash}
	}
	sig, err := k.signer.Sign(rand.Reader, digest, opts)
	if err == nil && ecKey != nil {
		sig, err = ecdsaRaw(sig, ecKey)
	}
	if err != nil {
		kvError(w, http.StatusInternalServerError, "InternalServerError", "", "The signing operation failed.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"kid":   v.objectID("keys", k.name, k.version),
		"value": base64.RawURLEncoding.EncodeToString(sig),
	})
}

// takeSignSlot applies SetSignLimit: it reports whether the sign operation is throttled and
// how long until a slot frees up.
func (v *Vault) takeSignSlot() (time.Duration, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.signLimit <= 0 {
		return 0, false
	}
	now := time.Now()
	cutoff := now.Add(-v.signPer)
	i := 0
	for i < len(v.signTimes) && !v.signTimes[i].After(cutoff) {
		i++
	}
	v.signTimes = v.signTimes[i:]
	if len(v.signTimes) >= v.signLimit {
		return v.signTimes[0].Add(v.signPer).Sub(now), true
	}
	v.signTimes = append(v.signTimes, now)
	return 0, false
}

// ecdsaRaw converts an ASN.1 ECDSA signature to the JWS form r||s.
func ecdsaRaw(der []byte, pub *ecdsa.PublicKey) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 {
		return nil, errors.New("bad ECDSA signature")
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	if sig.R.Sign() < 0 || sig.S.Sign() < 0 || sig.R.BitLen() > size*8 || sig.S.BitLen() > size*8 {
		return nil, errors.New("bad ECDSA signature")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}
