#ifndef SEPCONV_TESTS_SERVER_SECURITY_TEST_PKI_H_
#define SEPCONV_TESTS_SERVER_SECURITY_TEST_PKI_H_

// A throw-away PKI generated with the openssl CLI into a fresh temp dir:
// a CA, a server certificate for localhost / 127.0.0.1 signed by it, a client
// certificate signed by it, and a second, unrelated CA with its own client
// certificate. Nothing is committed; the directory is removed on destruction.
// Not thread-safe (one per test).

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sepconv::testing {

class TestPki {
 public:
  static absl::StatusOr<std::unique_ptr<TestPki>> Create();
  ~TestPki();

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  // Files: ca.crt, server.crt, server.key, client.crt, client.key,
  // other_ca.crt, other_client.crt, other_client.key.
  std::string Read(const std::string& name) const;

 private:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_SERVER_SECURITY_TEST_PKI_H_
