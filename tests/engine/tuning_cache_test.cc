// The tuning cache's file: what is written is read back for its machine
// only, other machines' lines survive a write, a key has one line, and a
// malformed file or a folder that takes no files is an error that says
// where.

#include "engine/internal/tuning_cache.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_tree.h"

namespace sepconv {
namespace internal {
namespace {

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The file's lines that are not comments.
std::vector<std::string> DataLines(const std::filesystem::path& path) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(ReadAll(path), '\n', absl::SkipEmpty())) {
    if (line.front() != '#') lines.emplace_back(line);
  }
  return lines;
}

class TuningCacheTest : public ::testing::Test {
 protected:
  testing::TempTree tree_{"tuning_cache_"};
  const std::string path_ = (tree_.path() / "cache.tsv").string();
};

TEST_F(TuningCacheTest, NoFileYetHoldsNothingAndCreatesNone) {
  absl::StatusOr<std::unique_ptr<TuningCache>> cache = TuningCache::Open(path_, "m1");
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_TRUE((*cache)->entries().empty());
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tree_.path()), {}), 0);
}

TEST_F(TuningCacheTest, WhatIsPutIsReadBackForItsMachineOnly) {
  const PlanChoice fused(ActivationLayout::kFusedNchw, int64_t{128} << 10, 2, true);
  const PlanChoice blocked(ActivationLayout::kBlocked16, 0, 1, false);
  {
    auto cache = TuningCache::Open(path_, "m1").value();
    ASSERT_TRUE(cache->Put("32x56x56|t2|a", fused).ok());
  }
  {
    auto other = TuningCache::Open(path_, "m2").value();
    EXPECT_TRUE(other->entries().empty());
    ASSERT_TRUE(other->Put("32x56x56|t2|a", blocked).ok());
  }
  auto cache = TuningCache::Open(path_, "m1").value();
  ASSERT_EQ(cache->entries().size(), 1u);
  EXPECT_EQ(cache->entries()[0].key, "32x56x56|t2|a");
  EXPECT_TRUE(cache->entries()[0].choice == fused);
  auto other = TuningCache::Open(path_, "m2").value();
  ASSERT_EQ(other->entries().size(), 1u);
  EXPECT_TRUE(other->entries()[0].choice == blocked);
  EXPECT_EQ(DataLines(path_).size(), 2u) << ReadAll(path_);
  EXPECT_TRUE(absl::StartsWith(ReadAll(path_), "#")) << "a comment says what the file is";
}

TEST_F(TuningCacheTest, APutReplacesItsKeysLineAndKeepsLinesWrittenSinceOpen) {
  auto first = TuningCache::Open(path_, "m1").value();
  auto second = TuningCache::Open(path_, "m1").value();  // another process, opened at once
  ASSERT_TRUE(first->Put("k1", PlanChoice(ActivationLayout::kNhwc, 0, 2)).ok());
  ASSERT_TRUE(second->Put("k2", PlanChoice(ActivationLayout::kBlocked8, 0, 2)).ok());
  ASSERT_TRUE(second->Put("k1", PlanChoice(ActivationLayout::kNhwcDirect, 0, 1)).ok());
  auto read = TuningCache::Open(path_, "m1").value();
  ASSERT_EQ(read->entries().size(), 2u) << ReadAll(path_);
  for (const TuningCacheEntry& entry : read->entries()) {
    if (entry.key == "k1") {
      EXPECT_TRUE(entry.choice == PlanChoice(ActivationLayout::kNhwcDirect, 0, 1));
    } else {
      EXPECT_EQ(entry.key, "k2");
      EXPECT_TRUE(entry.choice == PlanChoice(ActivationLayout::kBlocked8, 0, 2));
    }
  }
  // Nothing left beside it from the writes.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tree_.path()), {}), 1);
}

TEST_F(TuningCacheTest, CommentsAndBlankLinesAreSkipped) {
  tree_.Write("cache.tsv", "# a comment\n\n  \nm1\tk\tnChw16c\t0\t2\t0\n# another\n");
  auto cache = TuningCache::Open(path_, "m1").value();
  ASSERT_EQ(cache->entries().size(), 1u);
  EXPECT_TRUE(cache->entries()[0].choice == PlanChoice(ActivationLayout::kBlocked16, 0, 2));
}

TEST_F(TuningCacheTest, AMalformedLineIsAnErrorNamingIt) {
  const std::string good = "m1\tk\tfused\t131072\t2\t1\n";
  for (const char* bad : {"m1\tk\tfused\t131072\t2\n",        // a field short
                          "m1\tk\tnChw4c\t0\t2\t0\n",         // no such layout
                          "m1\tk\tauto\t0\t2\t0\n",           // not a choice
                          "m1\tk\tfused\t-1\t2\t0\n",         // negative tile
                          "m1\tk\tfused\t131072\t0\t0\n",     // no threads
                          "m1\tk\tfused\t131072\tmany\t0\n",  // not a number
                          "m1\tk\tfused\t131072\t2\tyes\n",   // not 0 or 1
                          "\tk\tfused\t131072\t2\t0\n"}) {    // no machine
    SCOPED_TRACE(bad);
    tree_.Write("cache.tsv", good + bad);
    absl::StatusOr<std::unique_ptr<TuningCache>> cache = TuningCache::Open(path_, "m1");
    ASSERT_FALSE(cache.ok());
    EXPECT_EQ(cache.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(cache.status().message(), path_ + " line 2:")) << cache.status();
  }
}

TEST_F(TuningCacheTest, AFolderThatTakesNoFilesIsAnError) {
  const std::string path = (tree_.path() / "missing" / "cache.tsv").string();
  absl::StatusOr<std::unique_ptr<TuningCache>> cache = TuningCache::Open(path, "m1");
  ASSERT_FALSE(cache.ok());
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(cache.status().message(), path)) << cache.status();
}

// The folder may be shared (/tmp): a link planted where the rewrite's
// temporary file goes is replaced, not followed.
TEST_F(TuningCacheTest, ARewriteFollowsNoLinkPlantedForItsTemporaryFile) {
  tree_.Write("victim", "keep me\n");
  const std::string temporary = path_ + ".tmp." + std::to_string(getpid());
  std::filesystem::create_symlink(tree_.path() / "victim", temporary);
  auto cache = TuningCache::Open(path_, "m1").value();
  std::filesystem::create_symlink(tree_.path() / "victim", temporary);
  ASSERT_TRUE(cache->Put("k", PlanChoice(ActivationLayout::kNhwc, 0, 2)).ok());
  EXPECT_EQ(ReadAll(tree_.path() / "victim"), "keep me\n");
  EXPECT_EQ(DataLines(path_).size(), 1u);
  EXPECT_FALSE(std::filesystem::is_symlink(path_));
}

TEST(MachineFingerprintTest, NamesTheIsaAndFitsInAField) {
  const std::string machine = MachineFingerprint();
  EXPECT_TRUE(absl::StrContains(machine, EffectiveIsaName())) << machine;
  EXPECT_TRUE(absl::StrContains(machine, "oneDNN ")) << machine;
  // A tuner that chooses another way does not take the old way's lines.
  EXPECT_TRUE(absl::StrContains(machine, absl::StrCat(", tuner ", kTunerRevision))) << machine;
  EXPECT_FALSE(absl::StrContains(machine, "\t")) << machine;
  EXPECT_FALSE(absl::StrContains(machine, "\n")) << machine;
  EXPECT_EQ(machine, MachineFingerprint());
}

}  // namespace
}  // namespace internal
}  // namespace sepconv
