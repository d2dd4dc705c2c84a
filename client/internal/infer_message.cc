#include "client/internal/infer_message.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace sepconv::client::internal {
namespace {

// Names `placement` in a tensor's parameters, as Triton's extension does.
void SetPlacement(const SharedMemoryPlacement& placement,
                  google::protobuf::Map<std::string, inference::InferParameter>* parameters) {
  (*parameters)["shared_memory_region"].set_string_param(placement.region);
  (*parameters)["shared_memory_byte_size"].set_int64_param(placement.byte_size);
  if (placement.offset != 0) {
    (*parameters)["shared_memory_offset"].set_int64_param(placement.offset);
  }
}

absl::Status CheckPlacement(const char* what, const SharedMemoryPlacement& placement) {
  if (placement.region.empty() || placement.offset < 0 || placement.byte_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " in shared memory needs a region name, an offset >= 0 and a byte size >= 1"));
  }
  return absl::OkStatus();
}

// Checks `options`' shared-memory placements against `input` and each other.
absl::Status CheckSharedMemory(const Tensor& input, int64_t input_bytes,
                               const InferOptions& options) {
  const bool shm = options.input_shared_memory || options.output_shared_memory;
  if (shm && options.typed) {
    return absl::InvalidArgumentError("typed contents and shared memory exclude each other");
  }
  if (const auto& in = options.input_shared_memory) {
    if (absl::Status s = CheckPlacement("an input", *in); !s.ok()) return s;
    if (!input.data.empty()) {
      return absl::InvalidArgumentError(
          "an input in shared memory takes its values from the region: its data must be empty");
    }
    if (in->byte_size != input_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("input of shape ", ShapeString(input.shape), " has ", input_bytes,
                       " bytes, but its shared-memory placement holds ", in->byte_size));
    }
  }
  if (const auto& out = options.output_shared_memory) {
    if (absl::Status s = CheckPlacement("an output", *out); !s.ok()) return s;
    if (out->offset % 4 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "an output's shared-memory offset must be a multiple of 4, got ", out->offset));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<inference::ModelInferRequest> BuildRequest(const std::string& model,
                                                          const std::string& version,
                                                          const Tensor& input,
                                                          const InferOptions& options) {
  absl::StatusOr<int64_t> count = ElementCount(input.shape);
  if (!count.ok()) return count.status();
  if (!options.input_shared_memory && static_cast<uint64_t>(*count) != input.data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("input of shape ", ShapeString(input.shape),
                                                   " has ", input.data.size(), " values, expected ",
                                                   *count));
  }
  const int64_t input_bytes = *count * static_cast<int64_t>(sizeof(float));
  if (absl::Status s = CheckSharedMemory(input, input_bytes, options); !s.ok()) return s;
  inference::ModelInferRequest request;
  request.set_model_name(model);
  request.set_model_version(version);
  request.set_id(options.request_id);
  auto* tensor = request.add_inputs();
  tensor->set_name("input");
  tensor->set_datatype("FP32");
  for (int64_t d : input.shape) tensor->add_shape(d);
  if (options.input_shared_memory) {
    SetPlacement(*options.input_shared_memory, tensor->mutable_parameters());
  } else if (options.typed) {
    tensor->mutable_contents()->mutable_fp32_contents()->Add(input.data.begin(), input.data.end());
  } else {
    request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(input.data.data()),
                                             input.data.size() * sizeof(float));
  }
  if (options.output_shared_memory) {
    auto* output = request.add_outputs();
    output->set_name(options.output_name.empty() ? "output" : options.output_name);
    SetPlacement(*options.output_shared_memory, output->mutable_parameters());
  }
  return request;
}

absl::Status ReadOutput(const inference::ModelInferResponse& response,
                        std::optional<int64_t> shm_bytes, std::vector<int64_t>* shape,
                        int64_t* bytes, std::vector<float>* values,
                        std::optional<int64_t> skipped_raw_bytes) {
  if (skipped_raw_bytes.has_value() && values != nullptr) {
    return absl::InternalError("ReadOutput: no values to copy from a header-only response");
  }
  if (response.outputs_size() == 0) return absl::DataLossError("response has no outputs");
  const auto& output = response.outputs(0);
  if (output.datatype() != "FP32") {
    return absl::DataLossError(absl::StrCat("output '", output.name(), "' has datatype '",
                                            output.datatype(), "', expected FP32"));
  }
  shape->assign(output.shape().begin(), output.shape().end());
  absl::StatusOr<int64_t> count = ElementCount(*shape);
  if (!count.ok()) return absl::DataLossError(count.status().message());
  const int64_t want = *count * static_cast<int64_t>(sizeof(float));
  const auto& typed = output.contents().fp32_contents();
  const bool has_raw = response.raw_output_contents_size() > 0 || skipped_raw_bytes.has_value();
  const bool has_values = has_raw || !typed.empty();
  if (shm_bytes.has_value()) {
    if (has_values) {
      return absl::DataLossError(absl::StrCat(
          "output '", output.name(),
          "' was requested in shared memory but came back in the response (does the server "
          "support system shared memory?)"));
    }
    if (want > *shm_bytes) {
      return absl::DataLossError(absl::StrCat("output of shape ", ShapeString(*shape), " has ",
                                              want, " bytes, more than its shared-memory ",
                                              "placement's ", *shm_bytes));
    }
    *bytes = want;
    return absl::OkStatus();
  }
  if (!has_values && want > 0) {
    return absl::DataLossError(absl::StrCat(
        "output '", output.name(),
        "' carries no values (only an output requested in shared memory may leave them out)"));
  }
  if (has_raw) {
    const auto raw_size = skipped_raw_bytes.has_value()
                              ? *skipped_raw_bytes
                              : static_cast<int64_t>(response.raw_output_contents(0).size());
    if (raw_size != want) {
      return absl::DataLossError(absl::StrCat("output of shape ", ShapeString(*shape), " has ",
                                              raw_size, " raw bytes, expected ", want));
    }
    *bytes = raw_size;
    if (values != nullptr) {
      values->resize(static_cast<size_t>(*count));
      if (want > 0) {
        std::memcpy(values->data(), response.raw_output_contents(0).data(),
                    static_cast<size_t>(want));
      }
    }
    return absl::OkStatus();
  }
  if (typed.size() != *count) {
    return absl::DataLossError(absl::StrCat("output of shape ", ShapeString(*shape), " has ",
                                            typed.size(), " fp32_contents, expected ", *count));
  }
  *bytes = want;
  if (values != nullptr) values->assign(typed.begin(), typed.end());
  return absl::OkStatus();
}

namespace {

using google::protobuf::internal::WireFormatLite;

absl::Status Unparsable(const char* message) {
  return absl::DataLossError(absl::StrCat("unparsable ", message));
}

// Reads a ModelInferResponse's fields from `input` up to its end (or its
// limit): raw_output_contents skipped, its first size into `raw_bytes`, every
// other field's bytes appended to `kept` as they came.
bool ReadHeaderFields(google::protobuf::io::CodedInputStream& input, std::string* kept,
                      std::optional<int64_t>* raw_bytes) {
  constexpr uint32_t kRawTag =
      WireFormatLite::MakeTag(inference::ModelInferResponse::kRawOutputContentsFieldNumber,
                              WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  google::protobuf::io::StringOutputStream kept_stream(kept);
  google::protobuf::io::CodedOutputStream output(&kept_stream);
  for (uint32_t tag = input.ReadTag(); tag != 0; tag = input.ReadTag()) {
    if (tag == kRawTag) {
      uint32_t length = 0;
      if (!input.ReadVarint32(&length) || !input.Skip(static_cast<int>(length))) return false;
      if (!raw_bytes->has_value()) *raw_bytes = length;
    } else if (!WireFormatLite::SkipField(&input, tag, &output)) {
      return false;
    }
  }
  return input.ConsumedEntireMessage();
}

}  // namespace

absl::Status ParseInferResponseHeader(google::protobuf::io::ZeroCopyInputStream& in,
                                      inference::ModelInferResponse* header,
                                      std::optional<int64_t>* raw_bytes) {
  raw_bytes->reset();
  std::string kept;
  {
    google::protobuf::io::CodedInputStream input(&in);
    if (!ReadHeaderFields(input, &kept, raw_bytes)) return Unparsable("ModelInferResponse");
  }
  if (!header->ParseFromString(kept)) return Unparsable("ModelInferResponse");
  return absl::OkStatus();
}

absl::Status ParseStreamResponseHeader(google::protobuf::io::ZeroCopyInputStream& in,
                                       std::string* error_message,
                                       inference::ModelInferResponse* header,
                                       std::optional<int64_t>* raw_bytes) {
  constexpr uint32_t kErrorTag =
      WireFormatLite::MakeTag(inference::ModelStreamInferResponse::kErrorMessageFieldNumber,
                              WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  constexpr uint32_t kResponseTag =
      WireFormatLite::MakeTag(inference::ModelStreamInferResponse::kInferResponseFieldNumber,
                              WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  error_message->clear();
  raw_bytes->reset();
  std::string kept;  // the infer_response's fields but its raw values
  {
    google::protobuf::io::CodedInputStream input(&in);
    for (uint32_t tag = input.ReadTag(); tag != 0; tag = input.ReadTag()) {
      bool ok = true;
      if (tag == kErrorTag) {
        ok = WireFormatLite::ReadString(&input, error_message);
      } else if (tag == kResponseTag) {
        uint32_t length = 0;
        ok = input.ReadVarint32(&length);
        if (ok) {
          const auto limit = input.PushLimit(static_cast<int>(length));
          // Its end must be the limit's, not the bytes' (cut short).
          ok = ReadHeaderFields(input, &kept, raw_bytes) && input.BytesUntilLimit() == 0;
          input.PopLimit(limit);
        }
      } else {
        ok = WireFormatLite::SkipField(&input, tag);
      }
      if (!ok) return Unparsable("ModelStreamInferResponse");
    }
    if (!input.ConsumedEntireMessage()) return Unparsable("ModelStreamInferResponse");
  }
  if (!header->ParseFromString(kept)) return Unparsable("ModelStreamInferResponse");
  return absl::OkStatus();
}

std::optional<int64_t> OutputShmBytes(const InferOptions& options) {
  if (!options.output_shared_memory) return std::nullopt;
  return options.output_shared_memory->byte_size;
}

absl::Status CheckOutputView(const InferOptions& options) {
  if (options.output_shared_memory &&
      static_cast<int64_t>(options.output_view.size()) < options.output_shared_memory->byte_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an output in shared memory needs InferOptions::output_view of its ",
        options.output_shared_memory->byte_size, " bytes, got ", options.output_view.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> OutputTensor(const inference::ModelInferResponse& response,
                                    const InferOptions& options) {
  Tensor output;
  int64_t bytes = 0;
  const std::optional<int64_t> shm_bytes = OutputShmBytes(options);
  absl::Status status =
      ReadOutput(response, shm_bytes, &output.shape, &bytes, shm_bytes ? nullptr : &output.data);
  if (!status.ok()) return status;
  if (shm_bytes) {
    output.data.resize(static_cast<size_t>(bytes) / sizeof(float));
    if (bytes > 0) std::memcpy(output.data.data(), options.output_view.data(), bytes);
  }
  return output;
}

}  // namespace sepconv::client::internal
