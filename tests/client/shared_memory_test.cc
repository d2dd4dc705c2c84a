// SharedMemoryRegion: POSIX shared-memory objects created, mapped, sized,
// refused on a clash or a bad key, and gone (name and mapping) on destruction.

#include "client/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "gtest/gtest.h"

namespace sepconv::client {
namespace {

// A key no other test (or test process) uses.
std::string UniqueKey(const std::string& tag) {
  static int next = 0;
  return absl::StrCat("/sepconv_shm_test_", getpid(), "_", next++, "_", tag);
}

bool Exists(const std::string& key) {
  const int fd = shm_open(key.c_str(), O_RDONLY, 0);
  if (fd < 0) return false;
  close(fd);
  return true;
}

TEST(SharedMemoryRegionTest, CreatesAZeroedObjectOfTheSizeMappedReadWrite) {
  const std::string key = UniqueKey("create");
  absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create(key, 10000);
  ASSERT_TRUE(region.ok()) << region.status();
  EXPECT_EQ(region->key(), key);
  EXPECT_EQ(region->byte_size(), 10000);
  ASSERT_NE(region->data(), nullptr);
  for (int64_t i = 0; i < region->byte_size(); ++i) ASSERT_EQ(region->data()[i], 0) << i;

  // Another mapping of the object (what a server does) sees the writes.
  std::memcpy(region->data() + 9990, "sepconv", 7);
  const int fd = shm_open(key.c_str(), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 10000);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  void* other = mmap(nullptr, 10000, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  ASSERT_NE(other, MAP_FAILED);
  EXPECT_EQ(std::string(static_cast<const char*>(other) + 9990, 7), "sepconv");
  munmap(other, 10000);
}

TEST(SharedMemoryRegionTest, DestructionUnlinksTheObject) {
  const std::string key = UniqueKey("unlink");
  {
    absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create(key, 4096);
    ASSERT_TRUE(region.ok()) << region.status();
    EXPECT_TRUE(Exists(key));
  }
  EXPECT_FALSE(Exists(key));
}

TEST(SharedMemoryRegionTest, MovingHandsOverOwnership) {
  const std::string key = UniqueKey("move");
  absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create(key, 100);
  ASSERT_TRUE(region.ok()) << region.status();
  char* data = region->data();
  SharedMemoryRegion moved = *std::move(region);
  EXPECT_EQ(moved.key(), key);
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(moved.byte_size(), 100);
  {
    // The moved-from one owns nothing: its destruction leaves the object.
    SharedMemoryRegion gone = std::move(moved);
    EXPECT_EQ(moved.data(), nullptr);  // NOLINT(bugprone-use-after-move): checked on purpose
    EXPECT_TRUE(moved.key().empty());
    EXPECT_TRUE(Exists(key));
  }
  EXPECT_FALSE(Exists(key));

  // Assigning over a region releases the one it held.
  const std::string a = UniqueKey("assign_a"), b = UniqueKey("assign_b");
  SharedMemoryRegion first = *SharedMemoryRegion::Create(a, 10);
  first = *SharedMemoryRegion::Create(b, 20);
  EXPECT_FALSE(Exists(a));
  EXPECT_TRUE(Exists(b));
  EXPECT_EQ(first.key(), b);
  EXPECT_EQ(first.byte_size(), 20);
}

TEST(SharedMemoryRegionTest, AClashIsAlreadyExistsAndLeavesTheOtherObjectAlone) {
  const std::string key = UniqueKey("clash");
  absl::StatusOr<SharedMemoryRegion> first = SharedMemoryRegion::Create(key, 64);
  ASSERT_TRUE(first.ok()) << first.status();
  first->data()[0] = 42;
  absl::StatusOr<SharedMemoryRegion> second = SharedMemoryRegion::Create(key, 128);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists) << second.status();
  EXPECT_NE(second.status().message().find(key), std::string::npos) << second.status();
  // Neither truncated nor unlinked by the failed attempt.
  EXPECT_TRUE(Exists(key));
  EXPECT_EQ(first->data()[0], 42);
  struct stat st {};
  const int fd = shm_open(key.c_str(), O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  close(fd);
  EXPECT_EQ(st.st_size, 64);
}

TEST(SharedMemoryRegionTest, KeysThatAreNotPlainNamesAreRefused) {
  for (const std::string& key : std::vector<std::string>{
           "", "/", "noslash", "/a/b", "//a", "/.", "/..", "/../etc", "/a b", "/a\nb", "/é",
           std::string("/a\0b", 4), "/" + std::string(201, 'k')}) {
    absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create(key, 16);
    EXPECT_EQ(region.status().code(), absl::StatusCode::kInvalidArgument) << "'" << key << "'";
    EXPECT_FALSE(SharedMemoryRegion::ValidateKey(key).ok()) << "'" << key << "'";
  }
  for (const std::string& key : std::vector<std::string>{"/a", "/sepconv_client_1_in", "/A.b-c_9",
                                                         "/..a", "/" + std::string(200, 'k')}) {
    EXPECT_TRUE(SharedMemoryRegion::ValidateKey(key).ok()) << key;
  }
}

TEST(SharedMemoryRegionTest, SizeMustBePositive) {
  for (int64_t size : {int64_t{0}, int64_t{-1}}) {
    const std::string key = UniqueKey("size");
    absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create(key, size);
    EXPECT_EQ(region.status().code(), absl::StatusCode::kInvalidArgument) << size;
    EXPECT_FALSE(Exists(key));
  }
}

TEST(SharedMemoryRegionTest, MoreThanTheMachineHasIsResourceExhaustedAndLeavesNothing) {
  const std::string key = UniqueKey("huge");
  // 1 PiB: no /dev/shm holds it.
  absl::StatusOr<SharedMemoryRegion> region = SharedMemoryRegion::Create(key, int64_t{1} << 50);
  EXPECT_EQ(region.status().code(), absl::StatusCode::kResourceExhausted) << region.status();
  EXPECT_FALSE(Exists(key));
}

// The library's own checks of shared-memory options, before anything is sent
// (nothing listens at the target).
TEST(SharedMemoryOptionsTest, InconsistentPlacementsAreRefusedBeforeSending) {
  ClientOptions no_retries;
  no_retries.max_attempts = 1;
  std::unique_ptr<Client> client = *Client::Create("127.0.0.1:1", no_retries);
  const Tensor shape_only{{1, 32, 4, 4}, {}};
  const int64_t bytes = 32 * 4 * 4 * 4;
  std::vector<char> view(4096);
  auto valid = [&] {
    InferOptions o;
    o.input_shared_memory = SharedMemoryPlacement{"in", 0, bytes};
    o.output_shared_memory = SharedMemoryPlacement{"out", 0, 4096};
    o.output_view = absl::MakeConstSpan(view);
    return o;
  };
  struct Case {
    const char* what;
    std::function<void(InferOptions&, Tensor&)> change;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"typed", [](InferOptions& o, Tensor&) { o.typed = true; }, "typed"},
      {"input data", [](InferOptions&, Tensor& t) { t.data.assign(512, 1.0f); }, "empty"},
      {"input size", [](InferOptions& o, Tensor&) { o.input_shared_memory->byte_size += 4; },
       "2048 bytes"},
      {"no region", [](InferOptions& o, Tensor&) { o.output_shared_memory->region.clear(); },
       "region name"},
      {"negative offset", [](InferOptions& o, Tensor&) { o.input_shared_memory->offset = -4; },
       "offset >= 0"},
      {"unaligned output", [](InferOptions& o, Tensor&) { o.output_shared_memory->offset = 2; },
       "multiple of 4"},
      {"small view",
       [&](InferOptions& o, Tensor&) { o.output_view = absl::MakeConstSpan(view.data(), 10); },
       "output_view"},
  };
  for (const Case& c : cases) {
    InferOptions options = valid();
    Tensor input = shape_only;
    c.change(options, input);
    absl::StatusOr<Tensor> out = client->Infer("sepconv", "", input, options);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_NE(out.status().message().find(c.needle), std::string::npos)
        << c.what << ": " << out.status();
    if (std::string(c.what) == "small view") continue;  // Prepare does not read it
    EXPECT_EQ(client->Prepare("sepconv", "", input, options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << c.what;
  }
  // The valid placements pass the checks and reach the (absent) server.
  absl::StatusOr<Tensor> sent = client->Infer("sepconv", "", shape_only, valid());
  EXPECT_EQ(sent.status().code(), absl::StatusCode::kUnavailable) << sent.status();
  EXPECT_TRUE(client->Prepare("sepconv", "", shape_only, valid()).ok());
}

}  // namespace
}  // namespace sepconv::client
