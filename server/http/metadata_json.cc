#include "server/http/metadata_json.h"

#include <vector>

#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace sepconv {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void String(Writer& writer, const std::string& s) {
  writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void Strings(Writer& writer, const char* key, const std::vector<std::string>& values) {
  writer.Key(key);
  writer.StartArray();
  for (const std::string& v : values) String(writer, v);
  writer.EndArray();
}

void Tensors(Writer& writer, const char* key, const std::vector<TensorMetadataInfo>& tensors) {
  writer.Key(key);
  writer.StartArray();
  for (const TensorMetadataInfo& t : tensors) {
    writer.StartObject();
    writer.Key("name");
    String(writer, t.name);
    writer.Key("datatype");
    String(writer, t.datatype);
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
  Writer writer(buffer);
  writer.StartObject();
  writer.Key("name");
  String(writer, info.name);
  writer.Key("version");
  String(writer, info.version);
  Strings(writer, "extensions", info.extensions);
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string ModelMetadataJson(const ModelMetadataInfo& info) {
  rapidjson::StringBuffer buffer;
  Writer writer(buffer);
  writer.StartObject();
  writer.Key("name");
  String(writer, info.name);
  Strings(writer, "versions", info.versions);
  writer.Key("platform");
  String(writer, info.platform);
  Tensors(writer, "inputs", info.inputs);
  Tensors(writer, "outputs", info.outputs);
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace sepconv
