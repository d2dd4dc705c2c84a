#include "server/http/infer_request_json.h"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fast_float/fast_float.h"
#include "simdjson.h"

namespace sepconv {
namespace {

using simdjson::ondemand::json_type;
using Value = simdjson::ondemand::value;
using Object = simdjson::ondemand::object;

// Deeper "data" nesting than any tensor has (rank 4) is refused.
constexpr int kMaxDataDepth = 8;
// Bodies up to this size are parsed by the thread's own parser, kept between
// requests (its buffers sized for the largest body it has seen); larger ones
// by a parser of their own, so that a thread does not hold a huge buffer.
constexpr size_t kKeptParserBytes = size_t{16} << 20;

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// simdjson's std::string_view as Abseil's (Debian's Abseil has its own).
absl::string_view View(std::string_view s) { return absl::string_view(s.data(), s.size()); }

const char* TypeName(json_type type) {
  switch (type) {
    case json_type::null:
      return "null";
    case json_type::boolean:
      return "a boolean";
    case json_type::object:
      return "an object";
    case json_type::array:
      return "an array";
    case json_type::string:
      return "a string";
    case json_type::number:
      return "a number";
  }
  return "a value";
}

// Reads the text of a "data" array, nested arrays flattened, each number as
// the float nearest its decimal (fast_float), so that a float's shortest
// decimal reads back as that float. JSON's grammar is checked as it goes:
// fast_float alone would also take "inf", "01", "1." or "1.e5".
class DataScanner {
 public:
  DataScanner(std::string_view json, absl::string_view where, std::vector<float>& out)
      : p_(json.data()), end_(json.data() + json.size()), where_(where), out_(out) {}

  absl::Status Scan() {
    int depth = 0;
    for (;;) {
      // A value: a number or a (nested) array.
      SkipBlanks();
      if (p_ < end_ && *p_ == '[') {
        if (++depth > kMaxDataDepth) {
          return Invalid(absl::StrCat(where_, "\"data\" is nested deeper than ", kMaxDataDepth));
        }
        ++p_;
        SkipBlanks();
        if (p_ < end_ && *p_ == ']') {
          ++p_;
          --depth;
        } else {
          continue;
        }
      } else if (absl::Status s = Number(); !s.ok()) {
        return s;
      }
      // What follows a value: a comma, or the end of arrays.
      for (;;) {
        SkipBlanks();
        if (depth == 0) return absl::OkStatus();  // raw_json() ends with the array
        if (p_ < end_ && *p_ == ',') {
          ++p_;
          break;
        }
        if (p_ < end_ && *p_ == ']') {
          ++p_;
          --depth;
          continue;
        }
        return Malformed();
      }
    }
  }

 private:
  void SkipBlanks() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  absl::Status Number() {
    const char* start = p_;
    const char* digits = start < end_ && *start == '-' ? start + 1 : start;
    if (digits == end_ || *digits < '0' || *digits > '9') {
      if (start == end_) return Malformed();
      switch (*start) {
        case '"':
          return Found("a string");
        case '{':
          return Found("an object");
        case 't':
        case 'f':
          return Found("a boolean");
        case 'n':
          return Found("null");
        default:
          return Malformed();
      }
    }
    float f;
    const fast_float::from_chars_result result = fast_float::from_chars(start, end_, f);
    if (result.ec != std::errc()) return Malformed();
    p_ = result.ptr;
    // What fast_float takes and JSON does not: a leading zero before a
    // digit, a '.' without a digit after it.
    if (*digits == '0' && digits + 1 < p_ && digits[1] >= '0' && digits[1] <= '9') {
      return Malformed();
    }
    if (const void* dot = std::memchr(digits, '.', static_cast<size_t>(p_ - digits))) {
      const char* after = static_cast<const char*>(dot) + 1;
      if (after == p_ || *after < '0' || *after > '9') return Malformed();
    }
    out_.push_back(f);
    return absl::OkStatus();
  }

  absl::Status Found(const char* type) const {
    return Invalid(absl::StrCat(where_, "\"data\" must hold numbers, found ", type));
  }

  absl::Status Malformed() const {
    return Invalid(absl::StrCat(where_, "\"data\" is malformed at \"",
                                View(std::string_view(p_, std::min<size_t>(16, end_ - p_))), "\""));
  }

  const char* p_;
  const char* const end_;
  const absl::string_view where_;
  std::vector<float>& out_;
};

// The reader of one request: the document's iterator is forward-only, so
// every field is handled where it stands and what depends on fields later
// in the document is resolved by the caller at the end.
class Reader {
 public:
  // `document` iterates the `size` bytes at `begin`.
  Reader(simdjson::ondemand::document& document, const char* begin, size_t size)
      : document_(document), begin_(begin), size_(size) {}

  // A syntax error, at the document's current position.
  absl::Status Malformed(simdjson::error_code error) const {
    const char* at = nullptr;
    const size_t offset = document_.current_location().get(at) || at < begin_
                              ? size_
                              : static_cast<size_t>(at - begin_);
    return Invalid(
        absl::StrCat("malformed JSON at byte ", offset, ": ", simdjson::error_message(error)));
  }

  // The type of `v`, or the syntax error at it.
  absl::StatusOr<json_type> Type(Value& v) const {
    json_type type;
    if (auto error = v.type().get(type)) return Malformed(error);
    return type;
  }

  absl::Status TypeError(Value& v, absl::string_view what) const {
    absl::StatusOr<json_type> type = Type(v);
    if (!type.ok()) return type.status();
    return Invalid(absl::StrCat(what, ", not ", TypeName(*type)));
  }

  absl::StatusOr<std::string> String(Value& v, absl::string_view what) const {
    std::string_view s;
    if (v.get_string().get(s)) return TypeError(v, absl::StrCat(what, " must be a string"));
    return std::string(s);
  }

  absl::StatusOr<bool> Bool(Value& v, absl::string_view what) const {
    bool b = false;
    if (v.get_bool().get(b)) return TypeError(v, absl::StrCat(what, " must be a boolean"));
    return b;
  }

  absl::StatusOr<int64_t> Int64(Value& v, absl::string_view what) const {
    int64_t i = 0;
    if (v.get_int64().get(i)) return TypeError(v, absl::StrCat(what, " must be an integer"));
    return i;
  }

  absl::StatusOr<Object> GetObject(Value& v, absl::string_view what) const {
    Object o;
    if (v.get_object().get(o)) return TypeError(v, absl::StrCat(what, " must be an object"));
    return o;
  }

  absl::StatusOr<simdjson::ondemand::array> GetArray(Value& v, absl::string_view what) const {
    simdjson::ondemand::array a;
    if (v.get_array().get(a)) return TypeError(v, absl::StrCat(what, " must be an array"));
    return a;
  }

  // Calls `f(key, value)` for each field of `object`, in document order.
  template <typename F>
  absl::Status ForEachField(Object& object, F&& f) const {
    for (auto field : object) {
      std::string_view key;
      if (auto error = field.unescaped_key().get(key)) {
        return Malformed(error);
      }
      Value value;
      if (auto error = field.value().get(value)) return Malformed(error);
      if (absl::Status s = f(key, value); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Calls `f(element)` for each element of `array`.
  template <typename F>
  absl::Status ForEachElement(simdjson::ondemand::array& array, F&& f) const {
    for (auto element : array) {
      Value value;
      if (auto error = element.get(value)) return Malformed(error);
      if (absl::Status s = f(value); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Appends the numbers of a (nested) "data" array to `out`: the array's
  // text is read by DataScanner, not value by value through simdjson, whose
  // per-value bookkeeping would cost more than the number itself.
  absl::Status Data(simdjson::ondemand::array& array, absl::string_view where,
                    std::vector<float>& out) const {
    std::string_view json;
    if (auto error = array.raw_json().get(json)) return Malformed(error);
    return DataScanner(json, where, out).Scan();
  }

 private:
  simdjson::ondemand::document& document_;
  const char* const begin_;
  const size_t size_;
};

// The parameters a tensor may carry, type-checked; the others are ignored.
struct TensorParameters {
  SharedMemoryParams shared_memory;
  std::optional<uint64_t> binary_data_size;
  std::optional<bool> binary_data;
};

absl::Status ParseParameters(const Reader& r, Value& v, absl::string_view where,
                             TensorParameters& out) {
  absl::StatusOr<Object> object = r.GetObject(v, absl::StrCat(where, "\"parameters\""));
  if (!object.ok()) return object.status();
  return r.ForEachField(*object, [&](std::string_view key, Value& p) -> absl::Status {
    const std::string what = absl::StrCat(where, "parameter \"", View(key), "\"");
    if (key == kShmRegionParameter) {
      absl::StatusOr<std::string> region = r.String(p, what);
      if (!region.ok()) return region.status();
      out.shared_memory.region = *std::move(region);
    } else if (key == kShmOffsetParameter || key == kShmByteSizeParameter) {
      absl::StatusOr<int64_t> n = r.Int64(p, what);
      if (!n.ok()) return n.status();
      (key == kShmOffsetParameter ? out.shared_memory.offset : out.shared_memory.byte_size) = *n;
    } else if (key == "binary_data_size") {
      uint64_t size = 0;
      if (p.get_uint64().get(size)) {
        return Invalid(absl::StrCat(where, "\"binary_data_size\" must be a non-negative integer"));
      }
      out.binary_data_size = size;
    } else if (key == "binary_data") {
      absl::StatusOr<bool> binary = r.Bool(p, what);
      if (!binary.ok()) return binary.status();
      out.binary_data = *binary;
    }
    return absl::OkStatus();
  });
}

// The body's binary tensor data, consumed in the inputs' order.
struct BinaryCursor {
  absl::string_view rest;
  bool present = false;  // the request had an Inference-Header-Content-Length
};

// At most this many floats are reserved for a "data" array before it is read
// (more than the body can hold would be a waste: each number takes at least
// two bytes with its comma).
size_t ReserveFor(const std::vector<int64_t>& shape, size_t body_bytes) {
  size_t count = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && count > body_bytes / static_cast<size_t>(d))) return body_bytes / 2;
    count *= static_cast<size_t>(d);
  }
  return std::min(count, body_bytes / 2);
}

// Appends the integers of an input's "shape" to `shape`; `where` names the
// input in errors.
absl::Status ParseShape(const Reader& r, Value& f, const std::string& where,
                        std::vector<int64_t>& shape) {
  absl::StatusOr<simdjson::ondemand::array> array = r.GetArray(f, absl::StrCat(where, "\"shape\""));
  if (!array.ok()) return array.status();
  return r.ForEachElement(*array, [&](Value& d) -> absl::Status {
    int64_t n = 0;
    if (d.get_int64().get(n)) {
      return r.TypeError(d, absl::StrCat(where, "\"shape\" must hold integers, found"));
    }
    shape.push_back(n);
    return absl::OkStatus();
  });
}

// Points `input` at its values once its fields are read: the next
// "binary_data_size" bytes of `binary`, or its "data" (null: none, e.g. in
// shared memory).
absl::Status PlaceInputValues(const std::string& where, const std::vector<float>* data,
                              const TensorParameters& parameters, BinaryCursor& binary,
                              InferInput& input) {
  if (!parameters.binary_data_size.has_value()) {
    if (data != nullptr) input.fp32 = absl::Span<const float>(*data);
    return absl::OkStatus();
  }
  if (data != nullptr) {
    return Invalid(absl::StrCat(where, "has both \"data\" and \"binary_data_size\""));
  }
  if (!binary.present) {
    return Invalid(absl::StrCat(where,
                                "\"binary_data_size\" without an "
                                "Inference-Header-Content-Length header"));
  }
  const uint64_t size = *parameters.binary_data_size;
  if (size > binary.rest.size()) {
    return Invalid(absl::StrCat(where, "\"binary_data_size\" ", size, " exceeds the ",
                                binary.rest.size(), " bytes of binary data left in the body"));
  }
  input.raw = binary.rest.substr(0, size);
  binary.rest.remove_prefix(size);
  return absl::OkStatus();
}

absl::Status ParseInput(const Reader& r, Value& v, size_t index, size_t body_bytes,
                        BinaryCursor& binary, RestInferRequest& out) {
  absl::StatusOr<Object> object = r.GetObject(v, absl::StrCat("inputs[", index, "]"));
  if (!object.ok()) return object.status();
  InferInput input;
  bool has_name = false, has_shape = false;
  std::vector<float>* data = nullptr;
  TensorParameters parameters;
  // Errors name the input once its name has been read.
  const auto where = [&] {
    return has_name ? absl::StrCat("input '", input.name, "': ")
                    : absl::StrCat("inputs[", index, "]: ");
  };
  absl::Status status =
      r.ForEachField(*object, [&](std::string_view key, Value& f) -> absl::Status {
        if (key == "name" || key == "datatype") {
          absl::StatusOr<std::string> s = r.String(f, absl::StrCat(where(), "\"", View(key), "\""));
          if (!s.ok()) return s.status();
          (key == "name" ? input.name : input.datatype) = *std::move(s);
          has_name |= key == "name";
        } else if (key == "shape") {
          has_shape = true;
          return ParseShape(r, f, where(), input.shape);
        } else if (key == "parameters") {
          return ParseParameters(r, f, where(), parameters);
        } else if (key == "data") {
          absl::StatusOr<simdjson::ondemand::array> array =
              r.GetArray(f, absl::StrCat(where(), "\"data\""));
          if (!array.ok()) return array.status();
          data = &out.json_data.emplace_back();
          data->reserve(ReserveFor(input.shape, body_bytes));
          return r.Data(*array, where(), *data);
        }
        return absl::OkStatus();
      });
  if (!status.ok()) return status;

  if (!has_shape) return Invalid(absl::StrCat(where(), "\"shape\" is missing"));
  if (absl::Status s = PlaceInputValues(where(), data, parameters, binary, input); !s.ok()) {
    return s;
  }
  input.shared_memory = std::move(parameters.shared_memory);
  out.request.inputs.push_back(std::move(input));
  return absl::OkStatus();
}

// Reads "outputs"; `binary_data` is the last output's "binary_data"
// parameter, when it has one.
absl::Status ParseOutputs(const Reader& r, Value& v, std::optional<bool>& binary_data,
                          RestInferRequest& out) {
  absl::StatusOr<simdjson::ondemand::array> outputs = r.GetArray(v, "\"outputs\"");
  if (!outputs.ok()) return outputs.status();
  size_t index = 0;
  return r.ForEachElement(*outputs, [&](Value& o) -> absl::Status {
    const std::string where = absl::StrCat("outputs[", index++, "]: ");
    absl::StatusOr<Object> object = r.GetObject(o, absl::StrCat("outputs[", index - 1, "]"));
    if (!object.ok()) return object.status();
    RequestedOutput output;
    TensorParameters parameters;
    absl::Status status =
        r.ForEachField(*object, [&](std::string_view key, Value& f) -> absl::Status {
          if (key == "name") {
            absl::StatusOr<std::string> name = r.String(f, absl::StrCat(where, "\"name\""));
            if (!name.ok()) return name.status();
            output.name = *std::move(name);
          } else if (key == "parameters") {
            return ParseParameters(r, f, where, parameters);
          }
          return absl::OkStatus();
        });
    if (!status.ok()) return status;
    binary_data = parameters.binary_data;
    output.shared_memory = std::move(parameters.shared_memory);
    out.request.requested_outputs.push_back(std::move(output));
    return absl::OkStatus();
  });
}

// The request's own "parameters".
absl::Status ParseRequestParameters(const Reader& r, Value& v, bool& binary_output,
                                    RestInferRequest& out) {
  absl::StatusOr<Object> object = r.GetObject(v, "\"parameters\"");
  if (!object.ok()) return object.status();
  return r.ForEachField(*object, [&](std::string_view key, Value& p) -> absl::Status {
    if (key == "binary_data_output") {
      absl::StatusOr<bool> binary = r.Bool(p, "parameter \"binary_data_output\"");
      if (!binary.ok()) return binary.status();
      binary_output = *binary;
    } else if (key == "timeout") {
      absl::StatusOr<int64_t> timeout = r.Int64(p, "parameter \"timeout\" (microseconds)");
      if (!timeout.ok()) return timeout.status();
      out.request.timeout_us = *timeout;
    }
    return absl::OkStatus();
  });
}

absl::Status ParseDocument(const Reader& r, simdjson::ondemand::document& document,
                           size_t body_bytes, BinaryCursor& binary, RestInferRequest& out) {
  json_type type;
  if (auto error = document.type().get(type)) return r.Malformed(error);
  if (type != json_type::object) {
    return Invalid(absl::StrCat("the request must be a JSON object, not ", TypeName(type)));
  }
  Object root;
  if (auto error = document.get_object().get(root)) return r.Malformed(error);
  bool has_inputs = false, binary_output = false, has_outputs = false;
  std::optional<bool> output_binary_data;
  absl::Status status = r.ForEachField(root, [&](std::string_view key, Value& v) -> absl::Status {
    if (key == "id") {
      absl::StatusOr<std::string> id = r.String(v, "\"id\"");
      if (!id.ok()) return id.status();
      out.request.id = *std::move(id);
    } else if (key == "parameters") {
      return ParseRequestParameters(r, v, binary_output, out);
    } else if (key == "inputs") {
      absl::StatusOr<simdjson::ondemand::array> inputs = r.GetArray(v, "\"inputs\"");
      if (!inputs.ok()) return inputs.status();
      has_inputs = true;
      size_t index = 0;
      return r.ForEachElement(*inputs, [&](Value& input) -> absl::Status {
        return ParseInput(r, input, index++, body_bytes, binary, out);
      });
    } else if (key == "outputs") {
      has_outputs = true;
      return ParseOutputs(r, v, output_binary_data, out);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  const char* trailing = nullptr;
  if (!document.current_location().get(trailing)) return r.Malformed(simdjson::TRAILING_CONTENT);
  if (!has_inputs) return Invalid("\"inputs\" is missing");
  if (!binary.rest.empty()) {
    return Invalid(absl::StrCat("the body has ", binary.rest.size(),
                                " bytes of binary data that no input's \"binary_data_size\" "
                                "accounts for"));
  }
  out.binary_output = has_outputs ? output_binary_data.value_or(binary_output) : binary_output;
  return absl::OkStatus();
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

  const size_t json_bytes = header_length.value_or(out->body.size());
  if (json_bytes > out->body.size()) {
    return Invalid(absl::StrCat("Inference-Header-Content-Length ", json_bytes,
                                " is longer than the ", out->body.size(), "-byte body"));
  }
  if (std::memchr(out->body.data(), '\0', json_bytes) != nullptr) {
    return Invalid("the JSON body contains a NUL byte");
  }
  // simdjson reads up to SIMDJSON_PADDING bytes past the JSON (never using
  // them): the binary data after a header, or room reserved in the body.
  if (out->body.capacity() - json_bytes < simdjson::SIMDJSON_PADDING) {
    out->body.reserve(json_bytes + simdjson::SIMDJSON_PADDING);
  }
  BinaryCursor binary;
  binary.present = header_length.has_value();
  binary.rest = absl::string_view(out->body).substr(json_bytes);

  thread_local simdjson::ondemand::parser kept_parser;
  simdjson::ondemand::parser own_parser;
  simdjson::ondemand::parser& parser = json_bytes <= kKeptParserBytes ? kept_parser : own_parser;
  simdjson::ondemand::document document;
  const simdjson::padded_string_view json(out->body.data(), json_bytes, out->body.capacity());
  Reader reader(document, out->body.data(), json_bytes);
  if (auto error = parser.iterate(json).get(document)) {
    return Invalid(absl::StrCat("malformed JSON: ", simdjson::error_message(error)));
  }
  if (absl::Status s = ParseDocument(reader, document, json_bytes, binary, *out); !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace sepconv
