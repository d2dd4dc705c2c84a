#ifndef SEPCONV_ENGINE_INTERNAL_TUNING_CACHE_H_
#define SEPCONV_ENGINE_INTERNAL_TUNING_CACHE_H_

// The tuning cache: a text file of the plans the tuner chose by timing
// (engine/internal/plan_tuner.h), so that a later process on the same kind
// of machine builds each shape's plan as chosen, without timing it again.
// Restarts and replicas then start faster and serve a shape with the same
// plan, hence the same bits, instead of whichever of close candidates a
// fresh timing happens to pick.
//
// One line per choice, six tab-separated fields: the machine it was timed
// on (MachineFingerprint), the tuner's key (layer shapes, image shape,
// threads), the layout's name (LayoutName), the fused tile bytes, the
// threads, and 1 or 0 for a streamed output, e.g.
//   <machine>\t32x112x112|t2|32,64,...\tfused\t131072\t2\t1
// Lines of other machines are kept and never used, so that one file can
// serve a mixed fleet; lines starting with '#' are comments.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/internal/onednn_plan.h"

namespace sepconv {
namespace internal {

// The way the tuner times and compares candidates, and the speed of the
// kernels it chooses among, counted: raised when either changes, so that a
// tuning cache's lines chosen the old way are no longer used (2: the first
// candidate's first run is untimed, see TimeRounds; 3: the fused kernels'
// 3x3 depthwise loads each input row once for several output rows; 4: and
// reads the rows in place rather than from a padded copy).
inline constexpr int kTunerRevision = 4;

// What a choice's timing depends on besides its key: the CPU's model name,
// family, model and stepping (/proc/cpuinfo), the ISA oneDNN dispatches to
// (ONEDNN_MAX_CPU_ISA counts), oneDNN's version, the CPUs this process may
// run on, this engine's version and kTunerRevision. Free of tabs and
// newlines.
std::string MachineFingerprint();

struct TuningCacheEntry {
  std::string key;
  PlanChoice choice;
};

// Thread-compatible: the tuner uses one under its tuning lock.
class TuningCache {
 public:
  // Reads the entries of `machine` in the file at `path` (none if there is
  // no file yet). Errors: the file cannot be read, a line is malformed
  // (INVALID_ARGUMENT naming the file and line), or the folder does not
  // take new files (the cache is rewritten through a temporary file beside
  // it; checked now so that a server fails at start, not at its first new
  // shape).
  static absl::StatusOr<std::unique_ptr<TuningCache>> Open(std::string path, std::string machine);

  // This machine's entries as the file held them when opened.
  const std::vector<TuningCacheEntry>& entries() const { return entries_; }
  const std::string& path() const { return path_; }

  // Records `choice` for `key` on this machine: reads the file again (other
  // processes may have written theirs since), replaces or adds the key's
  // line, writes the whole to a temporary file beside it and renames that
  // over the file, so a reader never sees half a file. Two processes
  // writing at once may lose one's line (it is timed again next time).
  absl::Status Put(const std::string& key, const PlanChoice& choice);

 private:
  TuningCache(std::string path, std::string machine)
      : path_(std::move(path)), machine_(std::move(machine)) {}

  const std::string path_, machine_;
  std::vector<TuningCacheEntry> entries_;
};

}  // namespace internal
}  // namespace sepconv

#endif  // SEPCONV_ENGINE_INTERNAL_TUNING_CACHE_H_
