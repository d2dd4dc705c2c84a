#ifndef SEPCONV_ENGINE_LOADER_MODEL_WARMUP_H_
#define SEPCONV_ENGINE_LOADER_MODEL_WARMUP_H_

// The input shapes a model is warmed on before it reports ready (plans built
// and tuned then, so no request pays for them), from config.pbtxt's
// model_warmup (Triton's ModelWarmup) or, without it, from the input dims
// when the config fixes them. Stateless; thread-safe.

#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_spec.h"
#include "model_config.pb.h"

namespace sepconv {

// The batch sizes warmed for a scheduler of `max_batch_size` (0: no
// batching): every size up to 8, then powers of two and max_batch_size
// itself. Each batch size has its own plan (and a batch too large to run
// whole its micro-batch choice); warming these keeps start-up short (0.1 s
// at 8, 0.7 s at 32 for the built-in model on 2 cores) while the common
// batches pay for neither.
std::vector<int> WarmupBatchSizes(int max_batch_size);

// With model_warmup: one NCHW shape per sample, {batch_size, dims...} when
// max_batch_size > 0, else dims (batch_size must then be 1). Each sample
// has exactly one input (named as the config's input, when it names one),
// data_type TYPE_FP32 (or unset), positive dims of rank 3 (max_batch_size >
// 0) or 4, zero_data or random_data (input_data_file is refused),
// batch_size 1..max_batch_size. Without model_warmup: the input's dims when
// all are fixed (at WarmupBatchSizes and each preferred batch size when
// max_batch_size > 0), else nothing. Errors are INVALID_ARGUMENT
// "config: model_warmup[i] ('name'): ...".
absl::StatusOr<std::vector<Dims4>> WarmupShapes(const ModelConfig& config);

}  // namespace sepconv

#endif  // SEPCONV_ENGINE_LOADER_MODEL_WARMUP_H_
