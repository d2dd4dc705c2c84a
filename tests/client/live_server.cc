#include "tests/client/live_server.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/metrics_scrape.h"

namespace sepconv::testing {

absl::StatusOr<std::unique_ptr<LiveServer>> LiveServer::Start(
    const std::vector<std::string>& extra_flags, client::ClientOptions probe) {
  std::unique_ptr<LiveServer> server(new LiveServer);
  server->grpc_port_ = FreePort();
  server->metrics_port_ = FreePort();
  while (server->metrics_port_ == server->grpc_port_) server->metrics_port_ = FreePort();
  std::vector<std::string> argv = {RequiredEnv("SEPCONV_SERVER_BIN"), "--address=127.0.0.1",
                                   absl::StrCat("--grpc_port=", server->grpc_port_),
                                   absl::StrCat("--metrics_port=", server->metrics_port_)};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  const std::string log = absl::StrCat(::getenv("TMPDIR") ? ::getenv("TMPDIR") : "/tmp",
                                       "/sepconv-client-test-server-", server->grpc_port_, ".log");
  server->process_ = std::make_unique<ChildProcess>(argv, log);

  probe.default_deadline = absl::Milliseconds(500);
  absl::StatusOr<std::unique_ptr<client::Client>> c =
      client::Client::Create(server->target(), probe);
  if (!c.ok()) return c.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::Status last = absl::UnavailableError("not started");
  while (absl::Now() < deadline) {
    if (!server->process_->running()) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      return absl::InternalError(absl::StrCat("sepconv-server exited early: ", text.str()));
    }
    absl::StatusOr<std::string> health = (*c)->Health("");
    if (health.ok() && *health == "SERVING") {
      // The metrics endpoint comes up with the server; wait for it too.
      if (client::HttpGet(server->metrics_url(), absl::Milliseconds(500)).ok()) return server;
    }
    last = health.ok() ? absl::UnavailableError(*health) : health.status();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("sepconv-server did not become SERVING in 60 s: ", last.ToString()));
}

std::string LiveServer::target() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

std::string LiveServer::metrics_url() const {
  return absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics");
}

}  // namespace sepconv::testing
