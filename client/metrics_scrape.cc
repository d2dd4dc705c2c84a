#include "client/metrics_scrape.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sepconv::client {
namespace {

struct Url {
  std::string host;
  std::string port;
  std::string path;
};

absl::StatusOr<Url> ParseUrl(const std::string& url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics URL '", url, "' must start with http:// (e.g. http://host:8002/metrics)"));
  }
  Url out;
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  out.path = slash == absl::string_view::npos ? "/metrics" : std::string(rest.substr(slash));
  size_t colon = authority.rfind(':');
  if (absl::StartsWith(authority, "[")) {  // [::1]:8002
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad host in metrics URL '", url, "'"));
    }
    out.host = std::string(authority.substr(1, close - 1));
    colon = authority.find(':', close);
  } else {
    out.host = std::string(authority.substr(0, colon));
  }
  out.port = colon == absl::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  if (out.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no host in metrics URL '", url, "'"));
  }
  return out;
}

int RemainingMs(absl::Time deadline) {
  return static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
}

// Waits until `fd` is ready for `events` or the deadline passes.
absl::Status WaitFor(int fd, short events, absl::Time deadline, const std::string& what) {
  pollfd p{fd, events, 0};
  while (true) {
    const int n = poll(&p, 1, RemainingMs(deadline));
    if (n > 0) return absl::OkStatus();
    if (n == 0) return absl::DeadlineExceededError(absl::StrCat("timed out ", what));
    if (errno != EINTR) return absl::UnavailableError(absl::StrCat(what, ": ", strerror(errno)));
  }
}

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Unescapes a label value of the text format (\\, \" and \n).
std::string Unescape(absl::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) {
      ++i;
      out.push_back(v[i] == 'n' ? '\n' : v[i]);
    } else {
      out.push_back(v[i]);
    }
  }
  return out;
}

// Parses `{a="x",b="y"}`; returns false on malformed input.
bool ParseLabels(absl::string_view text, std::map<std::string, std::string>* labels) {
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ',' || text[i] == ' ')) ++i;
    if (i >= text.size()) break;
    const size_t eq = text.find('=', i);
    if (eq == absl::string_view::npos || eq + 1 >= text.size() || text[eq + 1] != '"') return false;
    std::string name(absl::StripAsciiWhitespace(text.substr(i, eq - i)));
    size_t j = eq + 2;
    while (j < text.size() && text[j] != '"') j += text[j] == '\\' ? 2 : 1;
    if (j >= text.size()) return false;
    (*labels)[name] = Unescape(text.substr(eq + 2, j - eq - 2));
    i = j + 1;
  }
  return true;
}

}  // namespace

namespace {

// Connects the non-blocking socket `fd` to `a` by `deadline`.
absl::Status Connect(int fd, const addrinfo& a, absl::Time deadline, const std::string& where) {
  if (connect(fd, a.ai_addr, a.ai_addrlen) == 0) return absl::OkStatus();
  if (errno != EINPROGRESS)
    return absl::UnavailableError(absl::StrCat(where, ": ", strerror(errno)));
  if (absl::Status s = WaitFor(fd, POLLOUT, deadline, where); !s.ok()) return s;
  int error = 0;
  socklen_t len = sizeof(error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0) return absl::UnavailableError(absl::StrCat(where, ": ", strerror(error)));
  return absl::OkStatus();
}

// Sends all of `request` on `fd` by `deadline`.
absl::Status SendAll(int fd, const std::string& request, absl::Time deadline,
                     const std::string& url) {
  size_t sent = 0;
  while (sent < request.size()) {
    if (absl::Status s = WaitFor(fd, POLLOUT, deadline, absl::StrCat("sending to ", url));
        !s.ok()) {
      return s;
    }
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("sending to ", url, ": ", strerror(errno)));
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Appends what `fd` sends to `response` until the peer closes, by `deadline`.
absl::Status ReadAll(int fd, absl::Time deadline, const std::string& url, std::string* response) {
  char buffer[16384];
  while (true) {
    if (absl::Status s = WaitFor(fd, POLLIN, deadline, absl::StrCat("reading ", url)); !s.ok()) {
      return s;
    }
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) return absl::OkStatus();
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("reading ", url, ": ", strerror(errno)));
    }
    response->append(buffer, static_cast<size_t>(n));
  }
}

// The body of an HTTP/1.0 `response` with status 200.
absl::StatusOr<std::string> BodyOf200(const std::string& response, const std::string& url) {
  const size_t body = response.find("\r\n\r\n");
  const absl::string_view status_line =
      absl::string_view(response).substr(0, response.find("\r\n"));
  std::vector<absl::string_view> words = absl::StrSplit(status_line, ' ');
  if (body == std::string::npos || words.size() < 2 || !absl::StartsWith(words[0], "HTTP/")) {
    return absl::DataLossError(absl::StrCat("not an HTTP response from ", url));
  }
  if (words[1] != "200") {
    return absl::UnavailableError(absl::StrCat(url, " answered '", status_line, "'"));
  }
  return response.substr(body + 4);
}

}  // namespace

absl::StatusOr<std::string> HttpGet(const std::string& url, absl::Duration timeout) {
  absl::StatusOr<Url> parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  const absl::Time deadline = absl::Now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  if (int rc = getaddrinfo(parsed->host.c_str(), parsed->port.c_str(), &hints, &addresses);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", parsed->host, "': ", gai_strerror(rc)));
  }
  const std::string request = absl::StrCat(
      "GET ", parsed->path, " HTTP/1.0\r\nHost: ", parsed->host, "\r\nAccept: text/plain\r\n\r\n");
  absl::Status last = absl::UnavailableError(absl::StrCat("no address for '", parsed->host, "'"));
  std::string response;
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    Socket s(socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (s.fd() < 0) continue;
    last = Connect(s.fd(), *a, deadline, absl::StrCat("connecting to ", url));
    if (last.ok()) last = SendAll(s.fd(), request, deadline, url);
    if (last.ok()) last = ReadAll(s.fd(), deadline, url, &response);
    if (last.ok()) break;
  }
  freeaddrinfo(addresses);
  if (!last.ok()) return last;
  return BodyOf200(response, url);
}

absl::StatusOr<ServerCounters> ParseCounters(absl::string_view text, const std::string& model,
                                             const std::string& version) {
  ServerCounters counters;
  const std::map<std::string, double ServerCounters::*> wanted = {
      {"sepconv_inference_requests_total", &ServerCounters::requests},
      {"sepconv_inference_samples_total", &ServerCounters::samples},
      {"sepconv_inference_executions_total", &ServerCounters::executions},
      {"sepconv_queue_duration_seconds_sum", &ServerCounters::queue_sum},
      {"sepconv_queue_duration_seconds_count", &ServerCounters::queue_count},
      {"sepconv_compute_duration_seconds_sum", &ServerCounters::compute_sum},
      {"sepconv_compute_duration_seconds_count", &ServerCounters::compute_count},
  };
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    if (name_end == absl::string_view::npos) {
      return absl::DataLossError(absl::StrCat("malformed metrics line '", line, "'"));
    }
    const std::string name(line.substr(0, name_end));
    auto it = wanted.find(name);
    if (it == wanted.end()) continue;
    std::map<std::string, std::string> labels;
    absl::string_view rest = line.substr(name_end);
    if (absl::ConsumePrefix(&rest, "{")) {
      const size_t close = rest.rfind('}');
      if (close == absl::string_view::npos || !ParseLabels(rest.substr(0, close), &labels)) {
        return absl::DataLossError(absl::StrCat("malformed labels in metrics line '", line, "'"));
      }
      rest = rest.substr(close + 1);
    }
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::StripAsciiWhitespace(rest), ' ', absl::SkipEmpty());
    double value = 0;
    if (fields.empty() || !absl::SimpleAtod(fields[0], &value)) {
      return absl::DataLossError(absl::StrCat("malformed value in metrics line '", line, "'"));
    }
    if (labels["model"] != model) continue;
    if (!version.empty() && labels["version"] != version) continue;
    counters.*(it->second) += value;
    counters.found = true;
  }
  return counters;
}

absl::StatusOr<ServerCounters> ScrapeCounters(const std::string& url, const std::string& model,
                                              const std::string& version, absl::Duration timeout) {
  absl::StatusOr<std::string> body = HttpGet(url, timeout);
  if (!body.ok()) return body.status();
  return ParseCounters(*body, model, version);
}

}  // namespace sepconv::client
