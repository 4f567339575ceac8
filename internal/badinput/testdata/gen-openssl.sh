#!/usr/bin/env bash
# Makes the bad-input fixtures of badinput_test.go with the openssl command line (OpenSSL 3):
#   bash gen-openssl.sh OUTDIR
# The committed copies were made by this script. Keys are throwaway test keys.
set -euo pipefail
out=${1:?usage: gen-openssl.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
leaf=$here/../../../keyvault/testdata/openssl
mkdir -p "$out"
cd "$out"
q() { "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; }

# DSA (Entra accepts only RSA): PKCS#8 key, the same key in the traditional "DSA PRIVATE KEY"
# form, a self-signed certificate valid for 100 years, and a PFX with an empty password.
q openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out dsa-params.pem
q openssl genpkey -paramfile dsa-params.pem -out dsa.key
q openssl pkey -in dsa.key -traditional -out dsa-traditional.key
q openssl req -x509 -new -key dsa.key -sha256 -days 36500 -subj "/CN=openssl dsa" -out dsa.pem
q openssl pkcs12 -export -in dsa.pem -inkey dsa.key -out dsa.pfx -passout pass:
rm -f dsa-params.pem

# Ed25519 and a 1024-bit RSA key (too short for Entra), certificate and key in one PEM.
q openssl req -x509 -newkey ed25519 -nodes -keyout ed25519.key -days 36500 -subj "/CN=openssl ed25519" -out ed25519.pem
cat ed25519.key ed25519.pem > ed25519-combined.pem
q openssl req -x509 -newkey rsa:1024 -nodes -keyout rsa1024.key -days 36500 -subj "/CN=openssl rsa 1024" -out rsa1024.pem
cat rsa1024.key rsa1024.pem > rsa1024-combined.pem
rm -f ed25519.key ed25519.pem rsa1024.key rsa1024.pem

# A legacy encrypted PEM key ("Proc-Type: 4,ENCRYPTED", openssl rsa -aes256 -traditional) with
# its certificate.
q openssl rsa -in "$leaf/leaf2048.key" -traditional -aes256 -passout pass:secret -out legacy-encrypted.key
cat legacy-encrypted.key "$leaf/leaf2048.pem" > legacy-encrypted-combined.pem
rm -f legacy-encrypted.key
