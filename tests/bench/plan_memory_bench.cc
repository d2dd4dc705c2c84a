// Memory of an executor's cached plans: resident set size (RSS) after an
// executor of the default model (32->64, one separable layer) has warmed 12
// input shapes (batch 1, 2, 4, 8 x 28x28, 56x56, 112x112), with every plan
// owning its buffers (as before the arena) and with one arena per executor,
// each in a fresh child process (fork), side by side. Prints one table.
//
//   plan_memory_bench [--threads=N]   (default 2)

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/executor.h"
#include "engine/internal/onednn_executor.h"
#include "engine/random_model.h"

namespace sepconv {
namespace {

// A /proc/self/status field in MiB (VmRSS, VmHWM), or -1.
double StatusMiB(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::atof(line.c_str() + field.size() + 1) / 1024;
  }
  return -1;
}

struct Figures {
  double created = 0, warmed = 0, peak = 0;
  int failed = 0;
};

Figures Measure(bool arena_per_plan, int threads) {
  Figures f;
  ExecutorOptions options;
  options.threads = threads;
  auto executor = internal::CreateOneDnnExecutor(std::make_shared<const ModelSpec>(DefaultModel()),
                                                 options, OneDnnTuning{{}, 0, arena_per_plan});
  if (!executor.ok()) {
    f.failed = 1;
    return f;
  }
  f.created = StatusMiB("VmRSS");
  std::vector<Dims4> shapes;
  for (int64_t n : {1, 2, 4, 8}) {
    for (int64_t hw : {28, 56, 112}) shapes.push_back(Dims4{n, 32, hw, hw});
  }
  f.failed = (*executor)->Warm(shapes).ok() ? 0 : 1;
  f.warmed = StatusMiB("VmRSS");
  f.peak = StatusMiB("VmHWM");
  return f;
}

}  // namespace
}  // namespace sepconv

int main(int argc, char** argv) {
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      std::fprintf(stderr, "usage: %s [--threads=N]\n", argv[0]);
      return 2;
    }
  }
  std::printf(
      "| buffers | RSS after Create MiB | RSS after warming 12 shapes MiB | peak RSS MiB |\n");
  std::printf("|---|---:|---:|---:|\n");
  int status_sum = 0;
  for (bool per_plan : {true, false}) {
    int fds[2];
    if (pipe(fds) != 0) return 1;
    const pid_t child = fork();
    if (child == 0) {  // measure in a fresh process: RSS is per process
      close(fds[0]);
      const sepconv::Figures f = sepconv::Measure(per_plan, threads);
      const bool written = write(fds[1], &f, sizeof(f)) == static_cast<ssize_t>(sizeof(f));
      _exit(written && f.failed == 0 ? 0 : 1);
    }
    close(fds[1]);
    sepconv::Figures f;
    const bool read_all = read(fds[0], &f, sizeof(f)) == static_cast<ssize_t>(sizeof(f));
    close(fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (!read_all || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "measuring %s failed\n", per_plan ? "per-plan" : "arena");
      status_sum = 1;
      continue;
    }
    std::printf("| %s | %.1f | %.1f | %.1f |\n",
                per_plan ? "per plan (before)" : "one arena per executor", f.created, f.warmed,
                f.peak);
  }
  return status_sum;
}
