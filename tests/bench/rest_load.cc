// REST load generator for rest_vs_grpc_bench.sh: `--concurrency` closed-loop
// clients (one httplib::Client, i.e. one keep-alive connection, each) send
// KServe v2 infer requests for a random `--shape` input to a sepconv-server's
// --http_port, JSON or binary tensor data (input and output alike), for
// `--seconds` after `--warmup_seconds`. Prints one line:
//   rest <json|binary> c=<n> requests=<n> errors=<n> rps=<x> p50_ms=<x> p99_ms=<x>
// Every answer's status is checked (errors counted, the first one printed).

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "httplib.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "server address");
ABSL_FLAG(int, port, 8000, "server's --http_port");
ABSL_FLAG(std::string, model, "sepconv", "model name");
ABSL_FLAG(std::string, shape, "1,32,56,56", "input shape n,c,h,w");
ABSL_FLAG(bool, binary, false, "binary tensor data (else JSON \"data\")");
ABSL_FLAG(int, concurrency, 1, "closed-loop clients");
ABSL_FLAG(double, warmup_seconds, 1, "not measured");
ABSL_FLAG(double, seconds, 5, "measured");

namespace {

using Clock = std::chrono::steady_clock;

struct Body {
  std::string content;
  size_t header_length = 0;  // binary only
};

Body MakeBody(const std::vector<int64_t>& shape, bool binary) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  std::vector<float> values(static_cast<size_t>(count));
  uint64_t state = 1;
  for (float& v : values) {  // uniform in [-1, 1), reproducible
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<float>(state >> 40) / static_cast<float>(1 << 23) - 1.0f;
  }
  std::string dims;
  for (int64_t d : shape) absl::StrAppend(&dims, dims.empty() ? "" : ",", d);
  std::string head =
      absl::StrCat(R"({"inputs":[{"name":"input","datatype":"FP32","shape":[)", dims, "],");
  Body body;
  if (binary) {
    absl::StrAppend(&head, R"("parameters":{"binary_data_size":)", count * 4,
                    R"(}}],"outputs":[{"name":"output","parameters":{"binary_data":true}}]})");
    body.header_length = head.size();
    body.content = head;
    body.content.append(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  } else {
    std::string data;
    data.reserve(values.size() * 12);
    char number[32];
    for (float v : values) {
      auto [end, ec] = std::to_chars(number, number + sizeof(number), v);
      if (!data.empty()) data.push_back(',');
      data.append(number, end);
    }
    body.content = absl::StrCat(head, R"("data":[)", data, "]}]}");
  }
  return body;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<int64_t> shape;
  for (absl::string_view d : absl::StrSplit(absl::GetFlag(FLAGS_shape), ',')) {
    int64_t v;
    if (!absl::SimpleAtoi(d, &v)) {
      std::fprintf(stderr, "bad --shape\n");
      return 2;
    }
    shape.push_back(v);
  }
  const bool binary = absl::GetFlag(FLAGS_binary);
  const Body body = MakeBody(shape, binary);
  const std::string path = absl::StrCat("/v2/models/", absl::GetFlag(FLAGS_model), "/infer");
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const auto warmup_end =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup_seconds)));
  const auto end = warmup_end + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));

  std::vector<std::vector<double>> latencies(concurrency);
  std::atomic<int64_t> errors{0};
  std::atomic<bool> printed{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < concurrency; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client client(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_port));
      client.set_keep_alive(true);
      client.set_read_timeout(30, 0);
      httplib::Headers headers;
      if (binary) {
        headers.emplace("Inference-Header-Content-Length", std::to_string(body.header_length));
      }
      const char* type = binary ? "application/octet-stream" : "application/json";
      for (auto now = Clock::now(); now < end; now = Clock::now()) {
        auto result = client.Post(path.c_str(), headers, body.content, type);
        const auto done = Clock::now();
        if (!result || result->status != 200) {
          errors.fetch_add(1);
          if (!printed.exchange(true)) {
            std::fprintf(stderr, "first error: %s\n",
                         result ? absl::StrCat(result->status, " ", result->body).c_str()
                                : httplib::to_string(result.error()).c_str());
          }
          continue;
        }
        if (now >= warmup_end) {
          latencies[i].push_back(std::chrono::duration<double, std::milli>(done - now).count());
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  const auto at = [&](double q) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(q * all.size()))];
  };
  std::printf("rest %s c=%d requests=%zu errors=%lld rps=%.1f p50_ms=%.2f p99_ms=%.2f\n",
              binary ? "binary" : "json", concurrency, all.size(),
              static_cast<long long>(errors.load()),
              static_cast<double>(all.size()) / absl::GetFlag(FLAGS_seconds), at(0.5), at(0.99));
  return errors.load() == 0 ? 0 : 1;
}
