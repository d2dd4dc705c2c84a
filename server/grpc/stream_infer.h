#ifndef SEPCONV_SERVER_GRPC_STREAM_INFER_H_
#define SEPCONV_SERVER_GRPC_STREAM_INFER_H_

// Triton's ModelStreamInfer: a bidirectional gRPC stream of ModelInferRequest
// in, ModelStreamInferResponse out, on gRPC's callback API.
//
// Each request read from the stream goes through InferenceService::Infer,
// the same path as unary ModelInfer (lookup, validation, limits, the model's
// batcher, metrics, failure log). The token is checked once, from the
// stream's metadata; without a valid one every request is answered with the
// UNAUTHENTICATED error (like Triton, which carries per-request errors in
// the response and keeps the stream open). Answers are written in the order
// the requests arrived; a failed request is answered with error_message set
// to "<CODE>: <message>" (the infer_response then carries only the request's
// model name, version and id) and the stream stays open.
//
// Flow control: at most `max_in_flight` requests per stream are held by the
// server at once (read and not yet fully written back). At the bound the
// reactor issues no further read, so a client that sends faster than it
// reads is held back by HTTP/2 flow control rather than growing server
// memory.
//
// The stream ends with OK after the client half-closes and every answer is
// written; CANCELLED when the client cancels or goes away (in-flight jobs
// are dropped or finish unseen; everything is freed once the last one
// returns); UNAVAILABLE when the server shuts down (StopAll), once the
// answers already in flight are written.
//
// Thread-safe.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc_service.grpc.pb.h"

namespace sepconv {

class InferenceService;
class StreamInferReactor;

// The streams a service has open, so shutdown can end them.
class OpenStreams {
 public:
  // Tells every open stream the server is shutting down (see above).
  void StopAll();

 private:
  friend class StreamInferReactor;
  void Add(StreamInferReactor* stream, std::weak_ptr<StreamInferReactor> ref);
  void Remove(StreamInferReactor* stream);

  absl::Mutex mu_;
  std::unordered_map<StreamInferReactor*, std::weak_ptr<StreamInferReactor>> streams_
      ABSL_GUARDED_BY(mu_);
};

// Starts serving one ModelStreamInfer call; the reactor owns itself and is
// freed after OnDone and the last of its inference jobs. `service` and
// `open` must outlive the gRPC server.
grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>*
StartStreamInfer(InferenceService* service, grpc::CallbackServerContext* context, int max_in_flight,
                 OpenStreams* open);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_STREAM_INFER_H_
