package assertion

import "errors"

// Sentinel errors, matched with errors.Is. Returned errors wrap them and say what to fix.
// Package keyvault re-exports the key and certificate sentinels, so errors.Is works with
// either name.
var (
	// ErrUnsupportedKey: the key is not an RSA key of at least 2048 bits (Microsoft Entra ID accepts
	// only RSA client assertions).
	ErrUnsupportedKey = errors.New("unsupported key: Microsoft Entra ID accepts only RSA keys (2048 bits or more) for client assertions")
	// ErrUnsupportedAlgorithm: the signature algorithm is neither PS256 nor RS256.
	ErrUnsupportedAlgorithm = errors.New("unsupported signature algorithm")
	// ErrKeyMismatch: the private key does not belong to the certificate.
	ErrKeyMismatch = errors.New("the private key does not match the certificate")
	// ErrCertificateExpired: the certificate is expired or not yet valid.
	ErrCertificateExpired = errors.New("the certificate is expired or not yet valid")
	// ErrInvalidOptions: a required argument is missing or an option is out of range.
	ErrInvalidOptions = errors.New("invalid argument")
)
