// The core's SharedMemoryRegistry against real POSIX shared-memory objects:
// keys that are not plain names, ranges past an object or a region (with
// overflowing numbers), names and limits, leases that read and write the
// client's bytes, overlap across regions of one object, Unregister waiting
// for a lease and leaving nothing mapped, and an object truncated before or
// while a lease uses it (the SIGBUS handler).

#include "server/core/shared_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shm_object.h"

namespace sepconv {
namespace {

using testing::MappingsOf;
using testing::ShmObject;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(SharedMemoryRegistryTest, RegisterStatusUnregister) {
  ShmObject object(8192);
  SharedMemoryRegistry regions;
  ASSERT_TRUE(regions.Register("b", object.key(), 4096, 4096).ok());
  ASSERT_TRUE(regions.Register("a", object.key(), 0, 100).ok());
  auto all = regions.Status("");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "a");
  EXPECT_EQ((*all)[0].byte_size, 100u);
  EXPECT_EQ((*all)[1].name, "b");
  EXPECT_EQ((*all)[1].key, object.key());
  EXPECT_EQ((*all)[1].offset, 4096u);
  EXPECT_EQ(regions.Status("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(MappingsOf(object.key()), 3);  // the test's own and the two regions

  EXPECT_TRUE(regions.Unregister("a").ok());
  EXPECT_EQ(regions.Status("a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(regions.Unregister("a").ok());  // unknown: nothing to do, as Triton
  EXPECT_TRUE(regions.Unregister("").ok());
  EXPECT_TRUE(regions.Status("")->empty());
  EXPECT_EQ(MappingsOf(object.key()), 1);
}

TEST(SharedMemoryRegistryTest, RefusesKeysThatAreNotPlainNames) {
  ShmObject object(4096);
  SharedMemoryRegistry regions;
  for (const std::string& key :
       {std::string(), std::string("/"), std::string("../etc/passwd"), std::string("/../x"),
        std::string("a/b"), std::string("/dev/shm/x"), std::string("."), std::string(".."),
        std::string("/.."), std::string(300, 'a'), std::string("x\0y", 3)}) {
    absl::Status s = regions.Register("r", key, 0, 4);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "'" << key << "': " << s;
  }
  EXPECT_EQ(regions.Register("r", "/sepconv_no_such_object", 0, 4).code(),
            absl::StatusCode::kNotFound);

  // A symlink under /dev/shm is not followed; a directory is no object.
  const std::string link = "/sepconv_test_link_" + std::to_string(getpid());
  ASSERT_EQ(symlink("/etc/hostname", ("/dev/shm" + link).c_str()), 0);
  EXPECT_FALSE(regions.Register("r", link, 0, 4).ok());
  unlink(("/dev/shm" + link).c_str());
  const std::string dir = "/sepconv_test_dir_" + std::to_string(getpid());
  ASSERT_EQ(mkdir(("/dev/shm" + dir).c_str(), 0700), 0);
  EXPECT_FALSE(regions.Register("r", dir, 0, 4).ok());
  rmdir(("/dev/shm" + dir).c_str());
  EXPECT_TRUE(regions.Status("")->empty());

  // "name" without the slash is the same object as "/name".
  EXPECT_TRUE(regions.Register("r", object.key().substr(1), 0, 4).ok());
}

TEST(SharedMemoryRegistryTest, RefusesRangesPastTheObject) {
  ShmObject object(4096);
  SharedMemoryOptions no_byte_limit;
  no_byte_limit.max_bytes = kMax;  // the range check, not the limit, refuses
  SharedMemoryRegistry regions(no_byte_limit);
  const std::vector<std::pair<uint64_t, uint64_t>> bad = {
      {0, 4097}, {4096, 1}, {4095, 2}, {kMax, 2}, {2, kMax}, {kMax, kMax}, {0, 0}};
  for (const auto& [offset, size] : bad) {
    EXPECT_EQ(regions.Register("r", object.key(), offset, size).code(),
              absl::StatusCode::kInvalidArgument)
        << offset << " + " << size;
  }
  EXPECT_TRUE(regions.Register("r", object.key(), 4000, 96).ok());
}

TEST(SharedMemoryRegistryTest, NamesAndLimits) {
  ShmObject object(16384);
  SharedMemoryOptions options;
  options.max_regions = 2;
  options.max_bytes = 8192;
  SharedMemoryRegistry regions(options);
  EXPECT_EQ(regions.Register("", object.key(), 0, 4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(regions.Register(std::string(256, 'n'), object.key(), 0, 4).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(regions.Register("a", object.key(), 0, 4096).ok());
  EXPECT_EQ(regions.Register("a", object.key(), 0, 4).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(regions.Register("b", object.key(), 0, 4097).code(),
            absl::StatusCode::kResourceExhausted);  // bytes
  ASSERT_TRUE(regions.Register("b", object.key(), 0, 4096).ok());
  EXPECT_EQ(regions.Register("c", object.key(), 0, 1).code(),
            absl::StatusCode::kResourceExhausted);  // regions
  ASSERT_TRUE(regions.Unregister("a").ok());
  EXPECT_TRUE(regions.Register("c", object.key(), 0, 4096).ok());

  SharedMemoryOptions off;
  off.max_regions = 0;
  SharedMemoryRegistry none(off);
  EXPECT_FALSE(none.enabled());
  EXPECT_EQ(none.Register("a", object.key(), 0, 4).code(), absl::StatusCode::kUnavailable);
}

TEST(SharedMemoryRegistryTest, LeasesCheckTheirRangeAndSeeTheClientsBytes) {
  ShmObject object(8192);
  SharedMemoryRegistry regions;
  ASSERT_TRUE(regions.Register("r", object.key(), 1000, 2048).ok());
  const auto code = [&](SharedMemoryRef ref, uint64_t bytes, bool at_least) {
    return regions.Acquire(ref, bytes, at_least, "input 'input'").status().code();
  };
  EXPECT_EQ(code({"nope", 0, 16}, 16, false), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"r", 2040, 16}, 16, false), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"r", kMax, 16}, 16, false), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"r", 16, kMax}, 16, false), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({"r", 0, 32}, 16, false), absl::StatusCode::kInvalidArgument);  // exact size
  EXPECT_EQ(code({"r", 0, 8}, 16, true), absl::StatusCode::kInvalidArgument);    // too small
  EXPECT_EQ(code({"r", 0, 32}, 16, true), absl::StatusCode::kOk);                // room to spare
  EXPECT_EQ(code({"r", 2032, 16}, 16, false), absl::StatusCode::kOk);            // the last bytes

  object.Write(1000 + 64, {1.5f, -2.0f});
  auto lease = regions.Acquire({"r", 64, 8}, 8, false, "input 'input'");
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_EQ(lease->byte_size(), 8u);
  float read[2];
  std::memcpy(read, lease->data(), sizeof(read));
  EXPECT_EQ(read[0], 1.5f);
  EXPECT_EQ(read[1], -2.0f);
  const float written = 7.25f;
  std::memcpy(lease->data() + 4, &written, sizeof(written));
  EXPECT_EQ(object.Read(1000 + 68, 1)[0], 7.25f);
  EXPECT_TRUE(lease->CheckIntact().ok());
}

TEST(SharedMemoryRegistryTest, OverlapIsFoundAcrossRegionsOfOneObject) {
  ShmObject object(8192);
  ShmObject other(8192);
  SharedMemoryRegistry regions;
  ASSERT_TRUE(regions.Register("a", object.key(), 0, 4096).ok());
  ASSERT_TRUE(regions.Register("b", object.key(), 2048, 4096).ok());
  ASSERT_TRUE(regions.Register("c", other.key(), 0, 4096).ok());
  auto lease = [&](const std::string& region, uint64_t offset, uint64_t size) {
    auto acquired = regions.Acquire({region, offset, size}, size, false, "t");
    EXPECT_TRUE(acquired.ok()) << acquired.status();
    return *std::move(acquired);
  };
  const SharedMemoryLease a = lease("a", 2048, 100);  // object bytes [2048, 2148)
  EXPECT_TRUE(a.Overlaps(lease("b", 0, 10)));         // [2048, 2058)
  EXPECT_TRUE(a.Overlaps(lease("b", 99, 10)));        // [2147, 2157)
  EXPECT_FALSE(a.Overlaps(lease("b", 100, 10)));      // [2148, 2158)
  EXPECT_FALSE(a.Overlaps(lease("a", 0, 2048)));      // [0, 2048)
  EXPECT_FALSE(a.Overlaps(lease("c", 2048, 100)));    // another object
  EXPECT_FALSE(a.Overlaps(SharedMemoryLease()));
}

TEST(SharedMemoryRegistryTest, UnregisterWaitsForLeasesThenUnmaps) {
  ShmObject object(4096);
  SharedMemoryRegistry regions;
  ASSERT_TRUE(regions.Register("r", object.key(), 0, 4096).ok());
  auto lease = regions.Acquire({"r", 0, 16}, 16, false, "t");
  ASSERT_TRUE(lease.ok());
  absl::Notification unregistered;
  std::thread unregister([&] {
    EXPECT_TRUE(regions.Unregister("r").ok());
    unregistered.Notify();
  });
  // The region leaves the table first: new requests no longer find it.
  for (int i = 0; i < 2000 && regions.Status("r").ok(); ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(regions.Status("r").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(regions.Acquire({"r", 0, 16}, 16, false, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
  // While the lease lives, the mapping stays and Unregister has not returned.
  EXPECT_EQ(MappingsOf(object.key()), 2);
  EXPECT_FALSE(unregistered.HasBeenNotified());
  lease->data()[0] = 1;  // still mapped: no fault
  *lease = SharedMemoryLease();
  unregister.join();
  EXPECT_EQ(MappingsOf(object.key()), 1);  // the test's own only
}

TEST(SharedMemoryRegistryTest, RegistryDestructionUnmapsEverything) {
  ShmObject object(4096);
  {
    SharedMemoryRegistry regions;
    ASSERT_TRUE(regions.Register("a", object.key(), 0, 4096).ok());
    ASSERT_TRUE(regions.Register("b", object.key(), 0, 16).ok());
    EXPECT_EQ(MappingsOf(object.key()), 3);
  }
  EXPECT_EQ(MappingsOf(object.key()), 1);
}

TEST(SharedMemoryRegistryTest, ObjectTruncatedBeforeUseIsRefused) {
  ShmObject object(8192);
  SharedMemoryRegistry regions;
  ASSERT_TRUE(regions.Register("r", object.key(), 0, 8192).ok());
  object.Truncate(4096);
  // Within what is left: fine. Past it: refused before anything touches it.
  EXPECT_TRUE(regions.Acquire({"r", 0, 4096}, 4096, false, "t").ok());
  auto refused = regions.Acquire({"r", 0, 8192}, 8192, false, "t");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("truncated"), std::string::npos);
}

TEST(SharedMemoryRegistryTest, ObjectTruncatedWhileLeasedDoesNotCrash) {
  ShmObject object(65536);
  SharedMemoryRegistry regions;
  ASSERT_TRUE(regions.Register("r", object.key(), 0, 65536).ok());
  auto lease = regions.Acquire({"r", 0, 65536}, 65536, false, "t");
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(lease->CheckIntact().ok());
  object.Truncate(0);
  // What the engine does with a lease: read the input, write the output.
  // Both touch pages past the object's end: SIGBUS, caught.
  volatile char* bytes = lease->data();
  EXPECT_EQ(bytes[100], 0);
  bytes[40000] = 7;
  EXPECT_EQ(bytes[40000], 7);
  EXPECT_EQ(lease->CheckIntact().code(), absl::StatusCode::kFailedPrecondition);
  // The region stays broken until registered again.
  EXPECT_EQ(regions.Acquire({"r", 0, 16}, 16, false, "t").status().code(),
            absl::StatusCode::kFailedPrecondition);
  *lease = SharedMemoryLease();
  ASSERT_TRUE(regions.Unregister("r").ok());
  EXPECT_EQ(MappingsOf(object.key()), 1);
}

TEST(SharedMemoryRegistryDeathTest, AnotherSigbusStillEndsTheProcess) {
  EXPECT_DEATH(
      {
        ShmObject object(8192);
        SharedMemoryRegistry regions;  // installs the handler
        if (!regions.Register("r", object.key(), 0, 4096).ok()) return;
        object.Truncate(0);
        shm_unlink(object.key().c_str());     // the child's object: gone with it
        volatile char* mine = object.data();  // the test's own mapping, not a region
        mine[5000] = 1;
      },
      "");
}

}  // namespace
}  // namespace sepconv
