#ifndef SEPCONV_TESTS_SERVER_REPOSITORY_SEEDED_GRAPH_H_
#define SEPCONV_TESTS_SERVER_REPOSITORY_SEEDED_GRAPH_H_

// The ONNX model the repository tests put in their repositories: one
// depthwise-separable block whose weights depend on `seed`.

#include <cstdint>

#include "tests/engine/loader/onnx_test_graph.h"

namespace sepconv::testing {

struct SeededBlock {
  int64_t channels = 32;
  int64_t out_channels = 16;
  bool batch_norm = false;  // BatchNormalization after the depthwise Conv
  bool relu = true;         // Relu before the pointwise Conv
};

// Depthwise Conv (opset 13) [-> BatchNorm] [-> Relu] -> 1x1 Conv.
inline testing_onnx::TestGraph SeededGraph(uint32_t seed, const SeededBlock& block) {
  using testing_onnx::ConvAttrs;
  testing_onnx::TestGraph g(block.channels, 13, seed);
  g.Conv(block.channels, ConvAttrs().Group(block.channels));
  if (block.batch_norm) g.BatchNorm();
  if (block.relu) g.Node("Relu", {g.current()});
  g.Conv(block.out_channels, ConvAttrs().Kernel(1));
  g.Finish();
  return g;
}

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_SERVER_REPOSITORY_SEEDED_GRAPH_H_
