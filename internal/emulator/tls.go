package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The process-wide test CA and the server certificate every emulator presents.
var (
	caOnce    sync.Once
	caCert    *x509.Certificate
	caKey     *ecdsa.PrivateKey
	caPool    *x509.CertPool
	serverTLS tls.Certificate
)

func initCA() {
	caOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic("emulator: generating the CA key: " + err.Error())
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          randomSerial(),
			Subject:               pkix.Name{CommonName: "azcredkit emulator test CA"},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			panic("emulator: creating the CA certificate: " + err.Error())
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			panic("emulator: parsing the CA certificate: " + err.Error())
		}
		caCert, caKey = cert, key
		caPool = x509.NewCertPool()
		caPool.AddCert(cert)

		leaf, leafKey, err := newServerCert()
		if err != nil {
			panic("emulator: creating the server certificate: " + err.Error())
		}
		serverTLS = tls.Certificate{Certificate: [][]byte{leaf.Raw, caCert.Raw}, PrivateKey: leafKey, Leaf: leaf}
	})
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic("emulator: reading random bytes: " + err.Error())
	}
	return n
}

// newServerCert issues a TLS server certificate for 127.0.0.1, ::1 and localhost signed by the CA.
func newServerCert() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(2 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// CertPool returns a pool that trusts the emulator CA, which signs the certificate of every
// emulator in this process (and those written by [WriteTLSFiles]).
func CertPool() *x509.CertPool {
	initCA()
	return caPool.Clone()
}

// WriteTLSFiles writes a TLS server certificate (with the CA certificate after it) and its
// private key, both PEM, into dir and returns their paths. The certificate is valid for
// 127.0.0.1, ::1 and localhost and is signed by the emulator CA, so [HTTPClient] trusts a server
// using it (for example Azurite started with --cert and --key).
func WriteTLSFiles(dir string) (certFile, keyFile string, err error) {
	initCA()
	cert, key, err := newServerCert()
	if err != nil {
		return "", "", fmt.Errorf("emulator: creating a server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("emulator: encoding the server key: %w", err)
	}
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})...)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certFile = filepath.Join(dir, "emulator-cert.pem")
	keyFile = filepath.Join(dir, "emulator-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("emulator: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("emulator: %w", err)
	}
	return certFile, keyFile, nil
}

var (
	transportOnce sync.Once
	transport     *http.Transport
)

func sharedTransport() *http.Transport {
	transportOnce.Do(func() {
		initCA()
		transport = &http.Transport{
			Proxy: nil, // the emulators are on loopback: never go through a proxy
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			TLSClientConfig:     &tls.Config{RootCAs: caPool.Clone(), MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConns:        100,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		}
	})
	return transport
}

// HTTPClient returns an HTTP client that trusts the emulator CA. It implements
// policy.Transporter, so it can be the Transport of Azure SDK client options.
//
// MSAL sends Microsoft Entra instance discovery for a custom authority host to
// login.microsoftonline.com, naming the authority in the authorization_endpoint query
// parameter. When that authority is a running [Entra] emulator, this client sends the request to
// the emulator instead, so credentials work with instance discovery enabled; every other request
// goes where it is addressed.
//
// Each call returns a new client; all share one connection pool.
func HTTPClient() *http.Client {
	return &http.Client{
		Transport: discoveryRouter{next: sharedTransport()},
		Timeout:   60 * time.Second,
	}
}

// closeIdleConnections drops pooled connections (called when an emulator closes, so no client
// goroutine outlives it for long).
func closeIdleConnections() {
	if t := transport; t != nil {
		t.CloseIdleConnections()
	}
}

// The hosts (host:port) of the running Entra emulators.
var (
	liveMu     sync.Mutex
	liveEntras = map[string]bool{}
)

func registerEntraHost(host string, live bool) {
	liveMu.Lock()
	defer liveMu.Unlock()
	if live {
		liveEntras[strings.ToLower(host)] = true
	} else {
		delete(liveEntras, strings.ToLower(host))
	}
}

// discoveryRouter sends MSAL's instance discovery request for an emulator authority to that
// emulator (see HTTPClient).
type discoveryRouter struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (d discoveryRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL != nil && strings.EqualFold(req.URL.Host, "login.microsoftonline.com") && req.URL.Path == "/common/discovery/instance" {
		if ae, err := url.Parse(req.URL.Query().Get("authorization_endpoint")); err == nil && ae.Host != "" {
			liveMu.Lock()
			live := liveEntras[strings.ToLower(ae.Host)]
			liveMu.Unlock()
			if live {
				r2 := req.Clone(req.Context())
				r2.URL.Host = ae.Host
				r2.Host = ae.Host
				return d.next.RoundTrip(r2)
			}
		}
	}
	return d.next.RoundTrip(req)
}
