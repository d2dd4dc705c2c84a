#ifndef SEPCONV_CLIENT_INTERNAL_PROTO_CONVERT_H_
#define SEPCONV_CLIENT_INTERNAL_PROTO_CONVERT_H_

// The answers of the KServe v2 / Triton control calls as the Client returns
// them, from their protobuf messages: the gRPC client's responses, and the
// REST client's JSON bodies once parsed into the same messages, so that both
// protocols return the same values. Pure functions; thread-safe.

#include <string>
#include <vector>

#include "client/client.h"
#include "grpc_service.pb.h"
#include "model_config.pb.h"

namespace sepconv::client::internal {

ServerInfo ServerInfoFrom(const inference::ServerMetadataResponse& response);
ModelInfo ModelInfoFrom(const inference::ModelMetadataResponse& response);
// Protobuf text format, as a config.pbtxt holds it.
std::string ConfigText(const sepconv::ModelConfig& config);
std::vector<ModelStats> ModelStatsFrom(const inference::ModelStatisticsResponse& response);
std::vector<IndexEntry> IndexFrom(const inference::RepositoryIndexResponse& response);
// Sorted by name.
std::vector<SharedMemoryStatus> SharedMemoryStatusFrom(
    const inference::SystemSharedMemoryStatusResponse& response);

}  // namespace sepconv::client::internal

#endif  // SEPCONV_CLIENT_INTERNAL_PROTO_CONVERT_H_
