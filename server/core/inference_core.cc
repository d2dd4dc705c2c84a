#include "server/core/inference_core.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/loader/model_warmup.h"
#include "server/core/input_tensor.h"
#include "server/core/request_validation.h"

namespace sepconv {
namespace {

constexpr char kPlatform[] = "sepconv_onednn";

using Done = absl::AnyInvocable<void(absl::Status)>;

absl::Status ShuttingDownError() {
  return absl::UnavailableError("server is shutting down; not accepting new requests");
}

// Job ids for Scheduler::Cancel, unique in the process.
uint64_t NextJobId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

// Links one submitted job to its call's Cancellation: the hook registered
// after Submit, unregistered when the job is done, whichever comes first.
struct CancelLink {
  // From the job's done: no hook may stay registered once it has run.
  void JobDone(Cancellation& cancellation) {
    uint64_t registered;
    {
      absl::MutexLock lock(&mu);
      done = true;
      registered = hook;
    }
    cancellation.Unregister(registered);
  }
  // After Submit: a cancel that came earlier runs the hook at once, and it
  // still finds the job. The hook keeps the model version only weakly.
  void Attach(Cancellation& cancellation, const std::shared_ptr<ServedModel>& model,
              uint64_t job_id) {
    const uint64_t registered =
        cancellation.Register([weak = std::weak_ptr<ServedModel>(model), job_id] {
          if (std::shared_ptr<ServedModel> alive = weak.lock()) alive->scheduler().Cancel(job_id);
        });
    bool done_already;
    {
      absl::MutexLock lock(&mu);
      done_already = done;
      if (!done_already) hook = registered;
    }
    if (done_already) cancellation.Unregister(registered);
  }

  absl::Mutex mu;
  uint64_t hook ABSL_GUARDED_BY(mu) = 0;
  bool done ABSL_GUARDED_BY(mu) = false;
};

void Record(ModelMetrics* metrics, absl::StatusCode code, absl::Time start) {
  if (metrics != nullptr) metrics->RequestDone(code, absl::Now() - start);
}

// Writes one failed request to `log`, if any.
void LogFailure(RequestLog* log, const std::string& peer, const InferRequest& request,
                const absl::Status& status) {
  if (log == nullptr || status.ok()) return;
  FailedRequest failed;
  failed.code = status.code();
  failed.model = request.model_name;
  failed.version = request.model_version;
  failed.peer = peer;
  failed.reason = status.message();
  log->Failed(failed);
}

// The earlier of the transport's deadline and the request's timeout.
absl::Time RequestDeadline(const InferCall& call, const ValidatedInfer& validated) {
  absl::Time deadline = call.deadline;
  if (validated.timeout.has_value() && *validated.timeout > absl::ZeroDuration()) {
    deadline = std::min(deadline, call.start + *validated.timeout);
  }
  return deadline;
}

TensorMetadataInfo TensorMetadata(const char* name, int64_t channels) {
  return TensorMetadataInfo{name, kDatatypeFp32, {-1, channels, -1, -1}};
}

// The leases of a request whose tensors are in shared memory.
struct SharedMemoryLeases {
  SharedMemoryLease input;
  SharedMemoryLease output;
  // OK while both ranges are intact (checked once the output is written).
  absl::Status CheckIntact() const {
    absl::Status status = input.CheckIntact();
    status.Update(output.CheckIntact());
    return status;
  }
};

int64_t FloatBytes(const Dims4& d) { return d.n * d.c * d.h * d.w * int64_t{sizeof(float)}; }

// Leases the ranges a validated request names in shared memory.
absl::Status LeaseSharedMemory(const SharedMemoryRegistry* regions, const ValidatedInfer& validated,
                               SharedMemoryLeases& leases) {
  const bool wanted = validated.input_shared_memory || validated.output_shared_memory;
  if (!wanted) return absl::OkStatus();
  if (regions == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request names a shared-memory region; ", kSharedMemoryOff));
  }
  if (validated.input_shared_memory) {
    absl::StatusOr<SharedMemoryLease> lease =
        regions->Acquire(*validated.input_shared_memory, FloatBytes(validated.input_dims),
                         /*at_least=*/false, absl::StrCat("input '", kInputName, "'"));
    if (!lease.ok()) return lease.status();
    leases.input = *std::move(lease);
  }
  if (validated.output_shared_memory) {
    const std::string what = absl::StrCat("output '", kOutputName, "'");
    absl::StatusOr<SharedMemoryLease> lease =
        regions->Acquire(*validated.output_shared_memory, FloatBytes(validated.output_dims),
                         /*at_least=*/true, what);
    if (!lease.ok()) return lease.status();
    if (reinterpret_cast<uintptr_t>(lease->data()) % alignof(float) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": its place in shared memory must be 4-byte aligned (region offset + ",
          kShmOffsetParameter, ")"));
    }
    if (lease->Overlaps(leases.input)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " and input '", kInputName, "' overlap in shared memory"));
    }
    leases.output = *std::move(lease);
  }
  return absl::OkStatus();
}

// A request made ready to run: validated, within the limits, its shared
// memory leased, its output allocated, its input viewed.
struct PreparedInfer {
  ValidatedInfer validated;
  SharedMemoryLeases leases;
  float* output = nullptr;
  InputTensor input;
};

// A model whose configuration has max_batch_size > 0 takes requests of at
// most that many samples, as Triton does (with its message); 0 = any batch.
absl::Status CheckBatchSize(const ServedModel& model, const Dims4& input) {
  const int64_t max_batch_size = model.config().max_batch_size();
  if (max_batch_size <= 0 || input.n <= max_batch_size) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("inference request batch-size must be <= ", max_batch_size, " for '",
                   model.name(), "' (input '", kInputName, "' has ", input.n,
                   " samples; the model's max_batch_size is ", max_batch_size, ")"));
}

absl::StatusOr<PreparedInfer> Prepare(const ServedModel& model, const CoreOptions& options,
                                      const InferRequest& request, OutputAllocator& allocate) {
  PreparedInfer p;
  absl::StatusOr<ValidatedInfer> validated = ValidateInferRequest(request, model.spec());
  if (!validated.ok()) return validated.status();
  p.validated = *std::move(validated);
  const ValidatedInfer& v = p.validated;
  if (absl::Status s = CheckBatchSize(model, v.input_dims); !s.ok()) return s;
  if (absl::Status limited = CheckRequestLimits(options.limits, v.input_dims, v.output_dims);
      !limited.ok()) {
    return limited;
  }
  if (absl::Status leased = LeaseSharedMemory(EnabledRegions(options), v, p.leases); !leased.ok()) {
    return leased;
  }
  InferResult result;
  result.model_name = model.name();
  result.model_version = model.version();
  result.output_dims = v.output_dims;
  result.raw = v.raw;
  result.output_in_shared_memory = v.output_shared_memory.has_value();
  absl::StatusOr<float*> output = allocate(result);
  if (!output.ok()) return output.status();
  p.output =
      result.output_in_shared_memory ? reinterpret_cast<float*>(p.leases.output.data()) : *output;
  p.input =
      v.input_shared_memory
          ? InputFromRawBytes(absl::string_view(p.leases.input.data(), p.leases.input.byte_size()))
          : InputFromRequest(request, v);
  return p;
}

// What a job's done shares with Submit and the scheduler: the frontend's
// done and the times the scheduler records for the job.
struct Completion {
  Done done;
  JobTimes times;
};

// Validates and submits one request to `model`; on OK the scheduler now owns
// calling `done`, otherwise `done` is still the caller's.
absl::Status Submit(const std::shared_ptr<ServedModel>& model, const CoreOptions& options,
                    const InferRequest& request, const InferCall& call, OutputAllocator& allocate,
                    Done& done) {
  absl::StatusOr<PreparedInfer> prepared = Prepare(*model, options, request, allocate);
  if (!prepared.ok()) return prepared.status();
  auto job = std::make_unique<InferenceJob>();
  const uint64_t id = NextJobId();
  job->id = id;
  job->dims = prepared->validated.input_dims;
  job->input = prepared->input.data();
  job->output = prepared->output;
  job->deadline = RequestDeadline(call, prepared->validated);
  // Shared by the job's done and the scheduler (the times, through the
  // aliasing job->times): `done` moves in only when the scheduler takes the
  // job, so a refused submit leaves it with the caller (the retry or the
  // failure report).
  auto completion = std::make_shared<Completion>();
  job->times = std::shared_ptr<JobTimes>(completion, &completion->times);
  auto link = call.cancellation != nullptr ? std::make_shared<CancelLink>() : nullptr;
  // The lease keeps the version (its metrics, its scheduler) alive until the
  // job is done, whoever unloads it meanwhile.
  job->done = [lease = model, log = options.request_log, &request, peer = call.peer,
               start = call.start, completion, input = std::move(prepared->input),
               cancellation = call.cancellation, link,
               leases = std::move(prepared->leases)](absl::Status status) mutable {
    if (link != nullptr) link->JobDone(*cancellation);
    // A region its owner truncated meanwhile: what was read or written
    // there is lost. The leases end here, not with the job: an unregister
    // waiting for them goes on before the answer is sent.
    if (status.ok()) status = leases.CheckIntact();
    leases = SharedMemoryLeases();
    ModelMetrics* metrics = lease->metrics();
    Record(metrics, status.code(), start);
    if (metrics != nullptr && status.ok()) {
      const JobTimes& times = completion->times;
      metrics->RequestOverhead(absl::Now() - start - times.queue_time - times.compute_time);
    }
    LogFailure(log.get(), peer, request, status);  // request lives until done
    completion->done(status);
  };
  completion->done = std::move(done);
  absl::Status submitted = model->Submit(std::move(job));
  if (!submitted.ok()) {
    done = std::move(completion->done);
    return submitted;
  }
  if (link != nullptr) link->Attach(*call.cancellation, model, id);
  return absl::OkStatus();
}

}  // namespace

InferenceCore::InferenceCore(std::shared_ptr<const ModelRegistry> registry, CoreOptions options)
    : registry_(std::move(registry)), options_(std::move(options)) {}

absl::Status InferenceCore::Authenticate(absl::string_view authorization) const {
  if (options_.auth == nullptr) return absl::OkStatus();
  return options_.auth->Check(authorization);
}

TensorBytes InferenceCore::LargestWarmupTensors() const {
  TensorBytes largest;
  for (const std::shared_ptr<ServedModel>& model : registry_->LoadedModels()) {
    if (model->config().model_warmup_size() == 0) continue;  // no sizes declared
    absl::StatusOr<std::vector<Dims4>> shapes = WarmupShapes(model->config());
    if (!shapes.ok()) continue;  // such a model was not loaded
    for (const Dims4& input : *shapes) {
      absl::StatusOr<Dims4> output = InferOutputShape(model->spec(), input);
      if (!output.ok()) continue;
      largest.input = std::max(largest.input, static_cast<size_t>(Elements(input)) * sizeof(float));
      largest.output =
          std::max(largest.output, static_cast<size_t>(Elements(*output)) * sizeof(float));
    }
  }
  return largest;
}

bool InferenceCore::Ready() const { return !shutting_down() && registry_->AllModelsReady(); }

bool InferenceCore::ModelReady(const std::string& name, const std::string& version) const {
  return !shutting_down() && registry_->IsReady(name, version);
}

absl::StatusOr<ModelMetadataInfo> InferenceCore::ModelMetadata(const std::string& name,
                                                               const std::string& version) const {
  absl::StatusOr<std::shared_ptr<ServedModel>> model = registry_->Find(name, version);
  if (!model.ok()) return model.status();
  absl::StatusOr<std::vector<VersionStatus>> versions = registry_->Versions(name);
  if (!versions.ok()) return versions.status();
  ModelMetadataInfo info;
  info.name = name;
  for (const VersionStatus& v : *versions) info.versions.push_back(v.version);
  info.platform = kPlatform;
  info.inputs.push_back(TensorMetadata(kInputName, (*model)->spec().InChannels()));
  info.outputs.push_back(TensorMetadata(kOutputName, (*model)->spec().OutChannels()));
  return info;
}

void InferenceCore::Refuse(const InferRequest& request, const InferCall& call, absl::Status status,
                           Done done) const {
  // Counted under the model only if it exists: clients mint no labels.
  absl::StatusOr<std::shared_ptr<ServedModel>> model =
      registry_->Find(request.model_name, request.model_version);
  if (model.ok()) Record((*model)->metrics(), status.code(), call.start);
  LogFailure(options_.request_log.get(), call.peer, request, status);
  done(std::move(status));
}

void InferenceCore::StartShutdown() { shutting_down_.store(true); }

void InferenceCore::Infer(const InferRequest& request, InferCall call, OutputAllocator allocate,
                          Done done) {
  RequestLog* log = options_.request_log.get();
  if (!call.auth.ok()) {
    Refuse(request, call, call.auth, std::move(done));
    return;
  }
  std::shared_ptr<ModelMetrics> metrics;
  absl::Status status;
  // A version replaced between lookup and submit rejects with UNAVAILABLE;
  // one more lookup then finds its successor.
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<std::shared_ptr<ServedModel>> model =
        registry_->Find(request.model_name, request.model_version);
    if (!model.ok()) {
      LogFailure(log, call.peer, request, model.status());
      done(model.status());
      return;
    }
    metrics = (*model)->metrics_handle();
    if (shutting_down()) {
      status = ShuttingDownError();
      break;
    }
    status = Submit(*model, options_, request, call, allocate, done);
    if (status.ok()) return;
    if (status.code() != absl::StatusCode::kUnavailable || shutting_down()) break;
    absl::StatusOr<std::shared_ptr<ServedModel>> again =
        registry_->Find(request.model_name, request.model_version);
    if (!again.ok() || *again == *model) break;
  }
  auto refuse = [log = options_.request_log, &request, metrics = std::move(metrics),
                 start = call.start, peer = std::move(call.peer), status,
                 done = std::move(done)]() mutable {
    Record(metrics.get(), status.code(), start);
    LogFailure(log.get(), peer, request, status);
    done(status);
  };
  if (status.code() == absl::StatusCode::kUnavailable && shutting_down()) {
    absl::MutexLock lock(&refusals_mu_);
    if (!refusals_released_) {
      held_refusals_.push_back(std::move(refuse));
      return;
    }
  }
  refuse();
}

int InferenceCore::held_refusals() const {
  absl::MutexLock lock(&refusals_mu_);
  return static_cast<int>(held_refusals_.size());
}

void InferenceCore::ReleaseRefusals() {
  std::vector<absl::AnyInvocable<void()>> held;
  {
    absl::MutexLock lock(&refusals_mu_);
    refusals_released_ = true;
    held.swap(held_refusals_);
  }
  for (absl::AnyInvocable<void()>& refuse : held) refuse();
}

}  // namespace sepconv
