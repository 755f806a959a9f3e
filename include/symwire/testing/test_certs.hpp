// File: symwire/testing/test_certs.hpp
// Test utility (public so that tools/ may use it, like fault_proxy.hpp;
// never for production): a throw-away PKI for TLS tests and soak runs,
// generated in-process with libcrypto (no
// openssl command, no files in the repository): a CA, a server
// certificate it signs for DNS:localhost and IP:127.0.0.1, a client
// certificate it signs, and an unrelated "wrong" CA with a client
// certificate of its own. Keys are EC P-256; names, serial numbers and
// extensions are fixed, only keys and signatures differ between runs.
// Generated once per process (a few milliseconds), thread-safe.
#ifndef SYMWIRE_TESTING_TEST_CERTS_HPP_
#define SYMWIRE_TESTING_TEST_CERTS_HPP_

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace symwire::testing {

// TestCertificates: every certificate and key as PEM text.
struct TestCertificates {
  std::string ca_cert_pem;      // CN=symwire test CA
  std::string server_cert_pem;  // CN=localhost; SAN DNS:localhost, IP:127.0.0.1
  std::string server_key_pem;
  std::string client_cert_pem;  // CN=symwire test client, signed by the CA
  std::string client_key_pem;
  std::string wrong_ca_cert_pem;      // CN=symwire wrong CA, unrelated
  std::string wrong_client_cert_pem;  // signed by the wrong CA
  std::string wrong_client_key_pem;
};

namespace detail {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Bio = std::unique_ptr<BIO, BioFree>;

// A failure here is a broken test environment, not a test result.
inline void CertCheck(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "test_certs: %s failed\n", what);
  std::abort();
}

inline Pkey NewP256Key() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  CertCheck(key != nullptr, "EC P-256 key generation");
  return Pkey(key);
}

inline void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  CertCheck(ext != nullptr, value);
  CertCheck(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

// Issues a certificate for `key` named `cn`, signed by `issuer_key`
// (self-signed when `issuer` is null). `san` and `eku` may be null.
inline Cert IssueCertificate(const char* cn, long serial, EVP_PKEY* key,
                             X509* issuer, EVP_PKEY* issuer_key, bool is_ca,
                             const char* san, const char* eku) {
  Cert cert(X509_new());
  CertCheck(cert != nullptr, "X509_new");
  X509* x = cert.get();
  CertCheck(X509_set_version(x, X509_VERSION_3) == 1, "X509_set_version");
  CertCheck(ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1,
            "serial number");
  // Valid from an hour ago (clock skew) for a day.
  CertCheck(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != nullptr,
            "notBefore");
  CertCheck(X509_gmtime_adj(X509_getm_notAfter(x), 86400) != nullptr,
            "notAfter");
  X509_NAME* name = X509_get_subject_name(x);
  CertCheck(X509_NAME_add_entry_by_txt(
                name, "O", MBSTRING_ASC,
                reinterpret_cast<const unsigned char*>("symwire tests"), -1, -1,
                0) == 1,
            "subject O");
  CertCheck(X509_NAME_add_entry_by_txt(
                name, "CN", MBSTRING_ASC,
                reinterpret_cast<const unsigned char*>(cn), -1, -1, 0) == 1,
            "subject CN");
  CertCheck(
      X509_set_issuer_name(
          x, issuer != nullptr ? X509_get_subject_name(issuer) : name) == 1,
      "issuer name");
  CertCheck(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");
  X509* ext_issuer = issuer != nullptr ? issuer : x;
  if (is_ca) {
    AddExtension(x, ext_issuer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(x, ext_issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(x, ext_issuer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(x, ext_issuer, NID_key_usage, "critical,digitalSignature");
  }
  AddExtension(x, ext_issuer, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) {
    AddExtension(x, ext_issuer, NID_authority_key_identifier, "keyid:always");
  }
  if (san != nullptr) AddExtension(x, ext_issuer, NID_subject_alt_name, san);
  if (eku != nullptr) AddExtension(x, ext_issuer, NID_ext_key_usage, eku);
  CertCheck(
      X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0,
      "X509_sign");
  return cert;
}

inline std::string BioText(BIO* bio) {
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  CertCheck(mem != nullptr, "BIO_get_mem_ptr");
  return std::string(mem->data, mem->length);
}

inline std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  CertCheck(bio != nullptr && PEM_write_bio_X509(bio.get(), cert) == 1,
            "PEM_write_bio_X509");
  return BioText(bio.get());
}

inline std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  CertCheck(bio != nullptr &&
                PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0,
                                         nullptr, nullptr) == 1,
            "PEM_write_bio_PrivateKey");
  return BioText(bio.get());
}

inline TestCertificates GenerateTestCertificates() {
  TestCertificates out;
  Pkey ca_key = NewP256Key();
  Cert ca = IssueCertificate("symwire test CA", 1, ca_key.get(), nullptr,
                             nullptr, true, nullptr, nullptr);
  Pkey server_key = NewP256Key();
  Cert server =
      IssueCertificate("localhost", 2, server_key.get(), ca.get(), ca_key.get(),
                       false, "DNS:localhost,IP:127.0.0.1", "serverAuth");
  Pkey client_key = NewP256Key();
  Cert client =
      IssueCertificate("symwire test client", 3, client_key.get(), ca.get(),
                       ca_key.get(), false, nullptr, "clientAuth");
  Pkey wrong_ca_key = NewP256Key();
  Cert wrong_ca = IssueCertificate("symwire wrong CA", 4, wrong_ca_key.get(),
                                   nullptr, nullptr, true, nullptr, nullptr);
  Pkey wrong_client_key = NewP256Key();
  Cert wrong_client = IssueCertificate(
      "symwire wrong client", 5, wrong_client_key.get(), wrong_ca.get(),
      wrong_ca_key.get(), false, nullptr, "clientAuth");
  out.ca_cert_pem = CertPem(ca.get());
  out.server_cert_pem = CertPem(server.get());
  out.server_key_pem = KeyPem(server_key.get());
  out.client_cert_pem = CertPem(client.get());
  out.client_key_pem = KeyPem(client_key.get());
  out.wrong_ca_cert_pem = CertPem(wrong_ca.get());
  out.wrong_client_cert_pem = CertPem(wrong_client.get());
  out.wrong_client_key_pem = KeyPem(wrong_client_key.get());
  return out;
}

}  // namespace detail

// TestCerts
// The process's test PKI, generated on the first call.
inline const TestCertificates& TestCerts() {
  static const TestCertificates certs = detail::GenerateTestCertificates();
  return certs;
}

}  // namespace symwire::testing

#endif  // SYMWIRE_TESTING_TEST_CERTS_HPP_
