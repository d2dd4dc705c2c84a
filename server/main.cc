// sepconv-server: serves depthwise-separable convolution models over the
// KServe v2 gRPC API, with Prometheus metrics. See --help.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/cpu_budget.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/server.h"

ABSL_FLAG(std::string, address, "0.0.0.0", "Address to listen on (gRPC and metrics).");
ABSL_FLAG(int, grpc_port, 8001, "gRPC port (KServe v2, health, reflection); 0 picks one.");
ABSL_FLAG(int, metrics_port, 8002, "Prometheus /metrics port; 0 turns metrics off.");
ABSL_FLAG(int, threads, 0,
          "Intra-op threads per engine instance; 0 = the CPUs this process may use "
          "(affinity mask and cgroup quota) divided among the instances.");
ABSL_FLAG(int, instances, 1, "Engine workers per model version.");
ABSL_FLAG(int, max_batch_size, 8, "Samples per engine execution; 0 disables batching.");
ABSL_FLAG(int64_t, max_queue_delay_us, 500,
          "How long the first request of a batch may wait for company, in microseconds.");
ABSL_FLAG(int, max_queue_size, 1024, "Requests queued per model; more are RESOURCE_EXHAUSTED.");
ABSL_FLAG(std::vector<std::string>, preferred_batch_sizes, {},
          "Comma-separated batch sizes that are run as soon as they are reached.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC request or response, in bytes.");
ABSL_FLAG(int, exit_timeout_secs, 30,
          "On SIGTERM/SIGINT, how long queued requests may still finish.");
ABSL_FLAG(std::string, model_repository, "",
          "Triton-layout model repository; empty serves the built-in model 'sepconv'.");

namespace sepconv {
namespace {

// The signal handler only writes to this pipe; the main thread does the work.
int signal_pipe[2] = {-1, -1};

void OnSignal(int signo) {
  const char byte = static_cast<char>(signo);
  const int saved = errno;
  [[maybe_unused]] ssize_t n = write(signal_pipe[1], &byte, 1);
  errno = saved;
}

absl::Status InstallSignalHandlers() {
  if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signo : {SIGTERM, SIGINT}) {
    if (sigaction(signo, &action, nullptr) != 0) {
      return absl::InternalError(absl::StrCat("sigaction: ", strerror(errno)));
    }
  }
  return absl::OkStatus();
}

// Blocks until SIGTERM or SIGINT; returns the signal.
int WaitForSignal() {
  for (;;) {
    pollfd fd = {signal_pipe[0], POLLIN, 0};
    if (poll(&fd, 1, -1) < 0 && errno != EINTR) return 0;
    char byte = 0;
    if (read(signal_pipe[0], &byte, 1) == 1) return byte;
  }
}

absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.grpc_port = absl::GetFlag(FLAGS_grpc_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.instances = absl::GetFlag(FLAGS_instances);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.exit_timeout = absl::Seconds(absl::GetFlag(FLAGS_exit_timeout_secs));
  if (options.instances < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--instances=", options.instances, " must be at least 1"));
  }
  if (absl::GetFlag(FLAGS_exit_timeout_secs) < 0) {
    return absl::InvalidArgumentError("--exit_timeout_secs must be >= 0");
  }
  options.threads = absl::GetFlag(FLAGS_threads);
  if (options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--threads=", options.threads, " must be >= 0"));
  }
  if (options.threads == 0) options.threads = std::max(1, UsableCpus() / options.instances);

  SchedulerOptions& scheduler = options.scheduler;
  scheduler.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  scheduler.max_queue_delay = absl::Microseconds(absl::GetFlag(FLAGS_max_queue_delay_us));
  scheduler.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  if (scheduler.max_batch_size < 0 || absl::GetFlag(FLAGS_max_queue_delay_us) < 0 ||
      scheduler.max_queue_size < 1) {
    return absl::InvalidArgumentError(
        "--max_batch_size and --max_queue_delay_us must be >= 0, --max_queue_size >= 1");
  }
  for (const std::string& text : absl::GetFlag(FLAGS_preferred_batch_sizes)) {
    int size = 0;
    if (!absl::SimpleAtoi(text, &size) || size < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--preferred_batch_sizes: '", text, "' is not a positive integer"));
    }
    scheduler.preferred_batch_sizes.push_back(size);
  }
  return options;
}

int Run() {
  absl::StatusOr<ServerOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "sepconv-server: %s\n", options.status().ToString().c_str());
    return 2;
  }
  if (absl::Status s = InstallSignalHandlers(); !s.ok()) {
    std::fprintf(stderr, "sepconv-server: %s\n", s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<Metrics> metrics = options->metrics_port != 0 ? Metrics::Create() : nullptr;
  auto registry = std::make_shared<ModelRegistry>();
  if (!absl::GetFlag(FLAGS_model_repository).empty()) {
    std::fprintf(stderr, "sepconv-server: --model_repository is not supported yet\n");
    return 2;
  }
  if (absl::Status s = AddDefaultModel(*options, metrics.get(), registry.get()); !s.ok()) {
    std::fprintf(stderr, "sepconv-server: default model: %s\n", s.ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(*options, registry, metrics.get());
  if (!server.ok()) {
    std::fprintf(stderr, "sepconv-server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr,
               "sepconv-server: serving models [%s] on gRPC port %d, metrics port %d "
               "(%d instance(s) x %d thread(s))\n",
               absl::StrJoin(registry->ModelNames(), ", ").c_str(), (*server)->grpc_port(),
               (*server)->metrics_port(), options->instances, options->threads);
  const int signo = WaitForSignal();
  std::fprintf(stderr, "sepconv-server: signal %d, shutting down (up to %ds)\n", signo,
               absl::GetFlag(FLAGS_exit_timeout_secs));
  (*server)->Shutdown();
  std::fprintf(stderr, "sepconv-server: stopped\n");
  return 0;
}

}  // namespace
}  // namespace sepconv

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves depthwise-separable convolution models over the KServe v2 gRPC API.\n"
      "Usage: sepconv-server [--grpc_port=8001] [--metrics_port=8002] "
      "[--model_repository=DIR] [--max_batch_size=8] ...\n"
      "With no --model_repository it serves the built-in model 'sepconv' "
      "(32 -> 64 channels, 3x3, stride 1).");
  absl::ParseCommandLine(argc, argv);
  return sepconv::Run();
}
