#ifndef SEPCONV_ENGINE_INTERNAL_FUSED_KERNELS_IMPL_H_
#define SEPCONV_ENGINE_INTERNAL_FUSED_KERNELS_IMPL_H_

// The fused kernels' code, a template on the vector type `V` (see
// fused_kernels_avx512.cc for what V provides). Included only by the
// per-ISA files, each with its own V in an anonymous namespace: every
// instantiation is then local to the file compiled for its ISA, so the linker
// can never hand an AVX-512 build of a function to the AVX2 path. For the
// same reason nothing here is a non-template inline function and nothing
// calls an inline template of the standard library.

#include <cstdint>

#include "engine/internal/fused_kernels.h"

namespace sepconv {
namespace internal {
namespace fused {

template <class V>
typename V::Reg Activate(typename V::Reg x, Activation activation) {
  if (activation == Activation::kNone) return x;
  x = V::Max(x, V::Zero());
  return activation == Activation::kRelu6 ? V::Min(x, V::Set1(6.f)) : x;
}

// Zeros `n` floats at `p`, a vector at a time (a call to memset costs more
// than the few vectors a row's padding takes).
template <class V>
[[gnu::always_inline]] inline void ZeroFloats(float* p, int64_t n) {
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) V::Store(p + i, V::Zero());
  if (i < n) V::StoreFirst(p + i, V::Zero(), static_cast<int>(n - i));
}

// Copies `n` floats from `src` to `dst`, a vector at a time.
template <class V>
[[gnu::always_inline]] inline void CopyFloats(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) V::Store(dst + i, V::Load(src + i));
  if (i < n) {
    const int left = static_cast<int>(n - i);
    V::StoreFirst(dst + i, V::LoadFirst(src + i, left), left);
  }
}

// The `count` input rows from `iy0` on of one channel plane, zero-padded and
// split into phases (see FusedLayerView), into `phases`. A strided row is
// first laid out padded in `row_buffer` (stride * phase_ld floats), where
// phase r's column i is at i * stride + r: for stride 2 the two phases are
// then its even and odd floats, split a vector pair at a time. The rows are
// copied and zeroed in vectors rather than by three memcpy and memset calls
// a row (a few hundred bytes or less each): the calls were 8-10% of a
// profile of a 32-channel 112x112 layer on one thread, and the loops took
// 1-3% off its time (a layer that now reads its input in place).
template <class V>
void FillPhases(const FusedLayerView& l, const float* plane, int64_t iy0, int64_t count,
                float* phases, float* row_buffer) {
  const int64_t s = l.stride, ld = l.phase_ld;
  for (int64_t j = 0; j < count; ++j) {
    const int64_t iy = iy0 + j;
    float* row = phases + j * s * ld;
    if (iy < 0 || iy >= l.in_h) {
      ZeroFloats<V>(row, s * ld);
      continue;
    }
    const float* src = plane + iy * l.in_w;
    float* padded = s == 1 ? row : row_buffer;
    ZeroFloats<V>(padded, l.pad);
    CopyFloats<V>(padded + l.pad, src, l.in_w);
    ZeroFloats<V>(padded + l.pad + l.in_w, s * ld - l.pad - l.in_w);
    if (s == 1) continue;
    if (s == 2) {
      for (int64_t i = 0; i < ld; i += V::kLanes) {
        V::Deinterleave2(row_buffer + 2 * i, row + i, row + ld + i);
      }
      continue;
    }
    for (int64_t r = 0; r < s; ++r) {
      for (int64_t i = 0; i < ld; ++i) row[r * ld + i] = row_buffer[i * s + r];
    }
  }
}

// Depthwise output rows [0, rows) of the tile for mid channel `m`, from the
// phases, into `dst` (rows of out_w floats, back to back). Each row's last
// vector may spill up to a vector past the row: into the next row, written
// after it, or into the mid channel's slack. Taps are summed in kernel
// order after the bias for every pixel, whatever the tile.
template <class V, int K>
void DepthwiseRows(const FusedLayerView& l, const float* phases, int64_t m, int64_t rows,
                   float* dst) {
  const int64_t k = K > 0 ? K : l.kernel, s = l.stride, d = l.dilation, ld = l.phase_ld;
  constexpr int kMaxTaps = 49;
  int64_t offset[kMaxTaps];
  typename V::Reg weight[K > 0 ? K * K : 1];
  const float* w = l.dw_weights + m * k * k;
  for (int64_t ky = 0; ky < k; ++ky) {
    for (int64_t kx = 0; kx < k; ++kx) {
      const int64_t t = kx * d;
      offset[ky * k + kx] = ky * d * s * ld + (t % s) * ld + t / s;
      if constexpr (K > 0) weight[ky * K + kx] = V::Set1(w[ky * K + kx]);
    }
  }
  const typename V::Reg bias = V::Set1(l.dw_bias[m]);
  for (int64_t r = 0; r < rows; ++r) {
    const float* base = phases + r * s * s * ld;
    float* out = dst + r * l.out_w;
    for (int64_t x = 0; x < l.out_w; x += V::kLanes) {
      typename V::Reg acc = bias;
      if constexpr (K > 0) {
#pragma GCC unroll 49
        for (int i = 0; i < K * K; ++i) acc = V::Fma(weight[i], V::Load(base + offset[i] + x), acc);
      } else {
        for (int64_t i = 0; i < k * k; ++i) {
          acc = V::Fma(V::Set1(w[i]), V::Load(base + offset[i] + x), acc);
        }
      }
      V::Store(out + x, Activate<V>(acc, l.dw_activation));
    }
  }
}

// One vector of each of R depthwise output rows, at output column x, for a
// 3x3 kernel at stride and dilation 1, read in place: `rows` are the R + 2
// input rows the output rows read (a row of zeros where one falls in the
// padding), `c0` (x - pad) the input column of lane 0's left tap. With
// kEdge, tap k's lanes outside `mask[k]` (columns left of the row or from
// its width on: the padding) read as zeros, their memory untouched (the
// vector's address may be before the row); else every lane is inside the
// row. Each input row's three shifted vectors are loaded once and feed every
// output row that reads them: R + 2 rows of loads for R rows of output,
// against 3 rows of loads for each. Every pixel sums the same terms in the
// same order as DepthwiseRows (the bias, then the taps row by row).
template <class V, int R, bool kEdge>
[[gnu::always_inline]] inline void Depthwise3x3Vector(const float* const (&rows)[R + 2], int64_t c0,
                                                      const typename V::Mask (&mask)[3],
                                                      const typename V::Reg (&weight)[9],
                                                      typename V::Reg bias, Activation activation,
                                                      int64_t out_w, float* dst) {
  typename V::Reg acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = bias;
#pragma GCC unroll 10
  for (int j = 0; j < R + 2; ++j) {
    const float* p = rows[j] + c0;
    typename V::Reg v0, v1, v2;
    if constexpr (kEdge) {
      v0 = V::LoadLanes(p, mask[0]);
      v1 = V::LoadLanes(p + 1, mask[1]);
      v2 = V::LoadLanes(p + 2, mask[2]);
    } else {
      v0 = V::Load(p);
      v1 = V::Load(p + 1);
      v2 = V::Load(p + 2);
    }
    V::Keep(v0, v1, v2);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const int ky = j - r;
      if (ky < 0 || ky > 2) continue;
      acc[r] = V::Fma(weight[ky * 3], v0, acc[r]);
      acc[r] = V::Fma(weight[ky * 3 + 1], v1, acc[r]);
      acc[r] = V::Fma(weight[ky * 3 + 2], v2, acc[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) V::Store(dst + r * out_w, Activate<V>(acc[r], activation));
}

// Depthwise output rows [y, y + R) of the tile (input rows from iy = y - pad
// on, `zero` standing for those outside the plane) into `dst` (rows of out_w
// floats), vector by vector. A row's last vector may spill up to a vector
// past the row, as in DepthwiseRows: the vectors go from the row's end to
// its start, so the next row's first vector, stored later, overwrites what
// spilled into it (masked stores of the last vector instead made a
// 512-channel 14x14 layer 1.1x slower on cold caches).
template <class V, int R>
[[gnu::always_inline]] inline void Depthwise3x3Rows(const FusedLayerView& l, const float* plane,
                                                    const float* zero, int64_t iy,
                                                    const typename V::Reg (&weight)[9],
                                                    typename V::Reg bias, float* dst) {
  const float* rows[R + 2];
#pragma GCC unroll 10
  for (int j = 0; j < R + 2; ++j) {
    rows[j] = iy + j >= 0 && iy + j < l.in_h ? plane + (iy + j) * l.in_w : zero;
  }
  constexpr int64_t kLanes = V::kLanes;
  const int64_t w = l.out_w, in_w = l.in_w;
  const Activation a = l.dw_activation;
  for (int64_t x = (w - 1) / kLanes * kLanes; x >= 0; x -= kLanes) {
    const int64_t c0 = x - l.pad;
    typename V::Mask mask[3];
    if (c0 >= 0 && c0 + kLanes + 2 <= in_w) {
      Depthwise3x3Vector<V, R, false>(rows, c0, mask, weight, bias, a, w, dst + x);
      continue;
    }
    for (int k = 0; k < 3; ++k) {
      const int64_t first = -(c0 + k), end = in_w - (c0 + k);
      const int64_t lo = first < 0 ? 0 : first > kLanes ? kLanes : first;
      const int64_t hi = end < lo ? lo : end > kLanes ? kLanes : end;
      mask[k] = V::Lanes(static_cast<int>(lo), static_cast<int>(hi));
    }
    Depthwise3x3Vector<V, R, true>(rows, c0, mask, weight, bias, a, w, dst + x);
  }
}

// DepthwiseRows for a 3x3 kernel at stride and dilation 1 (most of a
// MobileNet's layers), reading the input plane in place (no row is copied
// into the phases: `zero`, at least in_w zeros, stands for the padding rows),
// DR output rows at a time (what the ISA's registers hold beside the 9
// weights and 3 loaded vectors), then the rows left over. DepthwiseRows
// loads 9 vectors per output vector; this loads 3 (DR + 2) / DR, and on a
// 32-to-64-channel 112x112 layer (AVX-512, one thread, caches warm) the
// layer took 0.9x the time (docs/performance.md, "The fused depthwise, row
// by row"). Reading in place rather than from a padded copy took the
// batch-1 fused seed layers to 0.86-0.92x through the server at two threads
// ("Reading the input in place").
template <class V, int DR>
void Depthwise3x3Stride1(const FusedLayerView& l, const float* plane, const float* zero,
                         int64_t iy0, int64_t m, int64_t rows, float* dst) {
  const int64_t w = l.out_w;
  typename V::Reg weight[9];
#pragma GCC unroll 9
  for (int i = 0; i < 9; ++i) weight[i] = V::Set1(l.dw_weights[m * 9 + i]);
  const typename V::Reg bias = V::Set1(l.dw_bias[m]);
  int64_t r = 0;
  for (; r + DR <= rows; r += DR) {
    Depthwise3x3Rows<V, DR>(l, plane, zero, iy0 + r, weight, bias, dst + r * w);
  }
  const int64_t left = rows - r;  // < DR
  if constexpr (DR > 3) {
    if (left == 3) Depthwise3x3Rows<V, 3>(l, plane, zero, iy0 + r, weight, bias, dst + r * w);
  }
  if constexpr (DR > 2) {
    if (left == 2) Depthwise3x3Rows<V, 2>(l, plane, zero, iy0 + r, weight, bias, dst + r * w);
  }
  if (left == 1) Depthwise3x3Rows<V, 1>(l, plane, zero, iy0 + r, weight, bias, dst + r * w);
}

// The pointwise block's multiply-adds: onto `acc` (MR output channels x NV
// vectors of pixels), mid channels [0, mids) of `mid` (mid_ld apart) in
// order, times `weights` (WS per mid channel). Inlined, so that `acc` stays
// in registers.
template <class V, int MR, int NV, int WS>
[[gnu::always_inline]] inline void MultiplyAdd(const float* weights, const float* mid,
                                               int64_t mid_ld, int64_t mids,
                                               typename V::Reg (&acc)[MR][NV]) {
  for (int64_t c = 0; c < mids; ++c) {
    const float* row = mid + c * mid_ld;
    const float* w = weights + c * WS;
    typename V::Reg x[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) x[j] = V::Load(row + j * V::kLanes);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const typename V::Reg a = V::Set1(w[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::Fma(a, x[j], acc[i][j]);
    }
  }
}

// One block of the pointwise product: MR output channels (rows of `out`,
// out_ld apart) times `pixels` (<= NV vectors) pixels, summing mid channels
// [0, mids) of `mid` (mid_ld apart) in order onto the bias (`first`) or onto
// what `out` holds (a previous block of mid channels), the activation after
// the `last` block. Either way every output sums the same terms in the same
// order. With `stream` (only for the `last` block), whole vectors aligned
// to their width are stored non-temporally. `weights` holds WS (>= MR) output
// channels' weights per mid channel (the packing's block).
template <class V, int MR, int NV, int WS>
void PointwiseBlock(const float* weights, const float* bias, const float* mid, int64_t mid_ld,
                    int64_t mids, bool first, bool last, bool stream, Activation activation,
                    int64_t channels, int64_t pixels, float* out, int64_t out_ld) {
  typename V::Reg acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    const typename V::Reg b = V::Set1(bias[i]);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      const int64_t left = pixels - j * V::kLanes;
      if (first || i >= channels || left <= 0) {
        acc[i][j] = b;
      } else if (left >= V::kLanes) {
        acc[i][j] = V::Load(out + i * out_ld + j * V::kLanes);
      } else {
        acc[i][j] = V::LoadFirst(out + i * out_ld + j * V::kLanes, static_cast<int>(left));
      }
    }
  }
  MultiplyAdd<V, MR, NV, WS>(weights, mid, mid_ld, mids, acc);
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= channels) break;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      const int64_t left = pixels - j * V::kLanes;
      if (left <= 0) break;
      const typename V::Reg y = last ? Activate<V>(acc[i][j], activation) : acc[i][j];
      float* dst = out + i * out_ld + j * V::kLanes;
      if (left < V::kLanes) {
        V::StoreFirst(dst, y, static_cast<int>(left));
      } else if (stream && reinterpret_cast<uintptr_t>(dst) % sizeof(typename V::Reg) == 0) {
        V::Stream(dst, y);
      } else {
        V::Store(dst, y);
      }
    }
  }
}

// PointwiseBlock for a whole block (MR channels, NV whole vectors of
// pixels, as most of a layer's blocks are): nothing is checked per lane or
// channel, and it is inlined into the pixel loop. At 32 mid channels a
// block's product is about 200 cycles, and the calls and per-vector checks
// around it took a quarter of the pointwise time. Sums the same terms in the
// same order as PointwiseBlock.
template <class V, int MR, int NV, int WS>
[[gnu::always_inline]] inline void PointwiseWhole(const float* weights, const float* bias,
                                                  const float* mid, int64_t mid_ld, int64_t mids,
                                                  bool first, bool last, bool stream,
                                                  Activation activation, float* out,
                                                  int64_t out_ld) {
  typename V::Reg acc[MR][NV];
  if (first) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const typename V::Reg b = V::Set1(bias[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = b;
    }
  } else {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::Load(out + i * out_ld + j * V::kLanes);
    }
  }
  MultiplyAdd<V, MR, NV, WS>(weights, mid, mid_ld, mids, acc);
  if (last && activation != Activation::kNone) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = Activate<V>(acc[i][j], activation);
    }
  }
  if (stream) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        float* dst = out + i * out_ld + j * V::kLanes;
        if (reinterpret_cast<uintptr_t>(dst) % sizeof(typename V::Reg) == 0) {
          V::Stream(dst, acc[i][j]);
        } else {
          V::Store(dst, acc[i][j]);
        }
      }
    }
    return;
  }
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) V::Store(out + i * out_ld + j * V::kLanes, acc[i][j]);
  }
}

// PointwiseWhole where the block is whole, else PointwiseBlock.
template <class V, int MR, int NV, int WS>
[[gnu::always_inline]] inline void PointwiseAny(const float* weights, const float* bias,
                                                const float* mid, int64_t mid_ld, int64_t mids,
                                                bool first, bool last, bool stream,
                                                Activation activation, int64_t channels,
                                                int64_t pixels, float* out, int64_t out_ld) {
  if (channels >= MR && pixels >= NV * V::kLanes) {
    PointwiseWhole<V, MR, NV, WS>(weights, bias, mid, mid_ld, mids, first, last, stream, activation,
                                  out, out_ld);
  } else {
    PointwiseBlock<V, MR, NV, WS>(weights, bias, mid, mid_ld, mids, first, last, stream, activation,
                                  channels, pixels, out, out_ld);
  }
}

// Mid channels per pass of the pointwise product: a pass's slice of a pixel
// block (kMidsPerPass x NV vectors) stays in L1 while every block of output
// channels reads it.
constexpr int64_t kMidsPerPass = 128;

// A block of MR output channels (`channels` of them left), as
// PointwiseBlock. The last block, when a third or two thirds of MR cover
// what is left (64 output channels in blocks of 12 leave 4), runs as a block
// that size instead of computing rows of zeros; every output still sums the
// same terms in the same order.
template <class V, int MR, int NV>
[[gnu::always_inline]] inline void PointwiseRows(const float* weights, const float* bias,
                                                 const float* mid, int64_t mid_ld, int64_t mids,
                                                 bool first, bool last, bool stream,
                                                 Activation activation, int64_t channels,
                                                 int64_t pixels, float* out, int64_t out_ld) {
  if constexpr (MR % 3 == 0) {
    if (channels <= MR / 3) {
      PointwiseAny<V, MR / 3, NV, MR>(weights, bias, mid, mid_ld, mids, first, last, stream,
                                      activation, channels, pixels, out, out_ld);
      return;
    }
    if (channels <= 2 * MR / 3) {
      PointwiseAny<V, 2 * MR / 3, NV, MR>(weights, bias, mid, mid_ld, mids, first, last, stream,
                                          activation, channels, pixels, out, out_ld);
      return;
    }
  }
  PointwiseAny<V, MR, NV, MR>(weights, bias, mid, mid_ld, mids, first, last, stream, activation,
                              channels, pixels, out, out_ld);
}

// Asks for the cache lines of `pixels` output floats at `out` in each of
// `channels` planes (out_plane floats apart): a block's output lines, the
// block before it runs.
template <class V>
void PrefetchOutput(const float* out, int64_t channels, int64_t pixels, int64_t out_plane) {
  for (int64_t i = 0; i < channels; ++i) {
    const float* row = out + i * out_plane;
    for (int64_t q = 0; q < pixels; q += kLineFloats) V::Prefetch(row + q);
    V::Prefetch(row + pixels - 1);
  }
}

// The pointwise product of the tile's pixels [0, pixels) of `mid` into
// `out` (the first of them, out_plane floats between output channels): per
// pass of mid channels, per block of NV vectors of pixels (a narrower block
// for a tail of one vector or less), every block of MR output channels,
// whose lines of the next pixel block are asked for meanwhile in the first
// pass (later passes find them in cache). Output lines not in cache (the
// server's usual case: its transport passes several megabytes through the
// caches between requests) would otherwise stall each block's stores on
// their reads for ownership, one channel at a time.
template <class V, int MR, int NV>
void Pointwise(const FusedLayerView& l, const float* mid, int64_t pixels, float* out,
               int64_t out_plane) {
  constexpr int64_t kBlock = NV * V::kLanes;
  for (int64_t c0 = 0; c0 < l.mid_channels; c0 += kMidsPerPass) {
    const int64_t mids = l.mid_channels - c0 < kMidsPerPass ? l.mid_channels - c0 : kMidsPerPass;
    const bool first = c0 == 0, last = c0 + mids == l.mid_channels;
    const bool stream = last && l.stream_output;
    const float* pass = mid + c0 * l.mid_ld;
    for (int64_t p = 0; p < pixels; p += kBlock) {
      const bool wide = p + V::kLanes < pixels;
      const int64_t next = p + kBlock < pixels ? p + kBlock : 0;
      const int64_t next_pixels = pixels - next < kBlock ? pixels - next : kBlock;
      for (int64_t cb = 0; cb < l.out_channels; cb += MR) {
        const float* weights = l.pw_packed + cb * l.mid_channels + c0 * MR;
        float* dst = out + cb * out_plane + p;
        if (first && next > 0) {
          const int64_t channels = l.out_channels - cb < MR ? l.out_channels - cb : MR;
          PrefetchOutput<V>(out + cb * out_plane + next, channels, next_pixels, out_plane);
        }
        if (wide) {
          PointwiseRows<V, MR, NV>(weights, l.pw_bias + cb, pass + p, l.mid_ld, mids, first, last,
                                   stream, l.pw_activation, l.out_channels - cb, pixels - p, dst,
                                   out_plane);
        } else {
          PointwiseRows<V, MR, 1>(weights, l.pw_bias + cb, pass + p, l.mid_ld, mids, first, last,
                                  stream, l.pw_activation, l.out_channels - cb, pixels - p, dst,
                                  out_plane);
        }
      }
    }
  }
}

// Asks for the cache lines of `count` input rows from `iy0` on of one
// channel plane (those inside it), while the previous channel computes.
template <class V>
void PrefetchRows(const FusedLayerView& l, const float* plane, int64_t iy0, int64_t count) {
  const int64_t first = iy0 < 0 ? 0 : iy0, end = iy0 + count < l.in_h ? iy0 + count : l.in_h;
  if (first >= end) return;
  const uintptr_t line_start = reinterpret_cast<uintptr_t>(plane + first * l.in_w) & ~uintptr_t{63};
  const float* p = reinterpret_cast<const float*>(line_start);
  for (const float* stop = plane + end * l.in_w; p < stop; p += kLineFloats) V::Prefetch(p);
}

// The tile function (FusedTileFn): the depthwise output rows that hold
// pixels [p0, p1) of the output plane, for every mid channel, into the
// scratch; then the pointwise product of those pixels. A streamed output
// takes the pixels before the first 64-byte boundary apart, so that every
// block after them starts on one.
template <class V, int MR, int NV, int DR>
void Tile(const FusedLayerView& l, const float* in, float* out, int64_t p0, int64_t p1,
          float* scratch) {
  const int64_t y0 = p0 / l.out_w, rows = (p1 + l.out_w - 1) / l.out_w - y0;
  // Each mid channel's rows start where the tile's first pixel falls on a
  // cache line, so that the pointwise blocks read whole lines.
  float* mid = scratch + (kLineFloats - (p0 - y0 * l.out_w) % kLineFloats) % kLineFloats;
  float* phases = scratch + l.mid_channels * l.mid_ld;
  const int64_t need = (rows - 1) * l.stride + (l.kernel - 1) * l.dilation + 1;
  const int64_t plane = l.in_h * l.in_w, iy0 = y0 * l.stride - l.pad;
  if (l.read_in_place) ZeroFloats<V>(phases, l.in_w);
  for (int64_t c = 0; c < l.in_channels; ++c) {
    if (c + 1 < l.in_channels) PrefetchRows<V>(l, in + (c + 1) * plane, iy0, need);
    if (!l.read_in_place) {
      FillPhases<V>(l, in + c * plane, iy0, need, phases, phases + need * l.stride * l.phase_ld);
    }
    for (int64_t j = 0; j < l.depth_multiplier; ++j) {
      const int64_t m = c * l.depth_multiplier + j;
      float* dst = mid + m * l.mid_ld;
      if (l.read_in_place) {
        Depthwise3x3Stride1<V, DR>(l, in + c * plane, phases, iy0, m, rows, dst);
      } else if (l.kernel == 3) {
        DepthwiseRows<V, 3>(l, phases, m, rows, dst);
      } else if (l.kernel == 5) {
        DepthwiseRows<V, 5>(l, phases, m, rows, dst);
      } else {
        DepthwiseRows<V, 0>(l, phases, m, rows, dst);
      }
    }
  }
  const float* tile_mid = mid + (p0 - y0 * l.out_w);
  const int64_t out_plane = l.out_h * l.out_w;
  int64_t head = 0;
  if (l.stream_output) {
    const uintptr_t misaligned = reinterpret_cast<uintptr_t>(out + p0) % 64;
    head = static_cast<int64_t>((64 - misaligned) % 64 / sizeof(float));
    head = head < p1 - p0 ? head : p1 - p0;
    if (head > 0) Pointwise<V, MR, NV>(l, tile_mid, head, out + p0, out_plane);
  }
  Pointwise<V, MR, NV>(l, tile_mid + head, p1 - p0 - head, out + p0 + head, out_plane);
  if (l.stream_output) V::Fence();
}

}  // namespace fused
}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_FUSED_KERNELS_IMPL_H_
