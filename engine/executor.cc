#include "engine/executor.h"

#include <omp.h>

#include <algorithm>
#include <list>
#include <map>
#include <new>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/internal/checked_math.h"
#include "engine/internal/onednn_executor.h"
#include "engine/internal/onednn_plan.h"
#include "engine/internal/plan_tuner.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace sepconv {
namespace {

absl::Status FromDnnl(const dnnl::error& e) {
  const std::string message = absl::StrCat("oneDNN: ", e.what());
  if (e.status == dnnl_invalid_arguments) return absl::InvalidArgumentError(message);
  return absl::InternalError(message);
}

// Runs `body` (which returns absl::Status or StatusOr) with every exception
// oneDNN or the allocator may throw turned into a status.
template <typename Body>
auto Guarded(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const dnnl::error& e) {
    return FromDnnl(e);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("engine: out of memory");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("engine: ", e.what()));
  }
}

class OneDnnExecutor final : public Executor {
 public:
  OneDnnExecutor(std::shared_ptr<const ModelSpec> model, ExecutorOptions options,
                 OneDnnTuning tuning)
      : model_(std::move(model)),
        options_(options),
        tuning_(tuning),
        engine_(dnnl::engine::kind::cpu, 0),
        stream_(engine_),
        weights_(*model_, engine_) {}

  absl::StatusOr<FlopCount> Run(const Dims4& chw, absl::Span<const BatchItem> items) override {
    absl::StatusOr<int64_t> n = CheckItems(chw, items);
    if (!n.ok()) return n.status();
    // Validates the whole batch's shape (incl. overflow) before any work.
    absl::StatusOr<Dims4> out = InferOutputShape(*model_, Dims4{*n, chw.c, chw.h, chw.w});
    if (!out.ok()) return out.status();
    if (options_.threads > 0) omp_set_num_threads(options_.threads);
    return Guarded([&]() -> absl::StatusOr<FlopCount> {
      const Dims4 input{*n, chw.c, chw.h, chw.w};
      int64_t micro = MicroBatchSize(*model_, chw, *n, tuning_.micro_batch);
      // Timed only where the size-based default splits the batch anyway: a
      // batch that fits runs whole, as each of its items alone would (same
      // kernels, so the same bits whatever the batch).
      if (tuning_.micro_batch == 0 && micro < *n && options_.tune_budget_ms > 0) {
        const std::vector<int64_t> candidates = MicroBatchCandidates(micro, *n);
        // A candidate that fails (e.g. out of memory for the whole batch at
        // once) is dropped, not timed as if it had run.
        absl::StatusOr<internal::MicroBatchChoice> choice = internal::ChooseMicroBatch(
            *model_, input, candidates, absl::Milliseconds(options_.tune_budget_ms),
            [&](int64_t m) {
              return Guarded([&] { return RunInMicroBatches(items, input, *out, m).status(); });
            });
        if (!choice.ok()) return choice.status();
        micro = choice->micro_batch;
      }
      return RunInMicroBatches(items, input, *out, micro);
    });
  }

  const ModelSpec& model() const override { return *model_; }
  absl::Span<const Dims4> warm_shapes() const override { return options_.warm_shapes; }

 private:
  // The batch `items` (of shape `input`, output `out`) in micro-batches of
  // `micro` samples.
  absl::StatusOr<FlopCount> RunInMicroBatches(absl::Span<const BatchItem> items, const Dims4& input,
                                              const Dims4& out, int64_t micro) {
    const int64_t in_sample = input.c * input.h * input.w, out_sample = out.c * out.h * out.w;
    FlopCount flops;
    Cursor cursor;
    for (int64_t start = 0; start < input.n; start += micro) {
      const int64_t size = std::min(micro, input.n - start);
      absl::StatusOr<Cached*> cached = GetPlan(Dims4{size, input.c, input.h, input.w});
      if (!cached.ok()) return cached.status();
      NextMicroBatch(items, size, in_sample, out_sample, cursor);
      Plan& plan = *(*cached)->plan;
      plan.Execute(chunk_, stream_, (*cached)->own_arena ? *(*cached)->own_arena : arena_);
      flops += plan.flops();
    }
    return flops;
  }

  // What the micro-batch tuner times for a batch of n: the size-based
  // default first, then powers of two and the whole batch.
  static std::vector<int64_t> MicroBatchCandidates(int64_t fallback, int64_t n) {
    std::vector<int64_t> candidates = {fallback};
    for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{4}, int64_t{8}, n}) {
      if (m <= n && std::find(candidates.begin(), candidates.end(), m) == candidates.end()) {
        candidates.push_back(m);
      }
    }
    return candidates;
  }

  using Key = std::tuple<int64_t, int64_t, int64_t>;  // n, h, w
  // Position in the concatenation of the items: item index, samples of it
  // already consumed.
  struct Cursor {
    size_t item = 0;
    int64_t taken = 0;
  };

  // Fills chunk_ with the next `size` samples from `cursor` on: a
  // micro-batch may span items and an item may span micro-batches
  // (pointers advance by whole samples of `in_sample`/`out_sample` floats).
  void NextMicroBatch(absl::Span<const BatchItem> items, int64_t size, int64_t in_sample,
                      int64_t out_sample, Cursor& cursor) {
    chunk_.clear();
    for (int64_t need = size; need > 0;) {
      const BatchItem& item = items[cursor.item];
      const int64_t part = std::min(need, item.samples - cursor.taken);
      chunk_.push_back(BatchItem{item.input + cursor.taken * in_sample,
                                 item.output + cursor.taken * out_sample, part});
      need -= part;
      cursor.taken += part;
      if (cursor.taken == item.samples) cursor = Cursor{cursor.item + 1, 0};
    }
  }
  struct Cached {
    Key key;
    std::unique_ptr<Plan> plan;
    std::unique_ptr<internal::Arena> own_arena;  // only with tuning_.arena_per_plan
  };
  using Lru = std::list<Cached>;

  // The batch size, or INVALID_ARGUMENT for empty/malformed items.
  absl::StatusOr<int64_t> CheckItems(const Dims4& chw, absl::Span<const BatchItem> items) const {
    if (items.empty()) return absl::InvalidArgumentError("Run needs at least one batch item");
    int64_t n = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      const BatchItem& item = items[i];
      if (item.samples <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("batch item ", i, ": samples must be positive, got ", item.samples));
      }
      if (item.input == nullptr || item.output == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("batch item ", i, ": null input or output pointer"));
      }
      const std::optional<int64_t> sum = internal::CheckedAdd(n, item.samples);
      if (!sum) return absl::InvalidArgumentError("batch size overflows int64");
      n = *sum;
    }
    if (chw.c != model_->InChannels()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input has ", chw.c, " channels, the model expects ", model_->InChannels()));
    }
    return n;
  }

  // The plan for `input` (most recently used first), built on first use.
  absl::StatusOr<Cached*> GetPlan(const Dims4& input) {
    const Key key{input.n, input.h, input.w};
    auto found = index_.find(key);
    if (found != index_.end()) {
      plans_.splice(plans_.begin(), plans_, found->second);
      return &plans_.front();
    }
    absl::StatusOr<FlopCount> flops = CountFlops(*model_, input);  // validates the shape
    if (!flops.ok()) return flops.status();
    std::unique_ptr<internal::Arena> own_arena;
    if (tuning_.arena_per_plan) own_arena = std::make_unique<internal::Arena>();
    internal::Arena& arena = own_arena ? *own_arena : arena_;
    std::unique_ptr<Plan> plan;
    if (tuning_.layout == ActivationLayout::kAuto) {
      internal::TuneResult tuned =
          internal::BuildTunedPlan(*model_, input, *flops, weights_, engine_, stream_, arena,
                                   absl::Milliseconds(options_.tune_budget_ms));
      plan = std::move(tuned.plan);
      // Reported with the reorders its first run makes, as a timed plan is.
      if (tuned.from_tuning_cache) plan->MakeBoundaries(input.n);
      if ((tuned.candidates_timed > 0 || tuned.from_tuning_cache) && options_.on_plan_tuned) {
        options_.on_plan_tuned(PlanReport{
            input, plan->ImplNames(),
            tuned.choice.threads > 0 ? tuned.choice.threads : omp_get_max_threads(),
            tuned.candidates_timed, tuned.rounds,
            tuned.runner_up ? Describe(*tuned.runner_up) : std::string(), tuned.runner_up_ratio,
            tuned.spent, tuned.from_tuning_cache, std::move(tuned.tuning_cache_status)});
      }
    } else {
      plan = std::make_unique<Plan>(*model_, input, *flops, tuning_.layout, weights_, engine_,
                                    stream_);
    }
    cached_bytes_ += plan->ArenaBytes();
    plans_.push_front(Cached{key, std::move(plan), std::move(own_arena)});
    index_[key] = plans_.begin();
    Evict();
    return &plans_.front();
  }

  // Drops least recently used plans (never the newest) beyond
  // max_cached_shapes plans or max_cached_plan_bytes of working memory, and
  // gives back arena memory that only dropped plans needed.
  void Evict() {
    const size_t capacity = static_cast<size_t>(std::max(1, options_.max_cached_shapes));
    const size_t max_bytes =
        static_cast<size_t>(std::max<int64_t>(0, options_.max_cached_plan_bytes));
    bool evicted = false;
    while (plans_.size() > 1 && (plans_.size() > capacity || cached_bytes_ > max_bytes)) {
      Cached& last = plans_.back();
      cached_bytes_ -= last.plan->ArenaBytes();
      index_.erase(last.key);
      plans_.pop_back();
      evicted = true;
    }
    if (!evicted) return;
    size_t needed = 0;
    for (const Cached& cached : plans_) needed = std::max(needed, cached.plan->ArenaBytes());
    if (arena_.capacity() > needed) arena_.Release();  // re-grown to fit by the next run
  }

  const std::shared_ptr<const ModelSpec> model_;
  const ExecutorOptions options_;
  const OneDnnTuning tuning_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  WeightCache weights_;
  internal::Arena arena_;  // every plan's working memory (one runs at a time)
  Lru plans_;
  std::map<Key, Lru::iterator> index_;
  size_t cached_bytes_ = 0;       // the plans' ArenaBytes()
  std::vector<BatchItem> chunk_;  // one micro-batch's pieces, reused
};

}  // namespace

namespace internal {

absl::StatusOr<std::unique_ptr<Executor>> CreateOneDnnExecutor(
    std::shared_ptr<const ModelSpec> model, ExecutorOptions options, OneDnnTuning tuning) {
  if (model == nullptr) return absl::InvalidArgumentError("Executor::Create: null model");
  if (absl::Status st = ValidateModel(*model); !st.ok()) return st;
  if (options.tune_budget_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ExecutorOptions.tune_budget_ms must be >= 0, got ", options.tune_budget_ms));
  }
  if (options.max_cached_plan_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ExecutorOptions.max_cached_plan_bytes must be >= 0, got ", options.max_cached_plan_bytes));
  }
  if (options.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ExecutorOptions.threads must be >= 0, got ", options.threads));
  }
  return Guarded([&]() -> absl::StatusOr<std::unique_ptr<Executor>> {
    return std::unique_ptr<Executor>(new OneDnnExecutor(std::move(model), options, tuning));
  });
}

}  // namespace internal

absl::Status Executor::Warm(absl::Span<const Dims4> shapes) {
  for (const Dims4& shape : shapes) {
    absl::StatusOr<Dims4> out = InferOutputShape(model(), shape);
    if (!out.ok()) return out.status();
    absl::Status status = Guarded([&]() -> absl::Status {
      const std::vector<float> input(static_cast<size_t>(shape.n * shape.c * shape.h * shape.w));
      std::vector<float> output(static_cast<size_t>(out->n * out->c * out->h * out->w));
      return Run(shape, input.data(), output.data()).status();
    });
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(std::shared_ptr<const ModelSpec> model,
                                                           ExecutorOptions options) {
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      internal::CreateOneDnnExecutor(std::move(model), options, OneDnnTuning{});
  if (!executor.ok()) return executor;
  if (absl::Status warm = (*executor)->Warm(options.warm_shapes); !warm.ok()) {
    return absl::Status(warm.code(), absl::StrCat("warm-up: ", warm.message()));
  }
  return executor;
}

absl::Status UseTuningCache(const std::string& path) { return internal::UseTuningCache(path); }

}  // namespace sepconv
