#include "tests/server/security/test_pki.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace sepconv::testing {
namespace {

absl::Status Run(const std::string& command) {
  const std::string full = absl::StrCat(command, " >/dev/null 2>&1");
  if (std::system(full.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("command failed: ", command));
  }
  return absl::OkStatus();
}

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path);
  out << contents;
  return out ? absl::OkStatus() : absl::InternalError("cannot write " + path);
}

// An EC P-256 key and a CSR; fast to generate.
std::string NewKeyAndCsr(const std::string& dir, const std::string& name, const std::string& cn) {
  return absl::StrCat("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes",
                      " -keyout ", dir, "/", name, ".key -out ", dir, "/", name,
                      ".csr -subj /CN=", cn);
}

std::string Sign(const std::string& dir, const std::string& name, const std::string& ca,
                 const std::string& ext) {
  return absl::StrCat("openssl x509 -req -days 2 -in ", dir, "/", name, ".csr -CA ", dir, "/", ca,
                      ".crt -CAkey ", dir, "/", ca, ".key -set_serial 0x", name.size(), "1",
                      " -out ", dir, "/", name, ".crt -extfile ", dir, "/", ext);
}

std::string NewCa(const std::string& dir, const std::string& name) {
  return absl::StrCat("openssl req -x509 -days 2 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1",
                      " -nodes -keyout ", dir, "/", name, ".key -out ", dir, "/", name,
                      ".crt -subj /CN=sepconv-test-", name);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TestPki>> TestPki::Create() {
  char templ[] = "/tmp/sepconv_pki_XXXXXX";
  if (mkdtemp(templ) == nullptr) return absl::InternalError("mkdtemp failed");
  std::unique_ptr<TestPki> pki(new TestPki(templ));
  const std::string& d = pki->dir_;
  if (absl::Status s = WriteFile(d + "/server.ext",
                                 "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth\n");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteFile(d + "/client.ext", "extendedKeyUsage=clientAuth\n"); !s.ok()) {
    return s;
  }
  for (const std::string& command : {
           NewCa(d, "ca"),
           NewCa(d, "other_ca"),
           NewKeyAndCsr(d, "server", "localhost"),
           Sign(d, "server", "ca", "server.ext"),
           NewKeyAndCsr(d, "client", "sepconv-test-client"),
           Sign(d, "client", "ca", "client.ext"),
           NewKeyAndCsr(d, "other_client", "sepconv-test-intruder"),
           Sign(d, "other_client", "other_ca", "client.ext"),
       }) {
    if (absl::Status s = Run(command); !s.ok()) return s;
  }
  return pki;
}

TestPki::~TestPki() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string TestPki::Read(const std::string& name) const {
  std::ifstream in(Path(name));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

}  // namespace sepconv::testing
