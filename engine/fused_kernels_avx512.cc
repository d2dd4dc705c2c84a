// The fused kernels built for AVX-512 (this file alone is compiled with
// -mavx512f -mfma; see engine/CMakeLists.txt): 16 floats a vector, blocks
// of 12 output channels x 32 pixels (24 accumulators of the 32 registers).

#include <immintrin.h>

#include "engine/internal/fused_kernels.h"
#include "engine/internal/fused_kernels_impl.h"

namespace sepconv {
namespace internal {
namespace {

struct Avx512 {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  static Reg Zero() { return _mm512_setzero_ps(); }
  static Reg Set1(float x) { return _mm512_set1_ps(x); }
  static Reg Load(const float* p) { return _mm512_loadu_ps(p); }
  // The first n (< 16) lanes only (the others read as zero).
  static Reg LoadFirst(const float* p, int n) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
  }
  static void Store(float* p, Reg x) { _mm512_storeu_ps(p, x); }
  // A non-temporal store, past the caches (p 64-byte aligned); visible to
  // other threads after Fence.
  static void Stream(float* p, Reg x) { _mm512_stream_ps(p, x); }
  static void Fence() { _mm_sfence(); }
  // Asks for the cache line at p ahead of its use.
  static void Prefetch(const float* p) {
    _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
  }
  // The first n (< 16) lanes only.
  static void StoreFirst(float* p, Reg x, int n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), x);
  }
  // The 32 floats at p split: the even ones to `even`, the odd to `odd`.
  static void Deinterleave2(const float* p, float* even, float* odd) {
    const __m512 a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
    const __m512i evens =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i one = _mm512_set1_epi32(1);
    _mm512_storeu_ps(even, _mm512_permutex2var_ps(a, evens, b));
    _mm512_storeu_ps(odd, _mm512_permutex2var_ps(a, _mm512_add_epi32(evens, one), b));
  }
  // A set of lanes, for LoadLanes.
  using Mask = __mmask16;
  // Lanes [lo, hi) (0 <= lo <= hi <= 16).
  static Mask Lanes(int lo, int hi) {
    return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
  }
  // The lanes of the vector at p in `mask` (the others read as zero, and
  // their memory is not touched).
  static Reg LoadLanes(const float* p, Mask mask) { return _mm512_maskz_loadu_ps(mask, p); }
  // Keeps loaded vectors in registers: the empty asm keeps the compiler from
  // folding a load into every multiply-add that uses it, loading it again
  // each time.
  static void Keep(Reg& v0, Reg& v1, Reg& v2) { asm("" : "+v"(v0), "+v"(v1), "+v"(v2)); }
  static Reg Fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  // The zero-masked forms: GCC 12 warns that the plain ones' (undefined)
  // pass-through may be used uninitialized. All lanes are kept.
  static Reg Max(Reg a, Reg b) { return _mm512_maskz_max_ps(0xffff, a, b); }
  static Reg Min(Reg a, Reg b) { return _mm512_maskz_min_ps(0xffff, a, b); }
};

constexpr int kMr = 12, kNv = 2, kDepthwiseRows = 4;

}  // namespace

const FusedKernels& FusedKernelsAvx512() {
  static constexpr FusedKernels kKernels = {"avx512", kMr, Avx512::kLanes, kNv * Avx512::kLanes,
                                            &fused::Tile<Avx512, kMr, kNv, kDepthwiseRows>};
  return kKernels;
}

}  // namespace internal
}  // namespace sepconv
