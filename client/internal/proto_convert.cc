#include "client/internal/proto_convert.h"

#include <algorithm>

#include "google/protobuf/text_format.h"

namespace sepconv::client::internal {
namespace {

template <typename Tensors>
std::vector<TensorInfo> TensorsFrom(const Tensors& tensors) {
  std::vector<TensorInfo> out;
  for (const auto& t : tensors) {
    out.push_back({t.name(), t.datatype(), {t.shape().begin(), t.shape().end()}});
  }
  return out;
}

DurationStat DurationFrom(const inference::StatisticDuration& d) {
  return DurationStat{d.count(), d.ns()};
}

}  // namespace

ServerInfo ServerInfoFrom(const inference::ServerMetadataResponse& response) {
  return ServerInfo{response.name(),
                    response.version(),
                    {response.extensions().begin(), response.extensions().end()}};
}

ModelInfo ModelInfoFrom(const inference::ModelMetadataResponse& response) {
  return ModelInfo{response.name(),
                   {response.versions().begin(), response.versions().end()},
                   response.platform(),
                   TensorsFrom(response.inputs()),
                   TensorsFrom(response.outputs())};
}

std::string ConfigText(const sepconv::ModelConfig& config) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  return text;
}

std::vector<ModelStats> ModelStatsFrom(const inference::ModelStatisticsResponse& response) {
  std::vector<ModelStats> out;
  for (const inference::ModelStatistics& s : response.model_stats()) {
    const inference::InferStatistics& i = s.inference_stats();
    out.push_back({s.name(), s.version(), s.last_inference(), s.inference_count(),
                   s.execution_count(), DurationFrom(i.success()), DurationFrom(i.fail()),
                   DurationFrom(i.queue()), DurationFrom(i.compute_input()),
                   DurationFrom(i.compute_infer()), DurationFrom(i.compute_output())});
  }
  return out;
}

std::vector<IndexEntry> IndexFrom(const inference::RepositoryIndexResponse& response) {
  std::vector<IndexEntry> out;
  for (const auto& m : response.models()) {
    out.push_back({m.name(), m.version(), m.state(), m.reason()});
  }
  return out;
}

std::vector<SharedMemoryStatus> SharedMemoryStatusFrom(
    const inference::SystemSharedMemoryStatusResponse& response) {
  std::vector<SharedMemoryStatus> out;
  for (const auto& [region, status] : response.regions()) {
    out.push_back({status.name().empty() ? region : status.name(), status.key(), status.offset(),
                   status.byte_size()});
  }
  std::sort(out.begin(), out.end(), [](const SharedMemoryStatus& a, const SharedMemoryStatus& b) {
    return a.name < b.name;
  });
  return out;
}

}  // namespace sepconv::client::internal
