#include "server/core/shared_memory.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace sepconv {
namespace {

constexpr size_t kMaxNameBytes = 255;

// The mappings the SIGBUS handler may repair: one slot per mapped region,
// read by the handler without locks (a slot is written only while no request
// uses its region: when mapping, before any lease, and when unmapping, after
// the last).
struct FaultSlot {
  std::atomic<bool> used{false};
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<bool> faulted{false};
};
constexpr int kFaultSlots = kMaxSharedMemoryRegions;
FaultSlot g_fault_slots[kFaultSlots];
struct sigaction g_previous_sigbus;
uintptr_t g_page_size = 4096;
std::once_flag g_sigbus_once;

// A fault on a registered mapping means its object shrank: map zero pages
// over the rest of the mapping (the access then completes) and mark it, so
// that the request fails instead of the process. Only async-signal-safe calls.
void OnSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
  for (FaultSlot& slot : g_fault_slots) {
    const uintptr_t begin = slot.begin.load(std::memory_order_acquire);
    if (begin == 0 || address < begin) continue;
    const uintptr_t end = slot.end.load(std::memory_order_acquire);
    if (address >= end) continue;
    const uintptr_t page = address & ~(g_page_size - 1);
    if (mmap(reinterpret_cast<void*>(page), end - page, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
      slot.faulted.store(true, std::memory_order_release);
      return;
    }
  }
  // Not ours: whoever handled SIGBUS before us, else the default (returning
  // re-runs the faulting access, which then ends the process).
  const struct sigaction& previous = g_previous_sigbus;
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(sig, info, context);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
}

void InstallSigbusHandler() {
  std::call_once(g_sigbus_once, [] {
    g_page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    struct sigaction action {};
    action.sa_sigaction = OnSigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &g_previous_sigbus);
  });
}

FaultSlot* ClaimFaultSlot(uintptr_t begin, uintptr_t end) {
  for (FaultSlot& slot : g_fault_slots) {
    bool expected = false;
    if (!slot.used.compare_exchange_strong(expected, true)) continue;
    slot.faulted.store(false);
    slot.end.store(end, std::memory_order_release);
    slot.begin.store(begin, std::memory_order_release);
    return &slot;
  }
  return nullptr;
}

void ReleaseFaultSlot(FaultSlot* slot) {
  slot->begin.store(0, std::memory_order_release);
  slot->end.store(0, std::memory_order_release);
  slot->used.store(false, std::memory_order_release);
}

// "/name" for a key "/name" or "name"; INVALID_ARGUMENT for anything that
// is not a plain name.
absl::StatusOr<std::string> ObjectName(const std::string& key) {
  absl::string_view name = key;
  absl::ConsumePrefix(&name, "/");
  if (name.empty() || name.size() > kMaxNameBytes || name == "." || name == ".." ||
      name.find('/') != absl::string_view::npos || name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared-memory key '", key,
                     "' is not a plain name: expected \"/name\" with no other '/', not \".\" "
                     "or \"..\", at most ",
                     kMaxNameBytes, " bytes"));
  }
  return absl::StrCat("/", name);
}

absl::Status ErrnoStatus(int error, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InvalidArgumentError(message);
  }
}

// [offset, offset + size) within `limit`, without overflow.
bool RangeFits(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

}  // namespace

namespace internal {

// One registered region: the object's descriptor and the mapping of the
// registered range, counted users (leases) and the fault slot.
class SharedMemoryRegion {
 public:
  static absl::StatusOr<std::shared_ptr<SharedMemoryRegion>> Map(SharedMemoryRegionInfo info) {
    absl::StatusOr<std::string> object = ObjectName(info.key);
    if (!object.ok()) return object.status();
    if (info.byte_size == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shared-memory region '", info.name, "' has byte_size 0"));
    }
    // shm_open opens below /dev/shm only, with O_NOFOLLOW.
    const int fd = shm_open(object->c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
      return ErrnoStatus(errno, absl::StrCat("cannot open shared-memory key '", info.key, "'"));
    }
    auto region = std::shared_ptr<SharedMemoryRegion>(new SharedMemoryRegion(std::move(info), fd));
    if (absl::Status mapped = region->MapRange(); !mapped.ok()) return mapped;
    return region;
  }

  ~SharedMemoryRegion() {
    Unmap();
    close(fd_);
  }

  const SharedMemoryRegionInfo& info() const { return info_; }
  char* base() const { return base_; }
  dev_t device() const { return device_; }
  ino_t inode() const { return inode_; }

  void Hold() {
    absl::MutexLock lock(&mu_);
    ++users_;
  }
  void Drop() {
    absl::MutexLock lock(&mu_);
    --users_;
  }
  // Waits until no lease holds the region, then unmaps it.
  void UnmapWhenUnused() {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](int* users) { return *users == 0; }, &users_));
    }
    Unmap();
  }

  // FAILED_PRECONDITION once a SIGBUS was caught on the mapping or the
  // object no longer holds [0, object_end).
  absl::Status CheckIntact(uint64_t object_end) const {
    struct stat st {};
    const bool faulted = slot_ != nullptr && slot_->faulted.load(std::memory_order_acquire);
    if (faulted || fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) < object_end) {
      return absl::FailedPreconditionError(
          absl::StrCat("shared-memory region '", info_.name, "': its object '", info_.key,
                       "' was truncated by its owner; create it again and re-register the region"));
    }
    return absl::OkStatus();
  }

 private:
  SharedMemoryRegion(SharedMemoryRegionInfo info, int fd) : info_(std::move(info)), fd_(fd) {}

  absl::Status MapRange() {
    struct stat st {};
    if (fstat(fd_, &st) != 0) {
      return ErrnoStatus(errno, absl::StrCat("cannot stat shared-memory key '", info_.key, "'"));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("shared-memory key '", info_.key, "' is not a shared-memory object"));
    }
    if (!RangeFits(info_.offset, info_.byte_size, static_cast<uint64_t>(st.st_size))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shared-memory region '", info_.name, "': offset ", info_.offset, " + byte_size ",
          info_.byte_size, " goes past the end of '", info_.key, "' (", st.st_size, " bytes)"));
    }
    device_ = st.st_dev;
    inode_ = st.st_ino;
    InstallSigbusHandler();
    const uint64_t aligned = info_.offset & ~static_cast<uint64_t>(g_page_size - 1);
    length_ = static_cast<size_t>(info_.offset - aligned + info_.byte_size);
    void* mapped = mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_,
                        static_cast<off_t>(aligned));
    if (mapped == MAP_FAILED) {
      return ErrnoStatus(errno, absl::StrCat("cannot map shared-memory key '", info_.key, "'"));
    }
    mapping_ = mapped;
    base_ = static_cast<char*>(mapped) + (info_.offset - aligned);
    const auto begin = reinterpret_cast<uintptr_t>(mapped);
    slot_ = ClaimFaultSlot(begin, begin + length_);
    if (slot_ == nullptr) {
      return absl::ResourceExhaustedError("too many shared-memory regions mapped in this process");
    }
    return absl::OkStatus();
  }

  void Unmap() {
    if (slot_ != nullptr) ReleaseFaultSlot(std::exchange(slot_, nullptr));
    if (mapping_ != nullptr) munmap(std::exchange(mapping_, nullptr), length_);
    base_ = nullptr;
  }

  const SharedMemoryRegionInfo info_;
  const int fd_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  void* mapping_ = nullptr;
  size_t length_ = 0;
  char* base_ = nullptr;
  FaultSlot* slot_ = nullptr;
  absl::Mutex mu_;
  int users_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace internal

SharedMemoryLease::SharedMemoryLease(SharedMemoryLease&& other) noexcept
    : region_(std::move(other.region_)),
      data_(std::exchange(other.data_, nullptr)),
      byte_size_(std::exchange(other.byte_size_, 0)),
      object_offset_(std::exchange(other.object_offset_, 0)) {}

SharedMemoryLease& SharedMemoryLease::operator=(SharedMemoryLease&& other) noexcept {
  if (this != &other) {
    Release();
    region_ = std::move(other.region_);
    data_ = std::exchange(other.data_, nullptr);
    byte_size_ = std::exchange(other.byte_size_, 0);
    object_offset_ = std::exchange(other.object_offset_, 0);
  }
  return *this;
}

SharedMemoryLease::~SharedMemoryLease() { Release(); }

void SharedMemoryLease::Release() {
  if (region_ == nullptr) return;
  region_->Drop();
  region_.reset();
  data_ = nullptr;
}

absl::Status SharedMemoryLease::CheckIntact() const {
  if (region_ == nullptr) return absl::OkStatus();
  return region_->CheckIntact(object_offset_ + byte_size_);
}

bool SharedMemoryLease::Overlaps(const SharedMemoryLease& other) const {
  if (region_ == nullptr || other.region_ == nullptr) return false;
  if (region_->device() != other.region_->device() || region_->inode() != other.region_->inode()) {
    return false;
  }
  return object_offset_ < other.object_offset_ + other.byte_size_ &&
         other.object_offset_ < object_offset_ + byte_size_;
}

SharedMemoryRegistry::SharedMemoryRegistry(SharedMemoryOptions options) : options_(options) {}

SharedMemoryRegistry::~SharedMemoryRegistry() { Unregister("").IgnoreError(); }

absl::Status SharedMemoryRegistry::Register(const std::string& name, const std::string& key,
                                            uint64_t offset, uint64_t byte_size) {
  if (!enabled()) {
    return absl::UnavailableError(kSharedMemoryOff);
  }
  if (name.empty() || name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("shared-memory region name must have 1 to ",
                                                   kMaxNameBytes, " bytes, not ", name.size()));
  }
  // Cheap refusals before opening anything; checked again once mapped.
  const auto check = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) -> absl::Status {
    if (regions_.count(name) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("shared-memory region '", name, "' is already registered"));
    }
    if (regions_.size() >= static_cast<size_t>(options_.max_regions)) {
      return absl::ResourceExhaustedError(
          absl::StrCat(regions_.size(),
                       " shared-memory regions are registered, the limit "
                       "(--shared_memory_max_regions); unregister one first"));
    }
    if (byte_size > options_.max_bytes - registered_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "registering ", byte_size, " more bytes of shared memory would pass the limit of ",
          options_.max_bytes, " (--shared_memory_max_bytes; ", registered_bytes_, " registered)"));
    }
    return absl::OkStatus();
  };
  {
    absl::ReaderMutexLock lock(&mu_);
    if (absl::Status ok = check(); !ok.ok()) return ok;
  }
  absl::StatusOr<std::shared_ptr<internal::SharedMemoryRegion>> region =
      internal::SharedMemoryRegion::Map(SharedMemoryRegionInfo{name, key, offset, byte_size});
  if (!region.ok()) return region.status();
  absl::MutexLock lock(&mu_);
  if (absl::Status ok = check(); !ok.ok()) return ok;  // the mapping goes with `region`
  regions_.emplace(name, *std::move(region));
  registered_bytes_ += byte_size;
  return absl::OkStatus();
}

absl::Status SharedMemoryRegistry::Unregister(const std::string& name) {
  std::vector<std::shared_ptr<internal::SharedMemoryRegion>> removed;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = regions_.begin(); it != regions_.end();) {
      if (name.empty() || it->first == name) {
        registered_bytes_ -= it->second->info().byte_size;
        removed.push_back(std::move(it->second));
        it = regions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // New requests no longer find them; wait for those that did.
  for (const auto& region : removed) region->UnmapWhenUnused();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SharedMemoryRegionInfo>> SharedMemoryRegistry::Status(
    const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<SharedMemoryRegionInfo> infos;
  if (!name.empty()) {
    auto it = regions_.find(name);
    if (it == regions_.end()) {
      return absl::NotFoundError(
          absl::StrCat("shared-memory region '", name, "' is not registered"));
    }
    infos.push_back(it->second->info());
    return infos;
  }
  for (const auto& [unused, region] : regions_) infos.push_back(region->info());
  return infos;
}

absl::StatusOr<SharedMemoryLease> SharedMemoryRegistry::Acquire(const SharedMemoryRef& ref,
                                                                uint64_t tensor_bytes,
                                                                bool at_least,
                                                                const std::string& what) const {
  SharedMemoryLease lease;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = regions_.find(ref.region);
    if (it == regions_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": shared-memory region '", ref.region,
                                                     "' is not registered on this server"));
    }
    it->second->Hold();  // before Unregister can take it out of the map
    lease.region_ = it->second;
  }
  const SharedMemoryRegionInfo& info = lease.region_->info();
  if (!RangeFits(ref.offset, ref.byte_size, info.byte_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": shared_memory_offset ", ref.offset, " + shared_memory_byte_size ", ref.byte_size,
        " goes past the end of region '", ref.region, "' (", info.byte_size, " bytes)"));
  }
  if (ref.byte_size != tensor_bytes && !(at_least && ref.byte_size > tensor_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": shared_memory_byte_size is ",
                                                   ref.byte_size, "; the tensor has ", tensor_bytes,
                                                   " bytes", at_least ? " (at least that)" : ""));
  }
  lease.data_ = lease.region_->base() + ref.offset;
  lease.byte_size_ = tensor_bytes;
  lease.object_offset_ = info.offset + ref.offset;
  if (absl::Status intact = lease.CheckIntact(); !intact.ok()) return intact;
  return lease;
}

}  // namespace sepconv
