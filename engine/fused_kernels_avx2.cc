// The fused kernels built for AVX2 with FMA (this file alone is compiled with
// -mavx2 -mfma; see engine/CMakeLists.txt): 8 floats a vector, blocks of 6
// output channels x 16 pixels (12 accumulators of the 16 registers).

#include <immintrin.h>

#include "engine/internal/fused_kernels.h"
#include "engine/internal/fused_kernels_impl.h"

namespace sepconv {
namespace internal {
namespace {

struct Avx2 {
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static Reg Zero() { return _mm256_setzero_ps(); }
  static Reg Set1(float x) { return _mm256_set1_ps(x); }
  static Reg Load(const float* p) { return _mm256_loadu_ps(p); }
  // The first n (< 8) lanes only (the others read as zero).
  static Reg LoadFirst(const float* p, int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane));
  }
  static void Store(float* p, Reg x) { _mm256_storeu_ps(p, x); }
  // A non-temporal store, past the caches (p 32-byte aligned); visible to
  // other threads after Fence.
  static void Stream(float* p, Reg x) { _mm256_stream_ps(p, x); }
  static void Fence() { _mm_sfence(); }
  // Asks for the cache line at p ahead of its use.
  static void Prefetch(const float* p) {
    _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
  }
  // The first n (< 8) lanes only: lane i is stored where i < n.
  static void StoreFirst(float* p, Reg x, int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane), x);
  }
  // The 16 floats at p split: the even ones to `even`, the odd to `odd`.
  static void Deinterleave2(const float* p, float* even, float* odd) {
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    // Within each 128-bit lane: a's pair then b's pair; then the 64-bit
    // quarters put a's before b's.
    const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    constexpr int kOrder = _MM_SHUFFLE(3, 1, 2, 0);
    _mm256_storeu_ps(even, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), kOrder)));
    _mm256_storeu_ps(odd, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), kOrder)));
  }
  // A set of lanes, for LoadLanes: all bits set in a lane that is in it.
  using Mask = __m256i;
  // Lanes [lo, hi) (0 <= lo <= hi <= 8).
  static Mask Lanes(int lo, int hi) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(lo), lane),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane));
  }
  // The lanes of the vector at p in `mask` (the others read as zero, and
  // their memory is not touched).
  static Reg LoadLanes(const float* p, Mask mask) { return _mm256_maskload_ps(p, mask); }
  // Keeps loaded vectors in registers: the empty asm keeps the compiler from
  // folding a load into every multiply-add that uses it, loading it again
  // each time.
  static void Keep(Reg& v0, Reg& v1, Reg& v2) { asm("" : "+x"(v0), "+x"(v1), "+x"(v2)); }
  static Reg Fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg Max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg Min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
};

constexpr int kMr = 6, kNv = 2, kDepthwiseRows = 2;

}  // namespace

const FusedKernels& FusedKernelsAvx2() {
  static constexpr FusedKernels kKernels = {"avx2", kMr, Avx2::kLanes, kNv * Avx2::kLanes,
                                            &fused::Tile<Avx2, kMr, kNv, kDepthwiseRows>};
  return kKernels;
}

}  // namespace internal
}  // namespace sepconv
