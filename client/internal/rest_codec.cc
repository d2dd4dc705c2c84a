#include "client/internal/rest_codec.h"

#include <charconv>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace sepconv::client::internal {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;
using Value = rapidjson::Value;

// Answers' numbers are kept as their text, to be read exactly.
constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag;
constexpr int kMaxDataDepth = 8;

void String(JsonWriter& writer, absl::string_view s) {
  writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void Parameters(JsonWriter& writer,
                const google::protobuf::Map<std::string, inference::InferParameter>& parameters,
                std::optional<uint64_t> binary_data_size) {
  if (parameters.empty() && !binary_data_size) return;
  writer.Key("parameters");
  writer.StartObject();
  // Sorted, so that a request's body is the same every time.
  std::map<std::string, inference::InferParameter> sorted(parameters.begin(), parameters.end());
  for (const auto& [key, p] : sorted) {
    String(writer, key);
    switch (p.parameter_choice_case()) {
      case inference::InferParameter::kBoolParam:
        writer.Bool(p.bool_param());
        break;
      case inference::InferParameter::kInt64Param:
        writer.Int64(p.int64_param());
        break;
      case inference::InferParameter::kUint64Param:
        writer.Uint64(p.uint64_param());
        break;
      case inference::InferParameter::kDoubleParam:
        writer.Double(p.double_param());
        break;
      default:
        String(writer, p.string_param());
    }
  }
  if (binary_data_size) {
    writer.Key("binary_data_size");
    writer.Uint64(*binary_data_size);
  }
  writer.EndObject();
}

void Floats(JsonWriter& writer, const google::protobuf::RepeatedField<float>& values) {
  writer.Key("data");
  writer.StartArray();
  char number[32];
  for (float f : values) {
    const auto [end, ec] = std::to_chars(number, number + sizeof(number), f);
    writer.RawValue(number, static_cast<size_t>(end - number), rapidjson::kNumberType);
  }
  writer.EndArray();
}

absl::Status Bad(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("unreadable REST infer answer: ", what));
}

// The member `key` of `object`, or nullptr when absent.
const Value* Find(const Value& object, const char* key) {
  const auto it = object.FindMember(key);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

absl::string_view Text(const Value& v) { return {v.GetString(), v.GetStringLength()}; }

// A number kept as text (kParseNumbersAsStringsFlag) read exactly as T.
template <typename T>
bool NumberOf(const Value& v, T* out) {
  if (!v.IsString()) return false;
  const absl::string_view text = Text(v);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

absl::Status FlattenData(const Value& array, int depth,
                         google::protobuf::RepeatedField<float>* out) {
  for (const Value& e : array.GetArray()) {
    if (e.IsArray()) {
      if (depth + 1 >= kMaxDataDepth) return Bad("\"data\" nested too deep");
      if (absl::Status s = FlattenData(e, depth + 1, out); !s.ok()) return s;
      continue;
    }
    float f = 0;
    if (!NumberOf(e, &f)) return Bad("\"data\" holds something that is not an FP32 number");
    out->Add(f);
  }
  return absl::OkStatus();
}

absl::Status StringField(const Value& object, const char* key, std::string* out) {
  const Value* v = Find(object, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->IsString()) return Bad(absl::StrCat("\"", key, "\" is not a string"));
  out->assign(v->GetString(), v->GetStringLength());
  return absl::OkStatus();
}

// One output of the answer; its binary bytes taken from the front of `binary`
// (copied into the response, or, with `skipped`, only counted: the first
// such output's size goes there).
absl::Status DecodeOutput(const Value& o, absl::string_view& binary,
                          inference::ModelInferResponse* response,
                          std::optional<int64_t>* skipped) {
  if (!o.IsObject()) return Bad("an output is not an object");
  auto* output = response->add_outputs();
  if (absl::Status s = StringField(o, "name", output->mutable_name()); !s.ok()) return s;
  if (absl::Status s = StringField(o, "datatype", output->mutable_datatype()); !s.ok()) return s;
  const Value* shape = Find(o, "shape");
  if (shape == nullptr || !shape->IsArray()) return Bad("an output has no \"shape\" array");
  for (const Value& d : shape->GetArray()) {
    int64_t dim = 0;
    if (!NumberOf(d, &dim)) return Bad("\"shape\" holds something that is not an integer");
    output->add_shape(dim);
  }
  const Value* parameters = Find(o, "parameters");
  const Value* size = parameters != nullptr && parameters->IsObject()
                          ? Find(*parameters, "binary_data_size")
                          : nullptr;
  if (size != nullptr) {
    uint64_t bytes = 0;
    if (!NumberOf(*size, &bytes)) return Bad("\"binary_data_size\" is not a byte count");
    if (bytes > binary.size()) {
      return Bad(absl::StrCat("\"binary_data_size\" ", bytes, " exceeds the ", binary.size(),
                              " bytes of binary data left"));
    }
    if (skipped == nullptr) {
      response->add_raw_output_contents()->assign(binary.data(), bytes);
    } else if (!skipped->has_value()) {
      *skipped = static_cast<int64_t>(bytes);
    }
    binary.remove_prefix(bytes);
  } else if (const Value* data = Find(o, "data"); data != nullptr) {
    if (!data->IsArray()) return Bad("\"data\" is not an array");
    return FlattenData(*data, 0, output->mutable_contents()->mutable_fp32_contents());
  }
  return absl::OkStatus();
}

}  // namespace

RestBody EncodeInferRequest(const inference::ModelInferRequest& request, bool binary_output) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  if (!request.id().empty()) {
    writer.Key("id");
    String(writer, request.id());
  }
  if (binary_output) {
    writer.Key("parameters");
    writer.StartObject();
    writer.Key("binary_data_output");
    writer.Bool(true);
    writer.EndObject();
  }
  writer.Key("inputs");
  writer.StartArray();
  size_t binary_bytes = 0;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& input = request.inputs(i);
    writer.StartObject();
    writer.Key("name");
    String(writer, input.name());
    writer.Key("datatype");
    String(writer, input.datatype());
    writer.Key("shape");
    writer.StartArray();
    for (int64_t d : input.shape()) writer.Int64(d);
    writer.EndArray();
    std::optional<uint64_t> binary_size;
    if (i < request.raw_input_contents_size()) {
      binary_size = request.raw_input_contents(i).size();
      binary_bytes += *binary_size;
    }
    Parameters(writer, input.parameters(), binary_size);
    if (input.contents().fp32_contents_size() > 0) Floats(writer, input.contents().fp32_contents());
    writer.EndObject();
  }
  writer.EndArray();
  if (request.outputs_size() > 0) {
    writer.Key("outputs");
    writer.StartArray();
    for (const auto& output : request.outputs()) {
      writer.StartObject();
      writer.Key("name");
      String(writer, output.name());
      Parameters(writer, output.parameters(), std::nullopt);
      writer.EndObject();
    }
    writer.EndArray();
  }
  writer.EndObject();
  RestBody body;
  body.content.assign(buffer.GetString(), buffer.GetSize());
  if (binary_bytes == 0) return body;
  body.header_length = body.content.size();
  body.content.reserve(body.content.size() + binary_bytes);
  for (const std::string& raw : request.raw_input_contents()) body.content.append(raw);
  return body;
}

absl::StatusOr<inference::ModelInferResponse> DecodeInferResponse(
    std::string body, std::optional<size_t> header_length,
    std::optional<int64_t>* skipped_raw_bytes) {
  const size_t json_bytes = header_length.value_or(body.size());
  if (json_bytes > body.size()) {
    return Bad(absl::StrCat(kHeaderLengthHeader, " ", json_bytes, " exceeds the ", body.size(),
                            "-byte body"));
  }
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(body.data(), json_bytes);
  if (doc.HasParseError()) {
    return Bad(absl::StrCat("malformed JSON at byte ", doc.GetErrorOffset(), ": ",
                            rapidjson::GetParseError_En(doc.GetParseError())));
  }
  if (!doc.IsObject()) return Bad("not a JSON object");
  inference::ModelInferResponse response;
  for (auto [key, field] : {std::pair{"model_name", response.mutable_model_name()},
                            std::pair{"model_version", response.mutable_model_version()},
                            std::pair{"id", response.mutable_id()}}) {
    if (absl::Status s = StringField(doc, key, field); !s.ok()) return s;
  }
  const Value* outputs = Find(doc, "outputs");
  if (outputs == nullptr || !outputs->IsArray()) return Bad("no \"outputs\" array");
  absl::string_view binary = absl::string_view(body).substr(json_bytes);
  for (const Value& o : outputs->GetArray()) {
    if (absl::Status s = DecodeOutput(o, binary, &response, skipped_raw_bytes); !s.ok()) return s;
  }
  if (!binary.empty()) {
    return Bad(absl::StrCat(binary.size(), " bytes of binary data that no output accounts for"));
  }
  return response;
}

absl::StatusCode CodeFromHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 405:
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 408:
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    case 409:  // sepconv-server's answer to ABORTED
      return absl::StatusCode::kAborted;
    case 413:  // the body exceeds the server's limit, as gRPC's message size
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 500:
      return absl::StatusCode::kInternal;
    case 502:
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::Status StatusFromHttp(int http_status, absl::string_view body) {
  std::string message;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (!doc.HasParseError() && doc.IsObject()) {
    if (const Value* error = Find(doc, "error"); error != nullptr && error->IsString()) {
      message.assign(error->GetString(), error->GetStringLength());
    }
  }
  if (message.empty()) message = std::string(body.substr(0, 200));
  const absl::StatusCode code = CodeFromHttpStatus(http_status);
  if (message.empty() || code == absl::StatusCode::kUnknown) {
    message = absl::StrCat("HTTP ", http_status, message.empty() ? "" : ": ", message);
  }
  return absl::Status(code, message);
}

absl::Status ParseJsonMessage(absl::string_view json, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat("unreadable ", message->GetDescriptor()->name(),
                                            " JSON: ", status.ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<inference::SystemSharedMemoryStatusResponse> ParseSharedMemoryStatus(
    absl::string_view json) {
  const auto bad = [] {
    return absl::DataLossError("unreadable system shared-memory status: not an array of regions");
  };
  rapidjson::Document doc;
  doc.Parse<kParseFlags>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsArray()) return bad();
  inference::SystemSharedMemoryStatusResponse response;
  for (const Value& r : doc.GetArray()) {
    if (!r.IsObject()) return bad();
    inference::SystemSharedMemoryStatusResponse::RegionStatus region;
    if (!StringField(r, "name", region.mutable_name()).ok()) return bad();
    if (!StringField(r, "key", region.mutable_key()).ok()) return bad();
    for (auto [key, set] :
         {std::pair{"offset",
                    &inference::SystemSharedMemoryStatusResponse::RegionStatus::set_offset},
          std::pair{"byte_size",
                    &inference::SystemSharedMemoryStatusResponse::RegionStatus::set_byte_size}}) {
      uint64_t n = 0;
      const Value* v = Find(r, key);
      if (v != nullptr && !NumberOf(*v, &n)) return bad();
      (region.*set)(n);
    }
    (*response.mutable_regions())[region.name()] = region;
  }
  return response;
}

std::string RegisterBody(const inference::SystemSharedMemoryRegisterRequest& request) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("key");
  String(writer, request.key());
  writer.Key("offset");
  writer.Uint64(request.offset());
  writer.Key("byte_size");
  writer.Uint64(request.byte_size());
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string ModelPath(absl::string_view model, absl::string_view version) {
  if (version.empty()) return absl::StrCat("/v2/models/", model);
  return absl::StrCat("/v2/models/", model, "/versions/", version);
}

}  // namespace sepconv::client::internal
