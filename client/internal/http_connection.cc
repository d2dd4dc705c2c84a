#include "client/internal/http_connection.h"

#include <netdb.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sepconv::client::internal {
namespace {

// "host:port" or "[v6]:port".
absl::Status SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  const auto bad = [&address] {
    return absl::InvalidArgumentError(
        absl::StrCat("REST server address '", address,
                     "' is not host:port (one server; gRPC's target forms are not for REST)"));
  };
  if (colon == std::string::npos || colon == 0) return bad();
  *host = address.substr(0, colon);
  if (host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  if (host->empty() || host->find_first_of("/,[]") != std::string::npos ||
      (host->find(':') != std::string::npos && address.front() != '[')) {
    return bad();
  }
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 1 || *port > 65535) {
    return bad();
  }
  return absl::OkStatus();
}

// The first address `host` resolves to, as text (httplib connects a
// server-name override to a numeric address).
absl::StatusOr<std::string> NumericHost(const std::string& host) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve '", host, "'"));
  }
  char text[NI_MAXHOST];
  const int rc = getnameinfo(found->ai_addr, found->ai_addrlen, text, sizeof(text), nullptr, 0,
                             NI_NUMERICHOST);
  freeaddrinfo(found);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("cannot resolve '", host, "'"));
  return std::string(text);
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;

Bio PemBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

}  // namespace

// OpenSSL objects read once from the PEM text; each connection's SSL_CTX
// takes a reference to the certificate and key, and a store of its own
// (SSL_CTX_set_cert_store takes ownership of the store it is given).
struct HttpConnector::Tls {
  std::string server_name;  // the name verified and sent as SNI
  std::string roots_pem;    // empty: the system's roots
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;

  ~Tls() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }

  // A store of `roots_pem`'s certificates; null for the system's roots.
  X509_STORE* Roots() const {
    if (roots_pem.empty()) return nullptr;
    X509_STORE* store = X509_STORE_new();
    Bio bio = PemBio(roots_pem);
    while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);
      X509_free(cert);
    }
    return store;
  }
};

HttpConnector::~HttpConnector() = default;

absl::StatusOr<std::unique_ptr<HttpConnector>> HttpConnector::Create(const std::string& address,
                                                                     const ClientOptions& options) {
  std::unique_ptr<HttpConnector> connector(new HttpConnector());
  connector->address_ = address;
  if (absl::Status s = SplitAddress(address, &connector->host_, &connector->port_); !s.ok()) {
    return s;
  }
  connector->token_ = options.token;
  if (!options.use_tls) return connector;
  auto tls = std::make_unique<Tls>();
  tls->roots_pem = options.root_certs_pem;
  if (!tls->roots_pem.empty()) {
    X509_STORE* roots = tls->Roots();
    const bool any = X509_STORE_get0_objects(roots) != nullptr &&
                     sk_X509_OBJECT_num(X509_STORE_get0_objects(roots)) > 0;
    X509_STORE_free(roots);
    if (!any) return absl::InvalidArgumentError("the TLS root certificates are not PEM");
  }
  if (!options.client_cert_pem.empty()) {
    tls->cert = PEM_read_bio_X509(PemBio(options.client_cert_pem).get(), nullptr, nullptr, nullptr);
    tls->key =
        PEM_read_bio_PrivateKey(PemBio(options.client_key_pem).get(), nullptr, nullptr, nullptr);
    if (tls->cert == nullptr || tls->key == nullptr) {
      return absl::InvalidArgumentError("the TLS client certificate or key is not PEM");
    }
  }
  tls->server_name = connector->host_;
  if (!options.tls_server_name.empty()) {
    tls->server_name = options.tls_server_name;
    absl::StatusOr<std::string> numeric = NumericHost(connector->host_);
    if (!numeric.ok()) return numeric.status();
    connector->host_ = *std::move(numeric);
  }
  connector->tls_ = std::move(tls);
  return connector;
}

std::unique_ptr<httplib::ClientImpl> HttpConnector::Connect() const {
  std::unique_ptr<httplib::ClientImpl> connection;
  if (tls_ == nullptr) {
    connection = std::make_unique<httplib::ClientImpl>(host_, port_);
  } else {
    auto ssl =
        tls_->cert != nullptr
            ? std::make_unique<httplib::SSLClient>(tls_->server_name, port_, tls_->cert, tls_->key)
            : std::make_unique<httplib::SSLClient>(tls_->server_name, port_);
    if (X509_STORE* roots = tls_->Roots()) ssl->set_ca_cert_store(roots);
    ssl->enable_server_certificate_verification(true);
    if (tls_->server_name != host_) ssl->set_hostname_addr_map({{tls_->server_name, host_}});
    connection = std::move(ssl);
  }
  connection->set_keep_alive(true);
  connection->set_tcp_nodelay(true);
  // Answers uncompressed: a load generator measures the server's inference,
  // not its zlib.
  connection->set_default_headers({{"Accept-Encoding", "identity"}});
  if (!token_.empty()) connection->set_bearer_token_auth(token_);
  return connection;
}

}  // namespace sepconv::client::internal
