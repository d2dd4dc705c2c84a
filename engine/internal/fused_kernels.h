#ifndef SEPCONV_ENGINE_INTERNAL_FUSED_KERNELS_H_
#define SEPCONV_ENGINE_INTERNAL_FUSED_KERNELS_H_

// The fused depthwise-then-pointwise kernels: one call computes a tile (a
// range of output pixels) of one sample of one layer, NCHW in and NCHW out. The
// depthwise output of the tile (every mid channel, the tile's pixels) is
// written to a per-thread scratch small enough to stay in the core's cache,
// and the pointwise convolution (a small matrix product: out channels x mid
// channels times mid channels x the tile's pixels) reads it from there and
// writes each output channel's rows straight into the NCHW output, where
// they are contiguous. So a layer reads its input once and writes its output
// once; the intermediate never reaches memory. One build per ISA
// (fused_kernels_avx512.cc, fused_kernels_avx2.cc: the same template code,
// compiled for each); engine/fused_plan.cc picks one at run time.

#include <cstdint>

#include "engine/model_spec.h"

namespace sepconv {
namespace internal {

// Floats per 64-byte cache line.
inline constexpr int64_t kLineFloats = 16;

// One layer as the kernels take it: geometry, weights prepared by the plan,
// and the scratch layout of one tile.
struct FusedLayerView {
  int64_t in_channels = 0, mid_channels = 0, out_channels = 0, depth_multiplier = 1;
  int64_t kernel = 3, stride = 1, dilation = 1, pad = 1;
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  const float* dw_weights = nullptr;  // [mid][kernel * kernel]
  const float* dw_bias = nullptr;     // [mid] (zeros without a bias)
  // [ceil(out / mr)][mid][mr]: each block of `mr` output channels' weights,
  // mid channel by mid channel; zero past the last output channel.
  const float* pw_packed = nullptr;
  const float* pw_bias = nullptr;  // [ceil(out / mr) * mr], zeros past out (and without a bias)
  Activation dw_activation = Activation::kNone, pw_activation = Activation::kNone;
  // Output written with non-temporal stores, past the caches: no read for
  // ownership of lines the output will overwrite whole, which a tensor
  // larger than the caches otherwise pays in memory traffic (the plan
  // chooses it by timing). Where a vector is not aligned to its width (a
  // plane not a multiple of 16 floats, an unaligned caller's buffer) it is
  // stored as usual. A pixel block starts on a cache line, so AVX2's two
  // vectors of 8 floats stream a whole line together: streaming one half
  // and storing the other as usual made the plan 10x slower on an AVX2 EPYC.
  bool stream_output = false;
  // The depthwise conv reads the input rows where they are, the padding's
  // columns read as zeros by masked loads, rather than from a zero-padded
  // copy of them in the scratch. Only for a 3x3 kernel at stride and
  // dilation 1.
  bool read_in_place = false;
  // Scratch of one tile: mid channels at mid_ld floats apart (from up to a
  // cache line in: where the tile's first pixel falls on a line), then, read
  // in place, one row of phase_ld zeros (the padding's rows); else the input
  // rows the depthwise conv reads, each zero-padded and split into `stride`
  // phases (columns i*stride + r) of phase_ld floats, then (stride above 1)
  // one row of stride * phase_ld floats to split a row from.
  int64_t mid_ld = 0, phase_ld = 0;
};

// Output pixels [p0, p1) of every output channel's plane (row-major, so a
// range of whole and partial rows) of one sample: `in` and `out` are the
// sample's NCHW input and output, `scratch` (64-byte aligned) holds the
// mid channels' rows that cover the range (mid_ld floats each) and the
// input rows they read.
using FusedTileFn = void (*)(const FusedLayerView& layer, const float* in, float* out, int64_t p0,
                             int64_t p1, float* scratch);

struct FusedKernels {
  const char* isa;   // "avx512", "avx2"
  int mr;            // output channels per pointwise block (the weights' packing)
  int lanes;         // floats per vector
  int block_pixels;  // pixels per pointwise block
  FusedTileFn tile;
};

// Each defined in its own file compiled for that ISA: call one only on a CPU
// that has it.
const FusedKernels& FusedKernelsAvx512();
const FusedKernels& FusedKernelsAvx2();

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_FUSED_KERNELS_H_
