#ifndef SEPCONV_SERVER_HTTP_EXTENSIONS_JSON_H_
#define SEPCONV_SERVER_HTTP_EXTENSIONS_JSON_H_

// The REST bodies of Triton's model configuration, statistics and
// repository extensions, as Triton writes them:
//   GET  /v2/models/{m}[/versions/{v}]/config   the config message in
//        protobuf's JSON mapping with the .proto's field names (e.g.
//        "max_batch_size"), int64 values as numbers (e.g. "dims": [32, -1,
//        -1]), as Triton writes it (the mapping itself writes them as
//        strings; protobuf's JSON parser reads both)
//   GET  /v2/models[/{m}[/versions/{v}]]/stats  {"model_stats": [{"name",
//        "version", "last_inference", "inference_count", "execution_count",
//        "inference_stats": {"success": {"count", "ns"}, "fail", "queue",
//        "compute_input", "compute_infer", "compute_output"},
//        "batch_stats": []}]}
//   POST /v2/repository/index  body {"ready": $boolean} (optional; empty body
//        or {} = every row) -> [{"name", "version", "state", "reason"}]
// Stateless; thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model_config.pb.h"
#include "server/core/inference_core.h"

namespace sepconv {

absl::StatusOr<std::string> ModelConfigJson(const sepconv::ModelConfig& config);
std::string ModelStatisticsJson(const std::vector<ModelVersionStats>& stats);
// The index request's "ready"; INVALID_ARGUMENT for a body that is not an
// object or a "ready" that is not a boolean.
absl::StatusOr<bool> ParseIndexBody(absl::string_view body);
std::string RepositoryIndexJson(const std::vector<ModelIndexEntry>& index);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_EXTENSIONS_JSON_H_
