#include "server/http/infer_request_json.h"

#include <charconv>
#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"

namespace sepconv {
namespace {

using Value = rapidjson::Value;

// Iterative: nesting depth cannot overflow the stack. Normal precision (a
// decimal within a few double ULPs, then rounded to float, so a float's
// shortest decimal reads back to that float): RapidJSON 1.1.0's
// full-precision path passes zero to __builtin_clzll for a zero significand
// with a large exponent ("0E66"; found by rest_fuzzer), undefined behaviour.
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag;
// Deeper "data" nesting than any tensor has (rank 4) is refused.
constexpr int kMaxDataDepth = 8;

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

const char* TypeName(const Value& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "a boolean";
    case rapidjson::kObjectType:
      return "an object";
    case rapidjson::kArrayType:
      return "an array";
    case rapidjson::kStringType:
      return "a string";
    case rapidjson::kNumberType:
      return "a number";
  }
  return "a value";
}

// The member `key` of `object`, or nullptr when absent.
const Value* Find(const Value& object, const char* key) {
  const auto it = object.FindMember(key);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

absl::StatusOr<std::string> OptionalString(const Value& object, const char* key,
                                           absl::string_view where) {
  const Value* v = Find(object, key);
  if (v == nullptr) return std::string();
  if (!v->IsString()) {
    return Invalid(absl::StrCat(where, "\"", key, "\" must be a string, not ", TypeName(*v)));
  }
  return std::string(v->GetString(), v->GetStringLength());
}

absl::StatusOr<bool> OptionalBool(const Value* parameters, const char* key, bool otherwise,
                                  absl::string_view where) {
  if (parameters == nullptr) return otherwise;
  const Value* v = Find(*parameters, key);
  if (v == nullptr) return otherwise;
  if (!v->IsBool()) {
    return Invalid(
        absl::StrCat(where, "parameter \"", key, "\" must be a boolean, not ", TypeName(*v)));
  }
  return v->GetBool();
}

absl::StatusOr<const Value*> OptionalObject(const Value& object, const char* key,
                                            absl::string_view where) {
  const Value* v = Find(object, key);
  if (v != nullptr && !v->IsObject()) {
    return Invalid(absl::StrCat(where, "\"", key, "\" must be an object, not ", TypeName(*v)));
  }
  return v;
}

// Triton's shared-memory parameters of one tensor, type-checked.
absl::StatusOr<SharedMemoryParams> ParseSharedMemory(const Value* parameters,
                                                     absl::string_view where) {
  SharedMemoryParams shm;
  if (parameters == nullptr) return shm;
  if (const Value* region = Find(*parameters, kShmRegionParameter)) {
    if (!region->IsString()) {
      return Invalid(absl::StrCat(where, "parameter \"", kShmRegionParameter,
                                  "\" must be a string, not ", TypeName(*region)));
    }
    shm.region = std::string(region->GetString(), region->GetStringLength());
  }
  for (auto [key, field] : {std::pair{kShmOffsetParameter, &shm.offset},
                            std::pair{kShmByteSizeParameter, &shm.byte_size}}) {
    const Value* v = Find(*parameters, key);
    if (v == nullptr) continue;
    if (!v->IsInt64()) {
      return Invalid(
          absl::StrCat(where, "parameter \"", key, "\" must be an integer, not ", TypeName(*v)));
    }
    *field = v->GetInt64();
  }
  return shm;
}

absl::Status FlattenData(const Value& array, int depth, absl::string_view where,
                         std::vector<float>& out) {
  for (const Value& e : array.GetArray()) {
    if (e.IsNumber()) {
      out.push_back(static_cast<float>(e.GetDouble()));
    } else if (e.IsArray()) {
      if (depth + 1 >= kMaxDataDepth) {
        return Invalid(absl::StrCat(where, "\"data\" is nested deeper than ", kMaxDataDepth));
      }
      if (absl::Status s = FlattenData(e, depth + 1, where, out); !s.ok()) return s;
    } else {
      return Invalid(absl::StrCat(where, "\"data\" must hold numbers, found ", TypeName(e)));
    }
  }
  return absl::OkStatus();
}

// The body's binary tensor data, consumed in the inputs' order.
struct BinaryCursor {
  absl::string_view rest;
};

absl::Status ParseInput(const Value& v, size_t index, BinaryCursor& binary, bool has_binary,
                        RestInferRequest& out) {
  const std::string where = absl::StrCat("inputs[", index, "]: ");
  if (!v.IsObject()) return Invalid(absl::StrCat(where, "must be an object, not ", TypeName(v)));
  InferInput input;
  absl::StatusOr<std::string> name = OptionalString(v, "name", where);
  if (!name.ok()) return name.status();
  absl::StatusOr<std::string> datatype = OptionalString(v, "datatype", where);
  if (!datatype.ok()) return datatype.status();
  input.name = *std::move(name);
  input.datatype = *std::move(datatype);
  const std::string named = absl::StrCat("input '", input.name, "': ");

  const Value* shape = Find(v, "shape");
  if (shape == nullptr) return Invalid(absl::StrCat(named, "\"shape\" is missing"));
  if (!shape->IsArray()) {
    return Invalid(absl::StrCat(named, "\"shape\" must be an array, not ", TypeName(*shape)));
  }
  for (const Value& d : shape->GetArray()) {
    if (!d.IsInt64()) {
      return Invalid(absl::StrCat(named, "\"shape\" must hold integers, found ", TypeName(d)));
    }
    input.shape.push_back(d.GetInt64());
  }

  absl::StatusOr<const Value*> parameters = OptionalObject(v, "parameters", named);
  if (!parameters.ok()) return parameters.status();
  const Value* binary_size =
      *parameters == nullptr ? nullptr : Find(**parameters, "binary_data_size");
  const Value* data = Find(v, "data");
  if (binary_size != nullptr) {
    if (!binary_size->IsUint64()) {
      return Invalid(absl::StrCat(named, "\"binary_data_size\" must be a non-negative integer"));
    }
    if (data != nullptr) {
      return Invalid(absl::StrCat(named, "has both \"data\" and \"binary_data_size\""));
    }
    if (!has_binary) {
      return Invalid(absl::StrCat(named,
                                  "\"binary_data_size\" without an "
                                  "Inference-Header-Content-Length header"));
    }
    const uint64_t size = binary_size->GetUint64();
    if (size > binary.rest.size()) {
      return Invalid(absl::StrCat(named, "\"binary_data_size\" ", size, " exceeds the ",
                                  binary.rest.size(), " bytes of binary data left in the body"));
    }
    input.raw = binary.rest.substr(0, size);
    binary.rest.remove_prefix(size);
  } else if (data != nullptr) {
    if (!data->IsArray()) {
      return Invalid(absl::StrCat(named, "\"data\" must be an array, not ", TypeName(*data)));
    }
    std::vector<float>& values = out.json_data.emplace_back();
    if (absl::Status s = FlattenData(*data, 0, named, values); !s.ok()) return s;
    input.fp32 = absl::Span<const float>(values);
  }
  absl::StatusOr<SharedMemoryParams> shm = ParseSharedMemory(*parameters, named);
  if (!shm.ok()) return shm.status();
  input.shared_memory = *std::move(shm);
  out.request.inputs.push_back(std::move(input));
  return absl::OkStatus();
}

absl::Status ParseOutputs(const Value& outputs, bool& binary_output, RestInferRequest& out) {
  if (!outputs.IsArray()) {
    return Invalid(absl::StrCat("\"outputs\" must be an array, not ", TypeName(outputs)));
  }
  size_t index = 0;
  for (const Value& o : outputs.GetArray()) {
    const std::string where = absl::StrCat("outputs[", index++, "]: ");
    if (!o.IsObject()) return Invalid(absl::StrCat(where, "must be an object, not ", TypeName(o)));
    absl::StatusOr<std::string> name = OptionalString(o, "name", where);
    if (!name.ok()) return name.status();
    absl::StatusOr<const Value*> parameters = OptionalObject(o, "parameters", where);
    if (!parameters.ok()) return parameters.status();
    absl::StatusOr<bool> binary = OptionalBool(*parameters, "binary_data", binary_output, where);
    if (!binary.ok()) return binary.status();
    out.binary_output = *binary;
    absl::StatusOr<SharedMemoryParams> shm = ParseSharedMemory(*parameters, where);
    if (!shm.ok()) return shm.status();
    out.request.requested_outputs.push_back(RequestedOutput{*std::move(name), *std::move(shm)});
  }
  return absl::OkStatus();
}

absl::Status ParseDocument(const Value& root, BinaryCursor& binary, bool has_binary,
                           RestInferRequest& out) {
  if (!root.IsObject()) {
    return Invalid(absl::StrCat("the request must be a JSON object, not ", TypeName(root)));
  }
  absl::StatusOr<std::string> id = OptionalString(root, "id", "");
  if (!id.ok()) return id.status();
  out.request.id = *std::move(id);

  absl::StatusOr<const Value*> parameters = OptionalObject(root, "parameters", "");
  if (!parameters.ok()) return parameters.status();
  absl::StatusOr<bool> binary_output = OptionalBool(*parameters, "binary_data_output", false, "");
  if (!binary_output.ok()) return binary_output.status();
  out.binary_output = *binary_output;
  if (*parameters != nullptr) {
    if (const Value* timeout = Find(**parameters, "timeout"); timeout != nullptr) {
      if (!timeout->IsInt64()) {
        return Invalid(absl::StrCat("parameter \"timeout\" (microseconds) must be an integer, not ",
                                    TypeName(*timeout)));
      }
      out.request.timeout_us = timeout->GetInt64();
    }
  }

  const Value* inputs = Find(root, "inputs");
  if (inputs == nullptr) return Invalid("\"inputs\" is missing");
  if (!inputs->IsArray()) {
    return Invalid(absl::StrCat("\"inputs\" must be an array, not ", TypeName(*inputs)));
  }
  size_t index = 0;
  for (const Value& input : inputs->GetArray()) {
    if (absl::Status s = ParseInput(input, index++, binary, has_binary, out); !s.ok()) return s;
  }
  if (!binary.rest.empty()) {
    return Invalid(absl::StrCat("the body has ", binary.rest.size(),
                                " bytes of binary data that no input's \"binary_data_size\" "
                                "accounts for"));
  }
  if (const Value* outputs = Find(root, "outputs"); outputs != nullptr) {
    return ParseOutputs(*outputs, *binary_output, out);
  }
  return absl::OkStatus();
}

absl::Status SyntaxError(const rapidjson::Document& doc) {
  return Invalid(absl::StrCat("malformed JSON at byte ", doc.GetErrorOffset(), ": ",
                              rapidjson::GetParseError_En(doc.GetParseError())));
}

}  // namespace

absl::StatusOr<size_t> ParseHeaderLength(absl::string_view value) {
  size_t length = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, length);
  if (value.empty() || ec != std::errc() || ptr != end) {
    return Invalid(absl::StrCat("Inference-Header-Content-Length \"", value.substr(0, 32),
                                "\" is not a byte count"));
  }
  return length;
}

absl::StatusOr<std::unique_ptr<RestInferRequest>> ParseInferRequest(
    std::string body, std::optional<size_t> header_length, absl::string_view model_name,
    absl::string_view model_version) {
  auto out = std::make_unique<RestInferRequest>();
  out->body = std::move(body);
  out->request.model_name = std::string(model_name);
  out->request.model_version = std::string(model_version);

  rapidjson::Document doc;
  BinaryCursor binary;
  if (header_length.has_value()) {
    if (*header_length > out->body.size()) {
      return Invalid(absl::StrCat("Inference-Header-Content-Length ", *header_length,
                                  " is longer than the ", out->body.size(), "-byte body"));
    }
    // The JSON header is small: parsed from its bytes (not in situ, which
    // would need a NUL where the binary data starts).
    doc.Parse<kParseFlags>(out->body.data(), *header_length);
    binary.rest = absl::string_view(out->body).substr(*header_length);
  } else {
    if (out->body.find('\0') != std::string::npos) {
      return Invalid("the JSON body contains a NUL byte");
    }
    doc.ParseInsitu<kParseFlags>(out->body.data());
  }
  if (doc.HasParseError()) return SyntaxError(doc);
  if (absl::Status s = ParseDocument(doc, binary, header_length.has_value(), *out); !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace sepconv
