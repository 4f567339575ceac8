package emulator

import "encoding/pem"

// CACertificatePEM returns the certificate of the process-wide emulator CA in PEM: what a client
// in another process (or language) must trust to talk to the emulators of this process.
func CACertificatePEM() []byte {
	initCA()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw})
}
