// Prints how long loading one model version takes, and the latency of the
// first request at a shape (which builds the oneDNN primitives) against a
// warm request at that shape (median of several).
//
//   load_latency <repository> <model> <version> [N C H W ...]
//
// Shapes default to 1xCx56x56 and 8xCx56x56 (C from the model).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/executor.h"
#include "engine/loader/model_config.h"
#include "engine/loader/model_source.h"

namespace sepconv {
namespace {

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

int Main(int argc, char** argv) {
  if (argc < 4 || (argc - 4) % 4 != 0) {
    std::fprintf(stderr, "usage: %s <repository> <model> <version> [N C H W ...]\n", argv[0]);
    return 2;
  }
  const std::string model_dir = absl::StrCat(argv[1], "/", argv[2]);
  const auto load_start = std::chrono::steady_clock::now();
  ModelConfig config;
  absl::StatusOr<ModelConfig> parsed = ReadModelConfigFile(model_dir + "/config.pbtxt");
  if (parsed.ok()) config = *parsed;
  absl::StatusOr<LoadedModel> loaded =
      LoadModelVersion(config, argv[2], absl::StrCat(model_dir, "/", argv[3]));
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(loaded->spec);
  if (!executor.ok()) {
    std::fprintf(stderr, "%s\n", executor.status().ToString().c_str());
    return 1;
  }
  const double load_ms = Ms(std::chrono::steady_clock::now() - load_start);
  std::printf(
      "model %s version %s: %zu layers, load (parse+import+fold+Executor::Create) %.2f ms\n",
      argv[2], argv[3], loaded->spec->layers.size(), load_ms);

  std::vector<Dims4> shapes;
  for (int i = 4; i + 3 < argc; i += 4) {
    shapes.push_back({std::atoll(argv[i]), std::atoll(argv[i + 1]), std::atoll(argv[i + 2]),
                      std::atoll(argv[i + 3])});
  }
  if (shapes.empty()) {
    const int64_t c = loaded->spec->InChannels();
    shapes = {{1, c, 56, 56}, {8, c, 56, 56}};
  }
  std::printf("%-18s %14s %14s %8s\n", "shape NxCxHxW", "first req ms", "warm p50 ms", "ratio");
  for (const Dims4& d : shapes) {
    absl::StatusOr<Dims4> out_dims = InferOutputShape(*loaded->spec, d);
    if (!out_dims.ok()) {
      std::fprintf(stderr, "%s\n", out_dims.status().ToString().c_str());
      return 1;
    }
    std::vector<float> in(d.n * d.c * d.h * d.w, 0.5f);
    std::vector<float> out(out_dims->n * out_dims->c * out_dims->h * out_dims->w);
    auto t0 = std::chrono::steady_clock::now();
    if (!(*executor)->Run(d, in.data(), out.data()).ok()) return 1;
    const double first = Ms(std::chrono::steady_clock::now() - t0);
    std::vector<double> warm;
    for (int i = 0; i < 21; ++i) {
      t0 = std::chrono::steady_clock::now();
      if (!(*executor)->Run(d, in.data(), out.data()).ok()) return 1;
      warm.push_back(Ms(std::chrono::steady_clock::now() - t0));
    }
    std::nth_element(warm.begin(), warm.begin() + warm.size() / 2, warm.end());
    const double p50 = warm[warm.size() / 2];
    std::printf("%-18s %14.3f %14.3f %7.1fx\n",
                absl::StrCat(d.n, "x", d.c, "x", d.h, "x", d.w).c_str(), first, p50, first / p50);
  }
  return 0;
}

}  // namespace
}  // namespace sepconv

int main(int argc, char** argv) { return sepconv::Main(argc, argv); }
