#ifndef SEPCONV_SERVER_GRPC_INFER_BUFFERS_H_
#define SEPCONV_SERVER_GRPC_INFER_BUFFERS_H_

// Unary ModelInfer's memory, kept warm between calls, and its answer sent
// without copying the output tensor.
//
// - InferBufferPool: idle ModelInferRequest messages (their
//   raw_input_contents strings keep their capacity, so the next request is
//   parsed into memory already mapped) and 64-byte aligned output buffers
//   the engine writes into. Warm() maps both ahead of the first request at
//   the sizes the served models' warm-up declares: without it, each gRPC
//   thread's first request of a size page-faulted its input, output and
//   serialized answer into fresh malloc memory (about 1,200 faults, 5 ms on a
//   VM, for a 1.6 MB tensor each way; docs/performance.md "Warm-up").
// - EncodeInferResponse: the answer as gRPC byte buffer slices: the
//   response message without its tensor bytes, serialized (names and
//   shape, a few dozen bytes), then raw_output_contents' field header and a
//   slice that lends the output buffer to gRPC until it has been sent, then
//   gives it back to the pool. The bytes equal ModelInferResponse's own
//   serialization with the tensor in raw_output_contents (fields are
//   written in field-number order, and raw_output_contents is the last),
//   without the 2 copies it costs (zeroing the string, then serializing).
//
// Thread-safe (the pool's lists are locked; a lent buffer may be given back
// from any gRPC thread, after the service is gone).

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpc_service.pb.h"

namespace sepconv {

// Owns `capacity` bytes, 64-byte aligned, uninitialised.
struct OutputBuffer {
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char[], Free> data;
  size_t capacity = 0;
};

class InferBufferPool {
 public:
  // Keeps at most `max_idle` idle requests and as many idle buffers, each
  // list holding at most `max_idle_bytes` of tensor memory: what is given
  // back is kept, and the longest idle are freed beyond either (one larger
  // than `max_idle_bytes` by itself is freed at once).
  InferBufferPool(int max_idle, size_t max_idle_bytes);

  // An idle request message (cleared by the parse that refills it), or a
  // new one.
  std::unique_ptr<inference::ModelInferRequest> TakeRequest();
  void GiveRequest(std::unique_ptr<inference::ModelInferRequest> request);

  // An idle buffer of at least `bytes`, or a new one.
  OutputBuffer TakeOutput(size_t bytes);
  void GiveOutput(OutputBuffer buffer);

  // Keeps `count` idle requests able to hold `request_bytes` of tensor data
  // and `count` idle buffers of `output_bytes`, every page written once; and
  // writes then frees `request_bytes` of malloc's heap for gRPC's reads.
  void Warm(size_t request_bytes, size_t output_bytes, int count);

  int IdleRequests() const;
  int IdleOutputs() const;

 private:
  const int max_idle_;
  const size_t max_idle_bytes_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<inference::ModelInferRequest>> requests_ ABSL_GUARDED_BY(mu_);
  size_t request_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // their tensor strings' capacity
  std::vector<OutputBuffer> outputs_ ABSL_GUARDED_BY(mu_);
  size_t output_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Parses `bytes` into `request` (reusing its strings' memory);
// INVALID_ARGUMENT if they are not a ModelInferRequest.
absl::Status ParseModelInferBytes(const grpc::ByteBuffer& bytes,
                                  inference::ModelInferRequest* request);

// The serialized `header` (a ModelInferResponse with no raw_output_contents),
// then, when `output.data` is set, `output_bytes` of it as
// raw_output_contents[0], lent to gRPC and given back to `pool` once sent.
grpc::ByteBuffer EncodeInferResponse(const inference::ModelInferResponse& header,
                                     OutputBuffer output, size_t output_bytes,
                                     std::shared_ptr<InferBufferPool> pool);

}  // namespace sepconv

#endif  // SEPCONV_SERVER_GRPC_INFER_BUFFERS_H_
