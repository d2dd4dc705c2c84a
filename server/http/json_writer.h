#ifndef SEPCONV_SERVER_HTTP_JSON_WRITER_H_
#define SEPCONV_SERVER_HTTP_JSON_WRITER_H_

// The RapidJSON writer the REST bodies are written with, and a string
// writer that takes any length (RapidJSON's own overload wants a C string
// or a SizeType length). Thread-compatible.

#include "absl/strings/string_view.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace sepconv {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

inline void WriteJsonString(JsonWriter& writer, absl::string_view s) {
  writer.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_JSON_WRITER_H_
