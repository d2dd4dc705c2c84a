// sepconv-client's Triton subcommands (config, stats, index, load, unload)
// against the real sepconv-server binary: one in explicit model control mode
// over a repository of two config-described models, and one default server
// (built-in model, mode none) where load and unload are refused as Triton
// refuses them. `config` is what perf_analyzer asks first.

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/child_process.h"
#include "tests/testing/server_process.h"

namespace sepconv::client {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ProcessResult;

ProcessResult Cli(const testing::ServerProcess& server, std::vector<std::string> args) {
  args.insert(args.begin(), testing::RequiredEnv("SEPCONV_CLIENT_BIN"));
  args.push_back(absl::StrCat("--server=", server.target()));
  return testing::RunProcess(args, absl::Seconds(60), {});
}

void ExpectOneLineError(const ProcessResult& r, const std::string& needle) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(needle));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

class ControlCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::path(::testing::TempDir()) / "control_cli_repo");
    fs::remove_all(*root_);
    for (const char* name : {"a", "b"}) {
      fs::create_directories(*root_ / name);
      std::ofstream(*root_ / name / "config.pbtxt")
          << "max_batch_size: 4\n"
             "dynamic_batching { max_queue_delay_microseconds: 200 }\n"
             "sepconv { seed: 5 layers { in_channels: 32 out_channels: 24 } }\n";
    }
    absl::StatusOr<std::unique_ptr<testing::ServerProcess>> s =
        testing::ServerProcess::Start(testing::RequiredEnv("SEPCONV_SERVER_BIN"),
                                      {absl::StrCat("--model_repository=", root_->string()),
                                       "--model_control_mode=explicit", "--load_model=a"});
    ASSERT_TRUE(s.ok()) << s.status();
    explicit_ = s->release();
    s = testing::ServerProcess::Start(testing::RequiredEnv("SEPCONV_SERVER_BIN"));
    ASSERT_TRUE(s.ok()) << s.status();
    default_ = s->release();
  }
  static void TearDownTestSuite() {
    delete explicit_;
    delete default_;
    explicit_ = default_ = nullptr;
    fs::remove_all(*root_);
    delete root_;
  }
  void SetUp() override {
    ASSERT_NE(explicit_, nullptr);
    ASSERT_NE(default_, nullptr);
  }

  static fs::path* root_;
  static testing::ServerProcess* explicit_;
  static testing::ServerProcess* default_;
};

fs::path* ControlCliTest::root_ = nullptr;
testing::ServerProcess* ControlCliTest::explicit_ = nullptr;
testing::ServerProcess* ControlCliTest::default_ = nullptr;

TEST_F(ControlCliTest, HelpListsTheNewCommands) {
  ProcessResult none = Cli(*default_, {"--help"});
  EXPECT_EQ(none.exit_code, 0);
  for (const char* command : {"config", "stats", "index", "load", "unload"}) {
    EXPECT_THAT(none.out, HasSubstr(absl::StrCat("  ", command, " "))) << command;
  }
  ProcessResult index = Cli(*default_, {"index", "--help"});
  EXPECT_EQ(index.exit_code, 0);
  EXPECT_THAT(index.out, HasSubstr("--ready"));
  EXPECT_THAT(index.out, Not(HasSubstr("--concurrency")));
  ProcessResult load = Cli(*default_, {"load", "--help"});
  EXPECT_THAT(load.out, HasSubstr("explicit"));
  EXPECT_THAT(load.out, HasSubstr("--model"));
}

TEST_F(ControlCliTest, ConfigAsPerfAnalyzerAsksFirst) {
  ProcessResult builtin = Cli(*default_, {"config"});
  EXPECT_EQ(builtin.exit_code, 0) << builtin.err;
  EXPECT_THAT(builtin.out, HasSubstr("name: \"sepconv\""));
  EXPECT_THAT(builtin.out, HasSubstr("max_batch_size: 8"));
  EXPECT_THAT(builtin.out, HasSubstr("dims: 32"));
  EXPECT_THAT(builtin.out, HasSubstr("dynamic_batching {"));
  EXPECT_THAT(builtin.out, HasSubstr("kind: KIND_CPU"));
  ProcessResult repo = Cli(*explicit_, {"config", "--model=a"});
  EXPECT_EQ(repo.exit_code, 0) << repo.err;
  EXPECT_THAT(repo.out, HasSubstr("name: \"a\""));
  EXPECT_THAT(repo.out, HasSubstr("max_queue_delay_microseconds: 200"));
  EXPECT_THAT(repo.out, HasSubstr("dims: 24"));
  ExpectOneLineError(Cli(*default_, {"config", "--model=nope"}), "NOT_FOUND");
}

TEST_F(ControlCliTest, StatsCountTheInferences) {
  ProcessResult infer = Cli(*default_, {"infer", "--shape=3,32,8,8"});
  ASSERT_EQ(infer.exit_code, 0) << infer.err;
  ProcessResult stats = Cli(*default_, {"stats"});
  EXPECT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_THAT(stats.out, HasSubstr("model: sepconv version 1"));
  EXPECT_THAT(stats.out, HasSubstr("inference_count: 3"));
  EXPECT_THAT(stats.out, HasSubstr("success (count / mean): 1 / "));
  EXPECT_THAT(stats.out, Not(HasSubstr("last_inference: never")));
  ExpectOneLineError(Cli(*default_, {"stats", "--model=nope"}), "NOT_FOUND");
}

TEST_F(ControlCliTest, IndexLoadAndUnloadInExplicitMode) {
  ProcessResult index = Cli(*explicit_, {"index"});
  EXPECT_EQ(index.exit_code, 0) << index.err;
  EXPECT_THAT(index.out, HasSubstr("READY"));
  EXPECT_THAT(index.out, HasSubstr("unloaded"));  // b
  EXPECT_THAT(Cli(*explicit_, {"index", "--ready"}).out, Not(HasSubstr("b ")));

  ProcessResult load = Cli(*explicit_, {"load", "--model=b"});
  EXPECT_EQ(load.exit_code, 0) << load.err;
  EXPECT_EQ(load.out, "loaded b\n");
  EXPECT_THAT(Cli(*explicit_, {"index", "--ready"}).out, HasSubstr("b "));
  EXPECT_EQ(Cli(*explicit_, {"infer", "--model=b", "--shape=1,32,5,5"}).exit_code, 0);

  ProcessResult unload = Cli(*explicit_, {"unload", "--model=b"});
  EXPECT_EQ(unload.exit_code, 0) << unload.err;
  EXPECT_EQ(unload.out, "unloaded b\n");
  EXPECT_THAT(Cli(*explicit_, {"index", "--ready"}).out, Not(HasSubstr("b ")));
  ExpectOneLineError(Cli(*explicit_, {"infer", "--model=b", "--shape=1,32,5,5"}), "NOT_FOUND");
  ExpectOneLineError(Cli(*explicit_, {"load", "--model=nope"}), "NOT_FOUND");
}

TEST_F(ControlCliTest, LoadOutsideExplicitModeIsRefusedAsTritonDoes) {
  ExpectOneLineError(Cli(*default_, {"load", "--model=sepconv"}),
                     "UNAVAILABLE: explicit model load / unload is not allowed if polling is "
                     "enabled");
  ExpectOneLineError(Cli(*default_, {"unload", "--model=sepconv"}), "UNAVAILABLE");
  ProcessResult index = Cli(*default_, {"index"});
  EXPECT_EQ(index.exit_code, 0) << index.err;
  EXPECT_THAT(index.out, HasSubstr("sepconv"));
  EXPECT_THAT(index.out, HasSubstr("READY"));
}

}  // namespace
}  // namespace sepconv::client
