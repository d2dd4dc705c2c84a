#include "server/http/infer_response_json.h"

#include <charconv>
#include <cstdint>
#include <utility>

#include "server/http/json_writer.h"

namespace sepconv {
namespace {

// The longest shortest-round-trip decimal of a float ("-1.17549435e-38"),
// and its comma.
constexpr size_t kMaxFloatChars = 16;

// Appends `values` to `out` as JSON numbers separated by commas, each the
// shortest decimal that reads back as the same float (std::to_chars): the
// room for the longest is made once, the numbers written straight into it.
void AppendFloats(const std::vector<float>& values, std::string& out) {
  size_t size = out.size();
  out.resize(size + values.size() * kMaxFloatChars);
  char* p = out.data() + size;
  char* const end = out.data() + out.size();
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) *p++ = ',';
    p = std::to_chars(p, end, values[i]).ptr;
  }
  out.resize(static_cast<size_t>(p - out.data()));
}

}  // namespace

InferResponseBuilder::InferResponseBuilder(std::string id, bool binary)
    : id_(std::move(id)), binary_(binary) {}

std::string InferResponseBuilder::Header(Data data) const {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("model_name");
  WriteJsonString(writer, result_.model_name);
  writer.Key("model_version");
  WriteJsonString(writer, result_.model_version);
  if (!id_.empty()) {
    writer.Key("id");
    WriteJsonString(writer, id_);
  }
  writer.Key("outputs");
  writer.StartArray();
  writer.StartObject();
  writer.Key("name");
  writer.String(kOutputName);
  writer.Key("datatype");
  writer.String(kDatatypeFp32);
  writer.Key("shape");
  writer.StartArray();
  for (int64_t d : {result_.output_dims.n, result_.output_dims.c, result_.output_dims.h,
                    result_.output_dims.w}) {
    writer.Int64(d);
  }
  writer.EndArray();
  if (data == Data::kJson) {
    // The numbers are written by AppendFloats, not the writer: its
    // bookkeeping per value costs more than printing the number.
    writer.Key("data");
    writer.StartArray();
    std::string json;
    json.reserve(buffer.GetSize() + floats_.size() * kMaxFloatChars + 4);
    json.append(buffer.GetString(), buffer.GetSize());
    AppendFloats(floats_, json);
    json.append("]}]}");
    return json;
  }
  if (data == Data::kBinary) {
    writer.Key("parameters");
    writer.StartObject();
    writer.Key("binary_data_size");
    writer.Uint64(static_cast<size_t>(Elements(result_.output_dims)) * sizeof(float));
    writer.EndObject();
  }
  writer.EndObject();
  writer.EndArray();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

float* InferResponseBuilder::Allocate(const InferResult& result) {
  result_ = result;
  const size_t count = static_cast<size_t>(Elements(result.output_dims));
  if (result.output_in_shared_memory) return nullptr;  // nothing to carry
  if (!binary_) {
    floats_.assign(count, 0.0f);
    return floats_.data();
  }
  body_ = Header(Data::kBinary);
  body_.append((4 - body_.size() % 4) % 4, ' ');  // JSON allows trailing blanks
  header_length_ = body_.size();
  body_.resize(header_length_ + count * sizeof(float));
  // std::string's buffer comes from operator new (aligned for any float) and
  // the header length is a multiple of 4.
  return reinterpret_cast<float*>(body_.data() + header_length_);
}

std::string InferResponseBuilder::Finish() {
  if (result_.output_in_shared_memory) return Header(Data::kNone);
  if (binary_) return std::move(body_);
  return Header(Data::kJson);
}

}  // namespace sepconv
