#include "client/bench_report.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace sepconv::client {
namespace {

std::string ErrorList(const StepResult& r) {
  std::vector<std::string> parts;
  for (const auto& [code, n] : r.errors) parts.push_back(absl::StrCat(code, ":", n));
  return absl::StrJoin(parts, ";");
}

// Inside gnuplot's single quotes, a quote is doubled.
std::string GnuplotQuote(const std::string& s) { return absl::StrReplaceAll(s, {{"'", "''"}}); }

int64_t ErrorCount(const StepResult& r) {
  int64_t n = 0;
  for (const auto& [code, count] : r.errors) n += count;
  return n;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

}  // namespace

std::string FormatTable(const std::vector<StepResult>& results) {
  const bool server = !results.empty() && results[0].has_server;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {results.empty() ? "load" : results[0].mode,
                                     "infer/s",
                                     "samples/s",
                                     "p50 ms",
                                     "p90 ms",
                                     "p95 ms",
                                     "p99 ms",
                                     "max ms",
                                     "requests",
                                     "errors",
                                     "stable"};
  if (server) {
    for (const char* h : {"srv queue ms", "srv compute ms", "srv batch"}) header.push_back(h);
  }
  rows.push_back(header);
  for (const StepResult& r : results) {
    std::vector<std::string> row = {absl::StrFormat("%g", r.load),
                                    absl::StrFormat("%.1f", r.infer_per_sec),
                                    absl::StrFormat("%.1f", r.samples_per_sec),
                                    absl::StrFormat("%.3f", r.p50_ms),
                                    absl::StrFormat("%.3f", r.p90_ms),
                                    absl::StrFormat("%.3f", r.p95_ms),
                                    absl::StrFormat("%.3f", r.p99_ms),
                                    absl::StrFormat("%.3f", r.max_ms),
                                    absl::StrCat(r.requests),
                                    r.errors.empty() ? "0" : ErrorList(r),
                                    r.stable ? "yes" : "no"};
    if (server) {
      row.push_back(absl::StrFormat("%.3f", r.server_queue_ms));
      row.push_back(absl::StrFormat("%.3f", r.server_compute_ms));
      row.push_back(absl::StrFormat("%.2f", r.server_batch));
    }
    rows.push_back(row);
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : "  ", std::string(width[i] - row[i].size(), ' '), row[i]);
    }
    out += "\n";
  }
  return out;
}

std::string FormatCsv(const std::vector<StepResult>& results) {
  std::string out =
      "mode,load,windows,stable,requests,measured,infer_per_sec,samples_per_sec,mean_ms,p50_ms,"
      "p90_ms,p95_ms,p99_ms,max_ms,error_count,errors,server_requests,server_queue_ms,"
      "server_compute_ms,server_batch\n";
  for (const StepResult& r : results) {
    absl::StrAppend(
        &out,
        absl::StrFormat("%s,%g,%d,%d,%d,%d,%.3f,%.3f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%s,", r.mode,
                        r.load, r.windows, r.stable ? 1 : 0, r.requests, r.measured,
                        r.infer_per_sec, r.samples_per_sec, r.mean_ms, r.p50_ms, r.p90_ms, r.p95_ms,
                        r.p99_ms, r.max_ms, ErrorCount(r), ErrorList(r)),
        r.has_server ? absl::StrFormat("%.0f,%.4f,%.4f,%.3f", r.server_requests, r.server_queue_ms,
                                       r.server_compute_ms, r.server_batch)
                     : ",,,",
        "\n");
  }
  return out;
}

std::string FormatJson(const std::vector<StepResult>& results) {
  std::vector<std::string> steps;
  for (const StepResult& r : results) {
    std::vector<std::string> errors;
    for (const auto& [code, n] : r.errors)
      errors.push_back(absl::StrCat(JsonString(code), ": ", n));
    std::string step = absl::StrFormat(
        "{\"mode\": %s, \"load\": %g, \"windows\": %d, \"stable\": %s, \"requests\": %d, "
        "\"measured\": %d, \"infer_per_sec\": %.3f, \"samples_per_sec\": %.3f, "
        "\"latency_ms\": {\"mean\": %.4f, \"p50\": %.4f, \"p90\": %.4f, \"p95\": %.4f, "
        "\"p99\": %.4f, \"max\": %.4f}, \"errors\": {%s}",
        JsonString(r.mode), r.load, r.windows, r.stable ? "true" : "false", r.requests, r.measured,
        r.infer_per_sec, r.samples_per_sec, r.mean_ms, r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms,
        r.max_ms, absl::StrJoin(errors, ", "));
    if (!r.first_error.empty()) {
      absl::StrAppend(&step, ", \"first_error\": ", JsonString(r.first_error));
    }
    if (r.has_server) {
      absl::StrAppend(&step,
                      absl::StrFormat(", \"server\": {\"requests\": %.0f, \"queue_ms\": %.4f, "
                                      "\"compute_ms\": %.4f, \"batch\": %.3f}",
                                      r.server_requests, r.server_queue_ms, r.server_compute_ms,
                                      r.server_batch));
    }
    steps.push_back(step + "}");
  }
  return absl::StrCat("{\"steps\": [", absl::StrJoin(steps, ",\n  "), "]}\n");
}

absl::Status CheckGnuplot() {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path == nullptr ? "" : path, ':')) {
    if (dir.empty()) continue;
    if (access(absl::StrCat(dir, "/gnuplot").c_str(), X_OK) == 0) return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      "--plot needs gnuplot, which is not on PATH (Debian: apt-get install gnuplot-nox)");
}

absl::Status CheckWritable(const std::string& path) {
  const bool existed = access(path.c_str(), F_OK) == 0;
  std::ofstream out(path, std::ios::app);
  if (!out) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write '", path, "': ", std::strerror(errno)));
  }
  out.close();
  if (!existed) unlink(path.c_str());
  return absl::OkStatus();
}

std::string PlotScript(const std::vector<StepResult>& results, const std::string& title,
                       const std::string& png_path) {
  std::string script = absl::StrFormat(
      "set terminal pngcairo size 900,600 noenhanced\nset output '%s'\n"
      "set title '%s'\nset xlabel 'throughput (infer/s)'\nset ylabel 'latency (ms)'\n"
      "set grid\nset key left top\nset offsets graph 0.05, graph 0.05, graph 0.1, 0\n"
      "plot '-' using 1:2 with linespoints title 'p50', "
      "'-' using 1:2 with linespoints title 'p90', '-' using 1:2 with linespoints title 'p99', "
      "'-' using 1:2:3 with labels offset char 0,1 notitle\n",
      GnuplotQuote(png_path), GnuplotQuote(title));
  for (double StepResult::*field :
       {&StepResult::p50_ms, &StepResult::p90_ms, &StepResult::p99_ms}) {
    for (const StepResult& r : results) {
      absl::StrAppend(&script, absl::StrFormat("%.3f %.4f\n", r.infer_per_sec, r.*field));
    }
    script += "e\n";
  }
  // Each step's load above its p99 point: "c=16" (requests in flight) or
  // "500/s" (open-loop rate).
  for (const StepResult& r : results) {
    const std::string label =
        r.mode == "rate" ? absl::StrFormat("%g/s", r.load) : absl::StrFormat("c=%g", r.load);
    absl::StrAppend(&script,
                    absl::StrFormat("%.3f %.4f \"%s\"\n", r.infer_per_sec, r.p99_ms, label));
  }
  script += "e\n";
  return script;
}

absl::Status WritePlot(const std::vector<StepResult>& results, const std::string& title,
                       const std::string& png_path) {
  if (absl::Status s = CheckGnuplot(); !s.ok()) return s;
  const std::string script = PlotScript(results, title, png_path);
  // gnuplot's own chatter goes to a file, shown only when it fails.
  char log_path[] = "/tmp/sepconv-gnuplot-XXXXXX";
  const int log_fd = mkstemp(log_path);
  if (log_fd < 0) return absl::InternalError("cannot create a temporary file for gnuplot");
  close(log_fd);
  FILE* pipe = popen(absl::StrCat("gnuplot >", log_path, " 2>&1").c_str(), "w");
  if (pipe == nullptr) {
    unlink(log_path);
    return absl::InternalError("cannot start gnuplot");
  }
  fwrite(script.data(), 1, script.size(), pipe);
  const int rc = pclose(pipe);
  std::ifstream log_file(log_path);
  std::string log;
  // The first lines of gnuplot's complaint, printable characters only.
  for (char c; log.size() < 240 && log_file.get(c);) {
    if (c == '\n' || c == '\t') c = ' ';
    if (c >= 0x20 && c < 0x7f && !(c == ' ' && !log.empty() && log.back() == ' ')) log.push_back(c);
  }
  unlink(log_path);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("gnuplot failed (exit status ", WEXITSTATUS(rc),
                                            ") writing '", png_path,
                                            "': ", absl::StrReplaceAll(log, {{"\n", " "}})));
  }
  return absl::OkStatus();
}

}  // namespace sepconv::client
