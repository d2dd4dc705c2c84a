#include "server/http/shared_memory_json.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "server/http/json_writer.h"

namespace sepconv {
namespace {

absl::StatusOr<uint64_t> Size(const rapidjson::Value& root, const char* key, bool required) {
  const auto it = root.FindMember(key);
  if (it == root.MemberEnd()) {
    if (required) return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" is missing"));
    return 0;
  }
  if (!it->value.IsUint64()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be a non-negative integer"));
  }
  return it->value.GetUint64();
}

}  // namespace

absl::StatusOr<RegisterBody> ParseRegisterBody(absl::string_view body) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the register body is not JSON: ", rapidjson::GetParseError_En(doc.GetParseError()),
        " at byte ", doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(
        "the register body must be an object {\"key\", \"offset\", \"byte_size\"}");
  }
  RegisterBody parsed;
  const auto key = doc.FindMember("key");
  if (key == doc.MemberEnd() || !key->value.IsString()) {
    return absl::InvalidArgumentError("\"key\" must be given, as a string");
  }
  parsed.key.assign(key->value.GetString(), key->value.GetStringLength());
  absl::StatusOr<uint64_t> offset = Size(doc, "offset", /*required=*/false);
  if (!offset.ok()) return offset.status();
  absl::StatusOr<uint64_t> byte_size = Size(doc, "byte_size", /*required=*/true);
  if (!byte_size.ok()) return byte_size.status();
  parsed.offset = *offset;
  parsed.byte_size = *byte_size;
  return parsed;
}

std::string SharedMemoryStatusJson(const std::vector<SharedMemoryRegionInfo>& regions) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartArray();
  for (const SharedMemoryRegionInfo& region : regions) {
    writer.StartObject();
    writer.Key("name");
    WriteJsonString(writer, region.name);
    writer.Key("key");
    WriteJsonString(writer, region.key);
    writer.Key("offset");
    writer.Uint64(region.offset);
    writer.Key("byte_size");
    writer.Uint64(region.byte_size);
    writer.EndObject();
  }
  writer.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace sepconv
