#!/usr/bin/env bash
# Generates certificate files with the real openssl command line, as a service author would:
#   bash gen-openssl.sh OUTDIR
# The committed copies under openssl/ were made by this script (OpenSSL 3.0); parse_openssl_test.go
# reads them, and runs this script again into a temporary directory when openssl is on PATH.
set -euo pipefail
out=${1:?usage: gen-openssl.sh OUTDIR}
mkdir -p "$out"
cd "$out"
q() { "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; }

# CA and intermediate, then leaves signed by the intermediate.
q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=openssl test root" -addext basicConstraints=critical,CA:true
q openssl req -newkey rsa:2048 -nodes -keyout int.key -out int.csr -subj "/CN=openssl test intermediate"
printf 'basicConstraints=critical,CA:true\nkeyUsage=keyCertSign,digitalSignature\n' > ca.ext
q openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out int.pem -days 3650 -extfile ca.ext
for bits in 2048 3072 4096; do
  q openssl req -newkey rsa:$bits -nodes -keyout leaf$bits.key -out leaf$bits.csr -subj "/CN=openssl leaf $bits"
  q openssl x509 -req -in leaf$bits.csr -CA int.pem -CAkey int.key -CAcreateserial -out leaf$bits.pem -days 3650
done
rm -f ./*.csr ./*.srl ca.ext

# PEM: separate files, combined (key first, as Key Vault), certificate first, PKCS#1 ("traditional").
cat leaf2048.key leaf2048.pem int.pem ca.pem > combined-keyfirst.pem
cat leaf2048.pem leaf2048.key > combined-certfirst.pem
q openssl rsa -in leaf3072.key -traditional -out leaf3072-pkcs1.key
cat leaf3072-pkcs1.key leaf3072.pem > combined-pkcs1.pem
# Encrypted PKCS#8 key.
q openssl pkcs8 -topk8 -in leaf2048.key -v2 aes-256-cbc -passout pass:secret -out leaf2048-encrypted.key

# PKCS#12: OpenSSL 3 default (AES-256-CBC, PBKDF2, SHA-256 MAC), legacy 3DES/RC2 + SHA-1, with chain.
q openssl pkcs12 -export -in leaf2048.pem -inkey leaf2048.key -certfile int.pem -out modern-chain.pfx -passout pass:P@ss-w0rd
q openssl pkcs12 -export -in leaf4096.pem -inkey leaf4096.key -out modern-4096.pfx -passout pass:
q openssl pkcs12 -export -legacy -in leaf3072.pem -inkey leaf3072.key -certfile int.pem -out legacy-chain.pfx -passout pass:legacy
q openssl pkcs12 -export -certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1 -in leaf2048.pem -inkey leaf2048.key -out legacy-3des.pfx -passout pass:3des
# The layout of a PFX that Key Vault generated (recorded 2022): PBE-SHA1-3DES for both bags,
# SHA-1 MAC, 2,000 iterations.
q openssl pkcs12 -export -legacy -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 -iter 2000 -in leaf2048.pem -inkey leaf2048.key -certfile int.pem -out keyvault-3des.pfx -passout pass:
# A negative serial number (old makecert/Windows certificates, which Key Vault still returns;
# crypto/x509 refuses them by default): PEM, modern PFX, legacy RC2 PFX.
q openssl req -x509 -key leaf2048.key -set_serial -1234 -out negserial.pem -days 3650 -subj "/CN=openssl negative serial"
cat leaf2048.key negserial.pem > negserial-combined.pem
q openssl pkcs12 -export -in negserial.pem -inkey leaf2048.key -out negserial.pfx -passout pass:
q openssl pkcs12 -export -legacy -in negserial.pem -inkey leaf2048.key -out negserial-legacy.pfx -passout pass:legacy
rm -f negserial.pem
# A DER certificate alone (a .cer/.crt file).
q openssl x509 -in leaf2048.pem -outform der -out leaf2048.cer
# Certificates only (what a non-exportable Key Vault certificate's secret holds).
q openssl pkcs12 -export -nokeys -in leaf2048.pem -out nokey.pfx -passout pass:

# EC: Entra accepts only RSA.
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ec.key -out ec.pem -days 365 -subj "/CN=openssl ec"
cat ec.key ec.pem > ec-combined.pem
q openssl pkcs12 -export -in ec.pem -inkey ec.key -out ec.pfx -passout pass:
# Expired certificate (valid for one day in 2015) for the 2048 key, issued with `openssl ca`.
mkdir -p ca.d && : > ca.d/index.txt && echo 1000 > ca.d/serial
cat > ca.d/ca.cnf <<'CNF'
[ca]
default_ca = d
[d]
dir = ca.d
database = ca.d/index.txt
serial = ca.d/serial
new_certs_dir = ca.d
default_md = sha256
policy = p
[p]
commonName = supplied
CNF
q openssl req -new -key leaf2048.key -subj "/CN=openssl expired" -out expired.csr
q openssl ca -batch -config ca.d/ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem -startdate 20150101000000Z -enddate 20150102000000Z -notext
rm -rf ca.d expired.csr
cat leaf2048.key expired.pem > expired-combined.pem
rm -f ca.key int.key
