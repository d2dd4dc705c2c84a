#include "server/http/metadata_json.h"

#include <vector>

#include "server/http/json_writer.h"

namespace sepconv {
namespace {

void Strings(JsonWriter& writer, const char* key, const std::vector<std::string>& values) {
  writer.Key(key);
  writer.StartArray();
  for (const std::string& v : values) WriteJsonString(writer, v);
  writer.EndArray();
}

void Tensors(JsonWriter& writer, const char* key, const std::vector<TensorMetadataInfo>& tensors) {
  writer.Key(key);
  writer.StartArray();
  for (const TensorMetadataInfo& t : tensors) {
    writer.StartObject();
    writer.Key("name");
    WriteJsonString(writer, t.name);
    writer.Key("datatype");
    WriteJsonString(writer, t.datatype);
    writer.Key("shape");
    writer.StartArray();
    for (int64_t d : t.shape) writer.Int64(d);
    writer.EndArray();
    writer.EndObject();
  }
  writer.EndArray();
}

}  // namespace

std::string ServerMetadataJson(const ServerMetadataInfo& info) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("name");
  WriteJsonString(writer, info.name);
  writer.Key("version");
  WriteJsonString(writer, info.version);
  Strings(writer, "extensions", info.extensions);
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string ModelMetadataJson(const ModelMetadataInfo& info) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("name");
  WriteJsonString(writer, info.name);
  Strings(writer, "versions", info.versions);
  writer.Key("platform");
  WriteJsonString(writer, info.platform);
  Tensors(writer, "inputs", info.inputs);
  Tensors(writer, "outputs", info.outputs);
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace sepconv
