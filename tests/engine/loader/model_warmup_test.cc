#include "engine/loader/model_warmup.h"

#include <string>
#include <vector>

#include "engine/loader/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sepconv {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P4(IsDims, n, c, h, w, "") { return arg.n == n && arg.c == c && arg.h == h && arg.w == w; }

ModelConfig Parse(const std::string& text) {
  absl::StatusOr<ModelConfig> config = ParseModelConfig(text, "config.pbtxt");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ModelConfig();
}

// Triton's syntax, as its users write it.
constexpr char kBatched[] = R"pb(
  max_batch_size: 8 input
  [ {
    name: "input"
    data_type: TYPE_FP32
    dims: [ 32, -1, -1 ]
  }] model_warmup
  [ {
    name: "small"
    batch_size: 1
    inputs {
      key: "input"
      value: {
        data_type: TYPE_FP32
        dims: [ 32, 56, 56 ]
        zero_data: true
      }
    }
  }
    , {
      name: "batch of four"
      batch_size: 4
      count: 2
      inputs {
        key: "input"
        value: {
          data_type: TYPE_FP32
          dims: [ 32, 28, 40 ]
          random_data: true
        }
      }
    }]
)pb";

TEST(WarmupShapesTest, FromModelWarmupSamples) {
  const ModelConfig config = Parse(kBatched);
  EXPECT_TRUE(ValidateModelConfig(config, "m").ok());
  absl::StatusOr<std::vector<Dims4>> shapes = WarmupShapes(config);
  ASSERT_TRUE(shapes.ok()) << shapes.status();
  EXPECT_THAT(*shapes, ElementsAre(IsDims(1, 32, 56, 56), IsDims(4, 32, 28, 40)));
}

TEST(WarmupShapesTest, UnbatchedDimsCarryTheBatch) {
  const ModelConfig config = Parse(R"pb(
    model_warmup {
      batch_size: 1
      inputs {
        key: "x"
        value: {
          dims: [ 2, 8, 9, 10 ]
          zero_data: true
        }
      }
    }
  )pb");
  absl::StatusOr<std::vector<Dims4>> shapes = WarmupShapes(config);
  ASSERT_TRUE(shapes.ok()) << shapes.status();
  EXPECT_THAT(*shapes, ElementsAre(IsDims(2, 8, 9, 10)));
}

TEST(WarmupShapesTest, WithoutSamplesFixedInputDimsAreWarmed) {
  EXPECT_THAT(WarmupShapes(Parse(R"pb(
                max_batch_size: 16
                input { dims: [ 16, 20, 20 ] }
                dynamic_batching { preferred_batch_size: [ 4, 12 ] }
              )pb"))
                  .value(),
              ElementsAre(IsDims(1, 16, 20, 20), IsDims(2, 16, 20, 20), IsDims(3, 16, 20, 20),
                          IsDims(4, 16, 20, 20), IsDims(5, 16, 20, 20), IsDims(6, 16, 20, 20),
                          IsDims(7, 16, 20, 20), IsDims(8, 16, 20, 20), IsDims(16, 16, 20, 20),
                          IsDims(12, 16, 20, 20)));
  EXPECT_THAT(WarmupShapes(Parse(R"pb(input { dims: [ 3, 16, 20, 20 ] })pb")).value(),
              ElementsAre(IsDims(3, 16, 20, 20)));
  // Variable or unknown dims: nothing to warm.
  EXPECT_TRUE(WarmupShapes(Parse(R"pb(max_batch_size: 8
                                      input { dims: [ 16, -1, -1 ] })pb"))
                  ->empty());
  EXPECT_TRUE(WarmupShapes(ModelConfig())->empty());
}

// Every batch size a scheduler forms is warmed up to 8, then powers of two
// and the max.
TEST(WarmupBatchSizesTest, EverySizeUpToEightThenPowersOfTwoAndTheMax) {
  EXPECT_EQ(WarmupBatchSizes(0), std::vector<int>({1}));
  EXPECT_EQ(WarmupBatchSizes(1), std::vector<int>({1}));
  EXPECT_EQ(WarmupBatchSizes(8), std::vector<int>({1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(WarmupBatchSizes(32), std::vector<int>({1, 2, 3, 4, 5, 6, 7, 8, 16, 32}));
  EXPECT_EQ(WarmupBatchSizes(40), std::vector<int>({1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 40}));
}

TEST(WarmupShapesTest, InvalidSamplesAreRefusedNamingTheProblem) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {R"pb(max_batch_size: 4
            model_warmup {
              name: "w"
              inputs {
                key: "input"
                value: {
                  dims: [ 8, 8, 8 ]
                  zero_data: true
                }
              }
            })pb",
       "model_warmup[0] ('w'): batch_size must be >= 1"},
      {R"pb(max_batch_size: 4
            model_warmup {
              batch_size: 5
              inputs {
                key: "input"
                value: {
                  dims: [ 8, 8, 8 ]
                  zero_data: true
                }
              }
            })pb",
       "batch_size 5 exceeds max_batch_size 4"},
      {R"pb(model_warmup {
              batch_size: 2
              inputs {
                key: "input"
                value: {
                  dims: [ 1, 8, 8, 8 ]
                  zero_data: true
                }
              }
            })pb",
       "must be 1 when max_batch_size is 0"},
      {R"pb(max_batch_size: 4
            input { name: "input" }
            model_warmup {
              batch_size: 1
              inputs {
                key: "other"
                value: {
                  dims: [ 8, 8, 8 ]
                  zero_data: true
                }
              }
            })pb",
       "input 'other' is not the model's input 'input'"},
      {R"pb(max_batch_size: 4
            model_warmup {
              batch_size: 1
              inputs {
                key: "input"
                value: {
                  data_type: TYPE_FP16
                  dims: [ 8, 8, 8 ]
                  zero_data: true
                }
              }
            })pb",
       "TYPE_FP16 is not TYPE_FP32"},
      {R"pb(max_batch_size: 4
            model_warmup {
              batch_size: 1
              inputs {
                key: "input"
                value: {
                  dims: [ 8, 8, 8 ]
                  input_data_file: "raw"
                }
              }
            })pb",
       "input_data_file is not supported"},
      {R"pb(max_batch_size: 4
            model_warmup {
              batch_size: 1
              inputs {
                key: "input"
                value: {
                  dims: [ 8, -1, 8 ]
                  zero_data: true
                }
              }
            })pb",
       "input dims [8, -1, 8] must be 3 positive entries ([C, H, W])"},
      {R"pb(max_batch_size: 4
            model_warmup { batch_size: 1 })pb",
       "needs exactly one input, has 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const ModelConfig config = Parse(c.text);
    absl::StatusOr<std::vector<Dims4>> shapes = WarmupShapes(config);
    EXPECT_EQ(shapes.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(shapes.status().message()), HasSubstr(c.message));
    // A config with a bad sample does not load.
    EXPECT_THAT(std::string(ValidateModelConfig(config, "m").message()), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace sepconv
