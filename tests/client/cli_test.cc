// The sepconv-client binary against the real sepconv-server binary: each
// subcommand, .npy in and out (cross-checked with numpy and the engine's
// reference), the bench's counts against the server's own metrics, and bad
// options ending quickly with a clear one-line error and a non-zero exit.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/metrics_scrape.h"
#include "client/npy.h"
#include "client/tensor.h"
#include "engine/random_model.h"
#include "engine/reference.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/free_port.h"
#include "tests/testing/shared_server.h"

namespace sepconv::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::ProcessResult;

class CliTest : public testing::SharedServerTest<CliTest> {
 protected:
  // Runs sepconv-client against the live server.
  ProcessResult Cli(std::vector<std::string> args, const std::vector<std::string>& env = {},
                    absl::Duration timeout = absl::Seconds(60)) {
    args.insert(args.begin(), {testing::RequiredEnv("SEPCONV_CLIENT_BIN")});
    args.push_back(absl::StrCat("--server=", server_->target()));
    return testing::RunProcess(args, timeout, env);
  }

  std::string Temp(const std::string& name) {
    return absl::StrCat(::testing::TempDir(), "/cli_test_", server_->grpc_port(), "_", name);
  }
};

// One line on stderr, naming the command.
void ExpectOneLineError(const ProcessResult& r, const std::string& needle) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr(needle));
  EXPECT_THAT(r.err, HasSubstr("sepconv-client"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

void ExpectMatchesReference(const Tensor& input, const Tensor& output) {
  const Dims4 dims{input.shape[0], input.shape[1], input.shape[2], input.shape[3]};
  absl::StatusOr<std::vector<float>> want = ReferenceForward(DefaultModel(), dims, input.data);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_EQ(output.data.size(), want->size());
  for (size_t i = 0; i < want->size(); ++i) {
    ASSERT_NEAR(output.data[i], (*want)[i], 1e-4 * (1 + std::abs((*want)[i]))) << i;
  }
}

TEST_F(CliTest, HelpIsPerCommand) {
  ProcessResult bench = Cli({"bench", "--help"});
  EXPECT_EQ(bench.exit_code, 0);
  EXPECT_THAT(bench.out, HasSubstr("--concurrency"));
  EXPECT_THAT(bench.out, HasSubstr("--metrics_url"));
  ProcessResult infer = Cli({"infer", "--help"});
  EXPECT_EQ(infer.exit_code, 0);
  EXPECT_THAT(infer.out, HasSubstr("--shape"));
  EXPECT_THAT(infer.out, Not(HasSubstr("--concurrency")));
  ProcessResult none = Cli({});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("commands:"));
  ProcessResult unknown = Cli({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown command 'frobnicate'"));
}

TEST_F(CliTest, HealthAndMetadata) {
  ProcessResult health = Cli({"health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(health.out, "SERVING\n");
  ProcessResult model = Cli({"health", "--service=sepconv"});
  EXPECT_EQ(model.exit_code, 0) << model.err;
  ExpectOneLineError(Cli({"health", "--service=no_such_model"}), "NOT_FOUND");

  ProcessResult metadata = Cli({"metadata"});
  EXPECT_EQ(metadata.exit_code, 0) << metadata.err;
  EXPECT_THAT(metadata.out, HasSubstr("input: input FP32 [-1, 32, -1, -1]"));
  EXPECT_THAT(metadata.out, HasSubstr("output: output FP32 [-1, 64, -1, -1]"));
  EXPECT_THAT(metadata.out, HasSubstr("ready: true"));
}

TEST_F(CliTest, InferRandomShapeWritesTheReferenceAnswer) {
  const std::string out_path = Temp("random_out.npy");
  for (const char* form : {"--typed=false", "--typed=true"}) {
    ProcessResult r =
        Cli({"infer", "--shape=2,32,10,12", "--seed=5", form, absl::StrCat("--output=", out_path)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("output:  [2, 64, 10, 12]"));
    EXPECT_THAT(r.out, HasSubstr("latency:"));
    absl::StatusOr<Tensor> output = ReadNpy(out_path);
    ASSERT_TRUE(output.ok()) << output.status();
    EXPECT_EQ(output->shape, (std::vector<int64_t>{2, 64, 10, 12}));
    ExpectMatchesReference(*RandomTensor({2, 32, 10, 12}, 5), *output);
  }
  std::remove(out_path.c_str());
}

TEST_F(CliTest, InferReadsAndWritesNumpyFiles) {
  const std::string in = Temp("np_in.npy"), out = Temp("np_out.npy"), big = Temp("np_big.npy"),
                    f64 = Temp("np_f64.npy"), fortran = Temp("np_fortran.npy");
  const std::string python = testing::RequiredEnv("SEPCONV_PYTHON");
  ProcessResult make = testing::RunProcess(
      {python, "-c",
       "import numpy as np, sys\n"
       "x = np.random.default_rng(3).standard_normal((1, 32, 7, 9)).astype(np.float32)\n"
       "np.save(sys.argv[1], x)\n"
       "np.save(sys.argv[2], x.astype('>f4'))\n"
       "np.save(sys.argv[3], x.astype(np.float64))\n"
       "np.save(sys.argv[4], np.asfortranarray(x))\n",
       in, big, f64, fortran},
      absl::Seconds(60));
  ASSERT_EQ(make.exit_code, 0) << make.err;

  ProcessResult r = Cli({"infer", absl::StrCat("--input=", in), absl::StrCat("--output=", out)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExpectMatchesReference(*ReadNpy(in), *ReadNpy(out));
  ProcessResult check = testing::RunProcess(
      {python, "-c",
       "import numpy as np, sys\n"
       "y = np.load(sys.argv[1])\n"
       "assert y.dtype == np.float32 and y.shape == (1, 64, 7, 9), (y.dtype, y.shape)\n"
       "assert y.flags['C_CONTIGUOUS'] and np.isfinite(y).all()\n",
       out},
      absl::Seconds(60));
  EXPECT_EQ(check.exit_code, 0) << check.err;

  ExpectOneLineError(Cli({"infer", absl::StrCat("--input=", big)}), "big-endian");
  ExpectOneLineError(Cli({"infer", absl::StrCat("--input=", f64)}), "'<f8'");
  ExpectOneLineError(Cli({"infer", absl::StrCat("--input=", fortran)}), "Fortran");
  for (const std::string& p : {in, out, big, f64, fortran}) std::remove(p.c_str());
}

TEST_F(CliTest, BadOptionsEndQuicklyWithAClearError) {
  ExpectOneLineError(Cli({"infer", "--shape=1,32,8,8", "--model=no_such_model"}), "NOT_FOUND");
  ExpectOneLineError(Cli({"infer", "--shape=1,3,8,8"}), "INVALID_ARGUMENT");
  ProcessResult shape = Cli({"infer", "--shape=1,32,x,8"});
  ExpectOneLineError(shape, "--shape");
  EXPECT_EQ(shape.exit_code, 2);
  ExpectOneLineError(Cli({"infer"}), "exactly one of --input");
  ExpectOneLineError(Cli({"infer", "--shape=1,32,8,8", "--input=x.npy"}), "exactly one of");
  ExpectOneLineError(Cli({"infer", "--input=/nonexistent/x.npy"}), "/nonexistent/x.npy");
  ExpectOneLineError(Cli({"bench", "--shape=1,32,8,8", "--model=no_such_model"}), "NOT_FOUND");
  ExpectOneLineError(Cli({"bench", "--shape=1,32,8,8", "--concurrency=0"}), "--concurrency");
  ExpectOneLineError(Cli({"bench", "--shape=1,32,8,8", "--arrival=bursty", "--rate=5"}),
                     "--arrival");
  ExpectOneLineError(Cli({"bench", "--shape=1,32,8,8", "--metrics_url=ftp://x"}), "http://");
  ExpectOneLineError(Cli({"health", "--timeout_ms=0"}), "--timeout_ms");
  ExpectOneLineError(Cli({"health", "--tls_ca=/some/ca.pem"}), "--tls");

  // Nothing listens on this port: fail fast, not after the deadline.
  const std::string nowhere = absl::StrCat("--server=127.0.0.1:", testing::FreePort().value());
  for (const char* command : {"health", "metadata", "infer", "bench"}) {
    ProcessResult r = testing::RunProcess(
        {testing::RequiredEnv("SEPCONV_CLIENT_BIN"), command, "--shape=1,32,8,8", nowhere},
        absl::Seconds(20));
    ExpectOneLineError(r, "UNAVAILABLE");
    EXPECT_LT(r.elapsed, absl::Seconds(10)) << command;
  }
}

double ServerRequests(const std::string& url) {
  absl::StatusOr<ServerCounters> c = ScrapeCounters(url, "sepconv", "", absl::Seconds(5));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? c->requests : -1;
}

TEST_F(CliTest, BenchCountsWhatTheServerCounts) {
  const std::string csv = Temp("bench.csv"), json = Temp("bench.json");
  const double before = ServerRequests(server_->metrics_url());
  ProcessResult r =
      Cli({"bench", "--shape=1,32,16,16", "--concurrency=1,4", "--warmup_ms=100", "--window_ms=300",
           "--max_windows=4", absl::StrCat("--metrics_url=", server_->metrics_url()),
           absl::StrCat("--csv=", csv), absl::StrCat("--json=", json)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("concurrency"));
  EXPECT_THAT(r.out, HasSubstr("p99 ms"));
  const double after = ServerRequests(server_->metrics_url());

  // Parse both files with Python's own csv and json and check them.
  ProcessResult parsed = testing::RunProcess(
      {testing::RequiredEnv("SEPCONV_PYTHON"), "-c",
       "import csv, json, sys\n"
       "rows = list(csv.DictReader(open(sys.argv[1])))\n"
       "steps = json.load(open(sys.argv[2]))['steps']\n"
       "assert len(rows) == len(steps) == 2, (rows, steps)\n"
       "total = 0\n"
       "for r, s, c in zip(rows, steps, (1, 4)):\n"
       "    assert s['mode'] == 'concurrency' and s['load'] == c == float(r['load'])\n"
       "    assert int(r['requests']) == s['requests'] and s['measured'] > 0\n"
       "    assert int(r['error_count']) == 0 and s['errors'] == {}, s['errors']\n"
       "    l = s['latency_ms']\n"
       "    assert 0 < l['p50'] <= l['p90'] <= l['p95'] <= l['p99'] <= l['max'], l\n"
       "    assert float(r['p50_ms']) <= float(r['p99_ms']) <= float(r['max_ms'])\n"
       "    assert s['infer_per_sec'] > 0 and s['samples_per_sec'] == s['infer_per_sec']\n"
       "    assert s['server']['requests'] == s['requests'], (s['server'], s['requests'])\n"
       "    assert s['server']['compute_ms'] > 0 and s['server']['batch'] >= 1\n"
       "    total += s['requests']\n"
       "print(total)\n",
       csv, json},
      absl::Seconds(60));
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  int64_t total = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(parsed.out), &total)) << parsed.out;
  // How many depends on the machine's speed; equality with the server's count does not.
  EXPECT_GT(total, 2);
  // The bench's one probe request precedes its steps and is counted by the server.
  EXPECT_EQ(after - before, total + 1);
  std::remove(csv.c_str());
  std::remove(json.c_str());
}

TEST_F(CliTest, BenchOpenLoopHoldsTheRate) {
  const std::string json = Temp("rate.json");
  ProcessResult r =
      Cli({"bench", "--shape=1,32,8,8", "--rate=40", "--arrival=constant", "--warmup_ms=200",
           "--window_ms=2000", "--max_windows=3", absl::StrCat("--json=", json)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ProcessResult parsed = testing::RunProcess({testing::RequiredEnv("SEPCONV_PYTHON"), "-c",
                                              "import json, sys\n"
                                              "s = json.load(open(sys.argv[1]))['steps'][0]\n"
                                              "assert s['mode'] == 'rate' and s['load'] == 40, s\n"
                                              // 80 requests a window: a stall of a loaded
                                              // machine moves some across a window's edge,
                                              // a generator that ignores the rate is far off.
                                              "assert 20 <= s['infer_per_sec'] <= 60, s\n"
                                              "assert s['errors'] == {}, s\n",
                                              json},
                                             absl::Seconds(60));
  EXPECT_EQ(parsed.exit_code, 0) << parsed.err;
  ProcessResult poisson =
      Cli({"bench", "--shape=1,32,8,8", "--rate=40", "--arrival=poisson", "--warmup_ms=100",
           "--window_ms=300", "--max_windows=2", "--seed=9"});
  EXPECT_EQ(poisson.exit_code, 0) << poisson.err;
  EXPECT_THAT(poisson.out, HasSubstr("rate"));
  std::remove(json.c_str());
}

TEST_F(CliTest, PlotNeedsGnuplotAndSaysSo) {
  const std::string png = Temp("plot.png");
  ProcessResult missing =
      Cli({"bench", "--shape=1,32,8,8", "--concurrency=1", absl::StrCat("--plot=", png)},
          {"PATH=/nonexistent"});
  ExpectOneLineError(missing, "gnuplot");
  EXPECT_LT(missing.elapsed, absl::Seconds(5));

  ProcessResult unwritable =
      Cli({"bench", "--shape=1,32,8,8", "--concurrency=1", "--plot=/nonexistent/dir/p.png"});
  ExpectOneLineError(unwritable, "cannot write '/nonexistent/dir/p.png'");
  EXPECT_LT(unwritable.elapsed, absl::Seconds(5));

  ProcessResult r = Cli({"bench", "--shape=1,32,8,8", "--concurrency=1,2", "--warmup_ms=100",
                         "--window_ms=200", "--max_windows=2", absl::StrCat("--plot=", png)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(png, std::ios::binary);
  std::string magic(8, '\0');
  in.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");
  std::remove(png.c_str());
}

}  // namespace
}  // namespace sepconv::client
