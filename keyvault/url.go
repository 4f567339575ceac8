package keyvault

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ObjectURL is a parsed Key Vault object URL: https://{vault}/{collection}/{name}[/{version}].
type ObjectURL struct {
	// Vault is the vault's URL: "https://{vault host}".
	Vault string
	// Collection is "certificates", "secrets" or "keys".
	Collection string
	// Name of the object.
	Name string
	// Version of the object; "" means the latest (unpinned).
	Version string
}

// String returns the URL.
func (u ObjectURL) String() string {
	s := u.Vault + "/" + u.Collection + "/" + u.Name
	if u.Version != "" {
		s += "/" + u.Version
	}
	return s
}

// Pinned reports whether the URL names a version (a pinned version never rotates).
func (u ObjectURL) Pinned() bool { return u.Version != "" }

// ParseCertificateURL parses https://{vault}/certificates/{name}[/{version}] or the same with
// /secrets/; as Key Vault identifiers, collection names are case-insensitive (/Certificates/ is
// /certificates/, and Collection is returned in lower case). Anything else (http, /keys/ URLs, empty or invalid names, extra path segments,
// query strings) is an error wrapping ErrInvalidURL that says which form is expected.
func ParseCertificateURL(raw string) (ObjectURL, error) {
	return parseObjectURL(raw, "certificates", "secrets")
}

// ParseKeyURL parses https://{vault}/keys/{name}[/{version}].
func ParseKeyURL(raw string) (ObjectURL, error) {
	return parseObjectURL(raw, "keys")
}

const maxNameLen = 127

func parseObjectURL(raw string, collections ...string) (ObjectURL, error) {
	forms := make([]string, len(collections))
	for i, c := range collections {
		forms[i] = "https://{vault}/" + c + "/{name}[/{version}]"
	}
	want := strings.Join(forms, " or ")
	bad := func(why string) (ObjectURL, error) {
		return ObjectURL{}, fmt.Errorf("%w %q: %s; expected %s", ErrInvalidURL, redactURL(raw), why, want)
	}
	if len(raw) > 2048 {
		return bad("too long")
	}
	if strings.TrimSpace(raw) == "" {
		return bad("the URL is empty")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return bad("not a URL")
	}
	switch {
	case u.Scheme == "" && u.Host == "":
		return bad("it has no https:// scheme and vault host")
	case !strings.EqualFold(u.Scheme, "https"):
		return bad("Key Vault is reached over https only")
	}
	if u.Host == "" || u.User != nil {
		return bad("no vault host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("no query or fragment allowed")
	}
	if isManagedHSMHost(u.Host) && !slices.Contains(collections, "keys") {
		return bad("a Managed HSM holds keys only, no certificates or secrets: keep the certificate in a Key Vault or a file and use credential.NewManagedHSMCredential with the key URL https://{hsm}/keys/{name}, which has the Managed HSM sign and follows new key versions")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("wrong number of path segments")
	}
	// Key Vault identifiers are case-insensitive: /Certificates/ is /certificates/.
	coll := ""
	for _, c := range collections {
		if strings.EqualFold(parts[0], c) {
			coll = c
		}
	}
	if coll == "" {
		return bad(fmt.Sprintf("%q objects are not accepted here", parts[0][:min(len(parts[0]), 40)]))
	}
	o := ObjectURL{Vault: "https://" + u.Host, Collection: coll, Name: parts[1]}
	if len(parts) == 3 {
		o.Version = parts[2]
		if !validName(o.Version, 64) {
			return bad("the version must be letters and digits")
		}
	}
	if !validName(o.Name, maxNameLen) {
		return bad("the name must be 1 to 127 letters, digits and dashes")
	}
	return o, nil
}

func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// redactURL keeps error messages short and free of anything after the path (a SAS-like query)
// and of user info (user:password@).
func redactURL(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i] + "?..."
	}
	if i := strings.Index(raw, "//"); i >= 0 {
		authority := raw[i+2:]
		if j := strings.IndexByte(authority, '/'); j >= 0 {
			authority = authority[:j]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			raw = raw[:i+2] + "***@" + raw[i+2+at+1:]
		}
	}
	if len(raw) > 200 {
		raw = raw[:200] + "..."
	}
	return raw
}
