#include "server/http/extensions_json.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "rapidjson/document.h"
#include "server/http/json_writer.h"

namespace sepconv {
namespace {

bool IsInt64(const google::protobuf::FieldDescriptor& field) {
  using Field = google::protobuf::FieldDescriptor;
  switch (field.cpp_type()) {
    case Field::CPPTYPE_INT64:
    case Field::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

// An int64 that protobuf's JSON mapping wrote as a string, as a number.
void Int64AsNumber(rapidjson::Value& value, bool is_unsigned) {
  if (!value.IsString()) return;
  char* end = nullptr;
  const char* text = value.GetString();
  if (is_unsigned) {
    const unsigned long long n = std::strtoull(text, &end, 10);
    if (end != text && *end == '\0') value.SetUint64(n);
  } else {
    const long long n = std::strtoll(text, &end, 10);
    if (end != text && *end == '\0') value.SetInt64(n);
  }
}

// Rewrites, in `object` (the JSON of a `type` message), every int64 field
// (and those of nested messages) from protobuf's string form to a number, as
// Triton's config JSON has them (e.g. "dims": [32, -1, -1]).
void Int64FieldsAsNumbers(rapidjson::Value& object, const google::protobuf::Descriptor& type) {
  using Field = google::protobuf::FieldDescriptor;
  for (auto& member : object.GetObject()) {
    const Field* field = type.FindFieldByName(member.name.GetString());
    if (field == nullptr) field = type.FindFieldByCamelcaseName(member.name.GetString());
    if (field == nullptr) continue;
    const bool is_unsigned = field->cpp_type() == Field::CPPTYPE_UINT64;
    if (field->is_map()) {
      const Field* value_field = field->message_type()->map_value();
      if (!member.value.IsObject()) continue;
      for (auto& entry : member.value.GetObject()) {
        if (IsInt64(*value_field)) {
          Int64AsNumber(entry.value, value_field->cpp_type() == Field::CPPTYPE_UINT64);
        } else if (value_field->message_type() != nullptr && entry.value.IsObject()) {
          Int64FieldsAsNumbers(entry.value, *value_field->message_type());
        }
      }
      continue;
    }
    const auto visit = [&](rapidjson::Value& value) {
      if (IsInt64(*field)) {
        Int64AsNumber(value, is_unsigned);
      } else if (field->message_type() != nullptr && value.IsObject()) {
        Int64FieldsAsNumbers(value, *field->message_type());
      }
    };
    if (field->is_repeated() && member.value.IsArray()) {
      for (auto& element : member.value.GetArray()) visit(element);
    } else {
      visit(member.value);
    }
  }
}

void Duration(JsonWriter& writer, const char* name, uint64_t count, uint64_t ns) {
  writer.Key(name);
  writer.StartObject();
  writer.Key("count");
  writer.Uint64(count);
  writer.Key("ns");
  writer.Uint64(ns);
  writer.EndObject();
}

void Stats(JsonWriter& writer, const ModelVersionStats& model) {
  const ModelStatsSnapshot& s = model.stats;
  writer.StartObject();
  writer.Key("name");
  WriteJsonString(writer, model.name);
  writer.Key("version");
  WriteJsonString(writer, model.version);
  writer.Key("last_inference");
  writer.Uint64(s.last_request_ms);
  writer.Key("inference_count");
  writer.Uint64(s.samples);
  writer.Key("execution_count");
  writer.Uint64(s.executions);
  writer.Key("inference_stats");
  writer.StartObject();
  Duration(writer, "success", s.success_count, s.success_ns);
  Duration(writer, "fail", s.fail_count, s.fail_ns);
  Duration(writer, "queue", s.queue_count, s.queue_ns);
  // Input and output copies are part of compute_infer here (as over gRPC).
  Duration(writer, "compute_input", 0, 0);
  Duration(writer, "compute_infer", s.compute_count, s.compute_ns);
  Duration(writer, "compute_output", 0, 0);
  writer.EndObject();
  writer.Key("batch_stats");
  writer.StartArray();
  writer.EndArray();
  writer.EndObject();
}

}  // namespace

absl::StatusOr<std::string> ModelConfigJson(const sepconv::ModelConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(config, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("config as JSON: ", status.ToString()));
  }
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) return absl::InternalError("config JSON unreadable");
  Int64FieldsAsNumbers(doc, *config.GetDescriptor());
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  doc.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string ModelStatisticsJson(const std::vector<ModelVersionStats>& stats) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("model_stats");
  writer.StartArray();
  for (const ModelVersionStats& model : stats) Stats(writer, model);
  writer.EndArray();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

absl::StatusOr<bool> ParseIndexBody(absl::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == absl::string_view::npos) return false;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return absl::InvalidArgumentError(
        "the repository index body must be a JSON object: {\"ready\": true|false}");
  }
  const auto ready = doc.FindMember("ready");
  if (ready == doc.MemberEnd()) return false;
  if (!ready->value.IsBool()) return absl::InvalidArgumentError("\"ready\" must be a boolean");
  return ready->value.GetBool();
}

std::string RepositoryIndexJson(const std::vector<ModelIndexEntry>& index) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartArray();
  for (const ModelIndexEntry& entry : index) {
    writer.StartObject();
    writer.Key("name");
    WriteJsonString(writer, entry.name);
    if (!entry.version.empty()) {
      writer.Key("version");
      WriteJsonString(writer, entry.version);
    }
    writer.Key("state");
    WriteJsonString(writer, entry.state);
    if (!entry.reason.empty()) {
      writer.Key("reason");
      WriteJsonString(writer, entry.reason);
    }
    writer.EndObject();
  }
  writer.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace sepconv
