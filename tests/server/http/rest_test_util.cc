#include "rest_test_util.h"

#include <charconv>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"

namespace sepconv::testing {

RestServer::RestServer(ServerOptions options, HttpServerOptions http) : grpc(std::move(options)) {
  auto started = HttpServer::Start(http, grpc.server().core());
  if (!started.ok()) {
    ADD_FAILURE() << started.status();
    std::abort();
  }
  rest = *std::move(started);
}

HttpServerOptions RestServer::Options() {
  HttpServerOptions http;
  http.address = "127.0.0.1";
  http.port = 0;
  http.threads = 8;
  http.max_body_bytes = 4 << 20;
  return http;
}

std::unique_ptr<httplib::Client> RestServer::Client() const {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", rest->port());
  client->set_read_timeout(30, 0);
  return client;
}

std::vector<float> RestServer::Grpc(const Dims4& dims, const std::vector<float>& data, bool raw) {
  inference::ModelInferResponse response;
  auto context = ContextWithDeadline();
  grpc::Status status = grpc.NewStub()->ModelInfer(
      context.get(), MakeInferRequest("sepconv", dims, data, raw), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return status.ok() ? OutputFloats(response) : std::vector<float>();
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

RestBody MakeRestBody(const Dims4& dims, const std::vector<float>& data, bool binary,
                      const std::string& id) {
  std::string head = "{";
  if (!id.empty()) absl::StrAppend(&head, R"("id":")", id, R"(",)");
  absl::StrAppend(&head, R"("inputs":[{"name":"input","datatype":"FP32","shape":[)", dims.n, ",",
                  dims.c, ",", dims.h, ",", dims.w, "],");
  RestBody body;
  if (binary) {
    absl::StrAppend(&head, R"("parameters":{"binary_data_size":)", data.size() * sizeof(float),
                    R"(}}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]})");
    body.header_length = head.size();
    body.content = head;
    body.content.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
    return body;
  }
  body.content = head + R"("data":[)";
  char number[32];
  for (size_t i = 0; i < data.size(); ++i) {
    auto [end, ec] = std::to_chars(number, number + sizeof(number), data[i]);
    if (i > 0) body.content.push_back(',');
    body.content.append(number, end);
  }
  body.content += "]}]}";
  return body;
}

httplib::Result PostInfer(httplib::Client& client, const std::string& model, const RestBody& body,
                          const httplib::Headers& extra) {
  httplib::Headers headers = extra;
  if (body.header_length > 0) {
    headers.emplace("Inference-Header-Content-Length", std::to_string(body.header_length));
  }
  return client.Post(absl::StrCat("/v2/models/", model, "/infer").c_str(), headers, body.content,
                     body.header_length > 0 ? "application/octet-stream" : "application/json");
}

absl::StatusOr<std::vector<float>> RestOutputFloats(const httplib::Response& response) {
  if (response.status != 200) {
    return absl::InternalError(absl::StrCat("HTTP ", response.status, ": ", response.body));
  }
  const std::string& body = response.body;
  if (response.has_header("Inference-Header-Content-Length")) {
    size_t length = 0;
    if (!absl::SimpleAtoi(response.get_header_value("Inference-Header-Content-Length"), &length) ||
        length > body.size() || (body.size() - length) % sizeof(float) != 0) {
      return absl::InternalError("bad binary answer");
    }
    if (response.get_header_value("Content-Type") != "application/octet-stream") {
      return absl::InternalError("binary answer without application/octet-stream");
    }
    std::vector<float> out((body.size() - length) / sizeof(float));
    std::memcpy(out.data(), body.data() + length, out.size() * sizeof(float));
    return out;
  }
  // JSON: the numbers as written, read with from_chars (exact for floats).
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("outputs")) {
    return absl::InternalError("answer is not an infer response: " + body.substr(0, 200));
  }
  const size_t at = body.find("\"data\":[");
  if (at == std::string::npos) return absl::InternalError("no \"data\"");
  std::vector<float> out;
  const char* p = body.data() + at + 8;
  const char* end = body.data() + body.size();
  while (p < end && *p != ']') {
    float f;
    auto [next, ec] = std::from_chars(p, end, f);
    if (ec != std::errc()) return absl::InternalError("bad number in \"data\"");
    out.push_back(f);
    p = next;
    if (p < end && *p == ',') ++p;
  }
  return out;
}

}  // namespace sepconv::testing
