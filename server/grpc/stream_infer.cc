#include "server/grpc/stream_infer.h"

#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "proto/status_convert.h"
#include "server/core/cancellation.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/proto_request.h"
#include "server/grpc/status_util.h"

namespace sepconv {

class StreamInferReactor final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                     inference::ModelStreamInferResponse>,
      public std::enable_shared_from_this<StreamInferReactor> {
 public:
  StreamInferReactor(InferenceService* service, grpc::CallbackServerContext* context,
                     int max_in_flight, OpenStreams* open)
      : service_(service),
        open_(open),
        max_in_flight_(max_in_flight < 1 ? 1 : max_in_flight),
        stream_call_(service->CallFrom(*context)) {}

  // Registers with `open_` and issues the first read.
  void Start() {
    self_ = shared_from_this();
    open_->Add(this, self_);
    Advance();
  }

  // The server is shutting down: read no more, end UNAVAILABLE once the
  // answers in flight are written.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Advance();
  }

  void OnReadDone(bool ok) override {
    Slot* slot = nullptr;
    {
      absl::MutexLock lock(&mu_);
      read_outstanding_ = false;
      if (!ok) {
        reads_done_ = true;
      } else if (!broken_ && !finished_) {
        slot = reading_.get();
        slots_.push_back(std::move(reading_));
      }
      reading_.reset();
    }
    if (slot != nullptr) Submit(slot);
    Advance();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      write_outstanding_ = false;
      slots_.pop_front();
      out_.Clear();
      if (!ok) broken_ = true;
    }
    Advance();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      broken_ = true;
    }
    // Queued requests of this stream end CANCELLED at once, uncomputed.
    cancellation_->Cancel();
    Advance();
  }

  void OnDone() override {
    open_->Remove(this);
    // Jobs still running keep the reactor alive through their references.
    std::shared_ptr<StreamInferReactor> last = std::move(self_);
  }

 private:
  // One request from read to written answer.
  struct Slot {
    inference::ModelInferRequest request;
    inference::ModelInferResponse response;
    absl::Status status;
    bool done = false;
  };

  void Submit(Slot* slot) {
    // The stream's auth, deadline and peer; each request its own start.
    InferCall call = stream_call_;
    call.start = absl::Now();
    call.cancellation = cancellation_;
    std::shared_ptr<StreamInferReactor> self = shared_from_this();
    service_->Infer(slot->request, ResponseAllocator(slot->request, &slot->response),
                    std::move(call), [self, slot](absl::Status status) {
                      {
                        absl::MutexLock lock(&self->mu_);
                        slot->status = std::move(status);
                        slot->done = true;
                      }
                      self->Advance();
                    });
  }

  // Issues whatever the state allows: the next write (answers in arrival
  // order), the next read (below the bound) or Finish. gRPC operations are
  // started outside the lock.
  void Advance() {
    bool write = false;
    inference::ModelInferRequest* read_target = nullptr;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (broken_) {
        // Nobody reads the answers any more: drop those that are ready.
        while (!write_outstanding_ && !slots_.empty() && slots_.front()->done) {
          slots_.pop_front();
        }
      } else if (!write_outstanding_ && !slots_.empty() && slots_.front()->done) {
        FillAnswer(slots_.front().get());
        write_outstanding_ = write = true;
      }
      if (!read_outstanding_ && !reads_done_ && !broken_ && !stopping_ &&
          static_cast<int>(slots_.size()) < max_in_flight_) {
        reading_ = std::make_unique<Slot>();
        read_target = &reading_->request;
        read_outstanding_ = true;
      }
      starting_ += (write ? 1 : 0) + (read_target != nullptr ? 1 : 0);
      if (starting_ == 0 && slots_.empty() && !write_outstanding_ &&
          (reads_done_ || broken_ || stopping_)) {
        finished_ = true;
        if (broken_) {
          finish = grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
        } else if (stopping_) {
          finish = ToGrpcStatus(absl::UnavailableError("server is shutting down"));
        } else {
          finish = grpc::Status::OK;
        }
      }
    }
    // gRPC operations start outside the lock (their reactions may run on
    // this thread). Finish waits until no other thread is starting one, and
    // comes last: after it the reactor may be freed.
    if (write) StartWrite(&out_);
    if (read_target != nullptr) StartRead(read_target);
    if (write || read_target != nullptr) {
      {
        absl::MutexLock lock(&mu_);
        starting_ -= (write ? 1 : 0) + (read_target != nullptr ? 1 : 0);
      }
      Advance();
      return;
    }
    if (finish.has_value()) Finish(*finish);
  }

  void FillAnswer(Slot* slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (slot->status.ok()) {
      out_.mutable_infer_response()->Swap(&slot->response);
      return;
    }
    out_.set_error_message(ToStreamErrorMessage(slot->status));
    inference::ModelInferResponse* answer = out_.mutable_infer_response();
    answer->set_model_name(slot->request.model_name());
    answer->set_model_version(slot->request.model_version());
    answer->set_id(slot->request.id());
  }

  InferenceService* const service_;
  OpenStreams* const open_;
  const int max_in_flight_;
  const InferCall stream_call_;
  const std::shared_ptr<Cancellation> cancellation_ = std::make_shared<Cancellation>();
  std::shared_ptr<StreamInferReactor> self_;  // until OnDone

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);  // arrival order
  std::unique_ptr<Slot> reading_ ABSL_GUARDED_BY(mu_);
  inference::ModelStreamInferResponse out_;  // owned by the write in flight
  int starting_ ABSL_GUARDED_BY(mu_) = 0;    // gRPC operations being started
  bool read_outstanding_ ABSL_GUARDED_BY(mu_) = false;
  bool write_outstanding_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // cancelled or a write failed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

void OpenStreams::Add(StreamInferReactor* stream, std::weak_ptr<StreamInferReactor> ref) {
  absl::MutexLock lock(&mu_);
  streams_[stream] = std::move(ref);
}

void OpenStreams::Remove(StreamInferReactor* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

void OpenStreams::StopAll() {
  std::vector<std::shared_ptr<StreamInferReactor>> open;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [stream, ref] : streams_) {
      if (std::shared_ptr<StreamInferReactor> alive = ref.lock()) open.push_back(std::move(alive));
    }
  }
  for (const std::shared_ptr<StreamInferReactor>& stream : open) stream->Stop();
}

grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
StartStreamInfer(InferenceService* service, grpc::CallbackServerContext* context, int max_in_flight,
                 OpenStreams* open) {
  auto reactor = std::make_shared<StreamInferReactor>(service, context, max_in_flight, open);
  reactor->Start();
  return reactor.get();
}

}  // namespace sepconv
