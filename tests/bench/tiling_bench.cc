// Does running depthwise then pointwise on row tiles pay on this machine?
// For each separable layer shape (3x3, stride 1, fp32, NCHW in and out) it
// times, side by side in one process:
//  - the engine (Executor::Create, its tuned layout, whole-tensor
//    primitives, oneDNN's own threading), and
//  - a row-tiled pipeline over oneDNN primitives: each OpenMP thread takes
//    (sample, tile of th output rows) jobs and, with single-threaded
//    primitives (oneDNN runs sequentially inside a parallel region), reorders
//    the tile's NCHW input rows plus a halo of one row to nhwc, runs the
//    depthwise conv into a thread-local tile and the pointwise conv as a
//    matmul straight into the tile's rows of the NCHW output: the
//    intermediate never leaves the core's L2.
// Prints medians of per-iteration times per tile height and the best tiled
// time over the engine's. Speed is reported, never asserted.
//
//   tiling_bench [--threads=2] [--iterations=200]

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/executor.h"
#include "engine/random_model.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {
namespace {

using dnnl::memory;
using Conv = dnnl::convolution_forward;
constexpr memory::data_type kF32 = memory::data_type::f32;

int g_iterations = 200;

template <typename F>
double MedianMs(F&& f) {
  f();
  std::vector<double> times;
  for (int i = 0; i < g_iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// The row-tiled pipeline for one layer (weights from `layer`) on [n, c, h, w].
class TiledLayer {
 public:
  TiledLayer(const Layer& layer, int64_t n, int64_t h, int64_t w, int64_t tile, int threads)
      : n_(n),
        c_(layer.spec.in_channels),
        co_(layer.spec.out_channels),
        h_(h),
        w_(w),
        tile_(tile),
        threads_(threads),
        engine_(dnnl::engine::kind::cpu, 0) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);  // primitives made for one thread each
    dnnl::stream stream(engine_);
    memory dw_plain(memory::desc({c_, 1, 1, 3, 3}, kF32, memory::format_tag::goihw), engine_,
                    const_cast<float*>(layer.weights.depthwise.data()));
    dw_bias_ = memory(memory::desc({c_}, kF32, memory::format_tag::x), engine_,
                      const_cast<float*>(layer.weights.depthwise_bias.data()));
    pw_weights_ = memory(memory::desc({1, co_, c_}, kF32, memory::dims{co_ * c_, c_, 1}), engine_,
                         const_cast<float*>(layer.weights.pointwise.data()));
    pw_bias_ = memory(memory::desc({1, co_, 1}, kF32, memory::dims{co_, 1, 1}), engine_,
                      const_cast<float*>(layer.weights.pointwise_bias.data()));
    for (int64_t r0 = 0; r0 < h_; r0 += tile_) {
      const int64_t rows = std::min(tile_, h_ - r0);
      const int top = r0 == 0, bottom = r0 + rows == h_;
      const auto key = std::make_tuple(rows, top, bottom);
      if (geometry_.count(key)) continue;
      Geometry g;
      const int64_t in_rows = rows + 2 - top - bottom;
      const memory::desc src = Nhwc(c_, in_rows), mid = Nhwc(c_, rows);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const Conv::primitive_desc dw_pd(
          Conv::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
                     memory::desc({c_, 1, 1, 3, 3}, kF32, memory::format_tag::any),
                     dw_bias_.get_desc(), mid, {1, 1}, {top, 1}, {bottom, 1}),
          attr, engine_);
      g.dw = Conv(dw_pd);
      if (!dw_weights_) {
        dw_weights_ = memory(dw_pd.weights_desc(), engine_);
        dnnl::reorder(dw_plain, dw_weights_).execute(stream, dw_plain, dw_weights_);
        stream.wait();
      }
      g.user_in =
          memory::desc({1, c_, in_rows, w_}, kF32, memory::dims{c_ * h_ * w_, h_ * w_, w_, 1});
      g.tile_in = src;
      g.mid = mid;
      g.to_nhwc = dnnl::reorder(memory(g.user_in, engine_, DNNL_MEMORY_NONE),
                                memory(src, engine_, DNNL_MEMORY_NONE));
      const int64_t hw = rows * w_;
      g.mid_as_matrix = memory::desc({1, c_, hw}, kF32, memory::dims{hw * c_, 1, c_});
      g.out_rows = memory::desc({1, co_, hw}, kF32, memory::dims{co_ * h_ * w_, h_ * w_, 1});
      dnnl::post_ops ops;
      ops.append_binary(dnnl::algorithm::binary_add, pw_bias_.get_desc());
      attr.set_post_ops(ops);
      const dnnl::matmul::primitive_desc pw_pd(
          dnnl::matmul::desc(pw_weights_.get_desc(), g.mid_as_matrix, g.out_rows), attr, engine_);
      g.pw = dnnl::matmul(pw_pd);
      scratch_bytes_ = std::max(
          {scratch_bytes_, dw_pd.scratchpad_desc().get_size(), pw_pd.scratchpad_desc().get_size()});
      impl_ = std::string(dw_pd.impl_info_str()) + " + " + pw_pd.impl_info_str();
      geometry_.emplace(key, std::move(g));
    }
    omp_set_num_threads(saved);
    scratch_bytes_ = std::max<size_t>(scratch_bytes_, 64);
    for (int t = 0; t < threads_; ++t) {
      per_thread_.push_back(
          PerThread{dnnl::stream(engine_), std::vector<float>((tile_ + 2) * w_ * c_),
                    std::vector<float>(tile_ * w_ * c_), std::vector<char>(scratch_bytes_)});
    }
  }

  void Run(const float* input, float* output) {
    const int64_t tiles = (h_ + tile_ - 1) / tile_;
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int64_t job = 0; job < n_ * tiles; ++job) {
      PerThread& t = per_thread_[omp_get_thread_num()];
      const int64_t sample = job / tiles, r0 = (job % tiles) * tile_;
      const int64_t rows = std::min(tile_, h_ - r0);
      const int top = r0 == 0, bottom = r0 + rows == h_;
      Geometry& g = geometry_.at(std::make_tuple(rows, top, bottom));
      const float* in = input + sample * c_ * h_ * w_ + (r0 - 1 + top) * w_;
      memory user(g.user_in, engine_, const_cast<float*>(in));
      memory tile_in(g.tile_in, engine_, t.tile_in.data());
      memory mid(g.mid, engine_, t.mid.data());
      memory scratch(memory::desc({static_cast<int64_t>(scratch_bytes_)}, memory::data_type::u8,
                                  memory::format_tag::x),
                     engine_, t.scratch.data());
      g.to_nhwc.execute(t.stream, user, tile_in);
      g.dw.execute(t.stream, {{DNNL_ARG_SRC, tile_in},
                              {DNNL_ARG_WEIGHTS, dw_weights_},
                              {DNNL_ARG_BIAS, dw_bias_},
                              {DNNL_ARG_DST, mid},
                              {DNNL_ARG_SCRATCHPAD, scratch}});
      memory mid_matrix(g.mid_as_matrix, engine_, t.mid.data());
      memory out(g.out_rows, engine_, output + sample * co_ * h_ * w_ + r0 * w_);
      g.pw.execute(t.stream, {{DNNL_ARG_SRC, pw_weights_},
                              {DNNL_ARG_WEIGHTS, mid_matrix},
                              {DNNL_ARG_DST, out},
                              {DNNL_ARG_SCRATCHPAD, scratch},
                              {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, pw_bias_}});
      t.stream.wait();
    }
  }

  const std::string& impl() const { return impl_; }

 private:
  struct Geometry {
    Conv dw;
    dnnl::matmul pw;
    dnnl::reorder to_nhwc;
    memory::desc user_in, tile_in, mid, mid_as_matrix, out_rows;
  };
  struct PerThread {
    dnnl::stream stream;
    std::vector<float> tile_in, mid;
    std::vector<char> scratch;
  };
  memory::desc Nhwc(int64_t c, int64_t rows) const {
    return memory::desc({1, c, rows, w_}, kF32, memory::format_tag::nhwc);
  }

  const int64_t n_, c_, co_, h_, w_, tile_;
  const int threads_;
  dnnl::engine engine_;
  memory dw_weights_, dw_bias_, pw_weights_, pw_bias_;
  std::map<std::tuple<int64_t, int, int>, Geometry> geometry_;
  size_t scratch_bytes_ = 0;
  std::vector<PerThread> per_thread_;
  std::string impl_;
};

}  // namespace
}  // namespace sepconv

int main(int argc, char** argv) {
  using namespace sepconv;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::max(1, std::atoi(argv[i] + 10));
    } else if (std::strncmp(argv[i], "--iterations=", 13) == 0) {
      g_iterations = std::max(1, std::atoi(argv[i] + 13));
    } else {
      std::fprintf(stderr, "usage: %s [--threads=N] [--iterations=N]\n", argv[0]);
      return 2;
    }
  }
  const int64_t tiles[] = {4, 8, 14, 28};
  std::printf("fp32, %d threads, 3x3 stride 1, NCHW in and out, medians of %d iterations\n",
              threads, g_iterations);
  std::printf("| case | engine ms |");
  for (int64_t t : tiles) std::printf(" tiled th=%lld ms |", static_cast<long long>(t));
  std::printf(" best tiled / engine |\n|---|---:|");
  for (size_t i = 0; i < std::size(tiles); ++i) std::printf("---:|");
  std::printf("---:|\n");
  std::string impl;
  const int64_t shapes[][4] = {{1, 32, 64, 112},  {1, 128, 128, 56},  {1, 512, 512, 14},
                               {16, 32, 64, 112}, {16, 128, 128, 56}, {16, 512, 512, 14}};
  for (const auto& s : shapes) {
    LayerSpec spec;
    spec.in_channels = s[1];
    spec.out_channels = s[2];
    auto model = std::make_shared<const ModelSpec>(MakeRandomModel({spec}, 0).value());
    const Dims4 dims{s[0], s[1], s[3], s[3]};
    std::vector<float> input(dims.n * dims.c * dims.h * dims.w, 0.5f);
    std::vector<float> output(dims.n * s[2] * dims.h * dims.w), tiled(output.size());
    ExecutorOptions options;
    options.threads = threads;
    auto executor = Executor::Create(model, options);
    if (!executor.ok()) return 1;
    const double engine_ms = MedianMs([&] {
      if (!(*executor)->Run(dims, input.data(), output.data()).ok()) std::abort();
    });
    std::printf("| %lldx%lld-%lldx%lld | %.3f |", static_cast<long long>(s[0]),
                static_cast<long long>(s[1]), static_cast<long long>(s[2]),
                static_cast<long long>(s[3]), engine_ms);
    double best = 1e30;
    for (int64_t t : tiles) {
      if (t > dims.h) {
        std::printf(" - |");
        continue;
      }
      TiledLayer layer(model->layers[0], dims.n, dims.h, dims.w, t, threads);
      impl = layer.impl();
      const double ms = MedianMs([&] { layer.Run(input.data(), tiled.data()); });
      // Same answer as the engine (both fp32; summation orders differ).
      for (size_t i = 0; i < output.size(); i += 97) {
        if (std::abs(output[i] - tiled[i]) > 1e-3f * (1 + std::abs(output[i]))) {
          std::fprintf(stderr, "tiled th=%lld differs from the engine at %zu\n",
                       static_cast<long long>(t), i);
          return 1;
        }
      }
      best = std::min(best, ms);
      std::printf(" %.3f |", ms);
    }
    std::printf(" %.2fx |\n", best / engine_ms);
  }
  std::printf("tiled primitives: %s; oneDNN ISA %d (dnnl::cpu_isa)\n", impl.c_str(),
              static_cast<int>(dnnl::get_effective_cpu_isa()));
  return 0;
}
