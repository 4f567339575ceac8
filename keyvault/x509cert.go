package keyvault

import (
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"strings"
)

// parseX509Certificate is x509.ParseCertificate, except that it also reads certificates with a
// negative serial number, which crypto/x509 refuses unless the whole process runs with
// GODEBUG=x509negativeserial=1. Key Vault still returns such certificates (old makecert and
// Windows ones: its REST API's own GetCertificate example holds one), and Entra identifies a
// certificate by its thumbprint, never by its serial.
//
// The certificate is parsed by crypto/x509 with the serial's first content byte set to 0x01 (same
// length, so no other byte moves; 0x01 keeps the INTEGER minimally encoded and positive); then
// Raw, RawTBSCertificate and SerialNumber are set back to the original's, so thumbprints, x5c and
// signature checks see the certificate as it is. Nothing else of a certificate depends on its
// serial number.
func parseX509Certificate(der []byte) (*x509.Certificate, error) {
	c, err := x509.ParseCertificate(der)
	if err == nil || !strings.Contains(err.Error(), "negative serial number") {
		return c, err
	}
	patched, serial, tbs, ok := withPositiveSerial(der)
	if !ok {
		return nil, err
	}
	c, err2 := x509.ParseCertificate(patched)
	if err2 != nil {
		return nil, err
	}
	c.Raw = der
	c.RawTBSCertificate = tbs
	c.SerialNumber = serial
	return c, nil
}

// withPositiveSerial returns a copy of the certificate der with the first content byte of its
// negative serial number set to 0x01, the serial number, and der's TBSCertificate.
func withPositiveSerial(der []byte) (patched []byte, serial *big.Int, tbs []byte, ok bool) {
	var cert, tbsV, first, s asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &cert); err != nil || len(rest) != 0 || cert.Tag != asn1.TagSequence {
		return nil, nil, nil, false
	}
	off := len(cert.FullBytes) - len(cert.Bytes) // the certificate's header
	if _, err := asn1.Unmarshal(cert.Bytes, &tbsV); err != nil || tbsV.Tag != asn1.TagSequence {
		return nil, nil, nil, false
	}
	tbs = der[off : off+len(tbsV.FullBytes)]
	off += len(tbsV.FullBytes) - len(tbsV.Bytes) // the TBSCertificate's header
	rest, err := asn1.Unmarshal(tbsV.Bytes, &first)
	if err != nil {
		return nil, nil, nil, false
	}
	s = first
	if first.Class == asn1.ClassContextSpecific && first.Tag == 0 { // [0] EXPLICIT version
		off += len(first.FullBytes)
		if _, err := asn1.Unmarshal(rest, &s); err != nil {
			return nil, nil, nil, false
		}
	}
	if s.Class != asn1.ClassUniversal || s.Tag != asn1.TagInteger || len(s.Bytes) == 0 || s.Bytes[0]&0x80 == 0 {
		return nil, nil, nil, false
	}
	if _, err := asn1.Unmarshal(s.FullBytes, &serial); err != nil {
		return nil, nil, nil, false
	}
	off += len(s.FullBytes) - len(s.Bytes) // the serial's header
	patched = append([]byte(nil), der...)
	patched[off] = 0x01
	return patched, serial, tbs, true
}
