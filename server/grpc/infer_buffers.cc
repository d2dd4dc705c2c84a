#include "server/grpc/infer_buffers.h"

#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>
#include <sys/mman.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>

namespace sepconv {
namespace {

using Response = inference::ModelInferResponse;

// The answer's tensor bytes go last: EncodeInferResponse appends them after
// the other fields' serialization.
static_assert(Response::kRawOutputContentsFieldNumber > Response::kModelNameFieldNumber &&
                  Response::kRawOutputContentsFieldNumber > Response::kModelVersionFieldNumber &&
                  Response::kRawOutputContentsFieldNumber > Response::kIdFieldNumber &&
                  Response::kRawOutputContentsFieldNumber > Response::kParametersFieldNumber &&
                  Response::kRawOutputContentsFieldNumber > Response::kOutputsFieldNumber,
              "raw_output_contents must be ModelInferResponse's last field");

constexpr size_t kAlignment = 64;

// Transparent huge pages' size on x86-64.
constexpr size_t kHugePage = size_t{2} << 20;

// A new buffer. The whole huge pages inside one of 4 MiB or more are asked
// for with madvise (Debian's kernel gives them only to those who ask): a
// new buffer's pages are faulted in by the engine's first write, and on
// this project's VM a 4 KiB page's fault took about 11 us, so a fresh
// 51 MB answer (16x64x112x112) took 138 ms to write on one thread, 12.5 ms
// on huge pages (docs/performance.md "An answer's buffer").
OutputBuffer NewOutput(size_t bytes) {
  OutputBuffer buffer;
  buffer.capacity = std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  buffer.data.reset(static_cast<char*>(std::aligned_alloc(kAlignment, buffer.capacity)));
  if (buffer.data == nullptr) throw std::bad_alloc();
  if (buffer.capacity >= 2 * kHugePage) {
    const uintptr_t start = reinterpret_cast<uintptr_t>(buffer.data.get());
    const uintptr_t first = (start + kHugePage - 1) / kHugePage * kHugePage;
    const uintptr_t end = (start + buffer.capacity) / kHugePage * kHugePage;
    // Advice only: without huge pages the buffer works the same.
    if (end > first) madvise(reinterpret_cast<void*>(first), end - first, MADV_HUGEPAGE);
  }
  return buffer;
}

// A buffer lent to gRPC for one answer's slice.
struct Lent {
  std::shared_ptr<InferBufferPool> pool;
  OutputBuffer buffer;
};

void GiveBack(void* lent) {
  std::unique_ptr<Lent> owned(static_cast<Lent*>(lent));
  if (owned->pool != nullptr) owned->pool->GiveOutput(std::move(owned->buffer));
}

// The tensor memory an idle request (its strings' capacity) or output
// buffer holds.
size_t TensorBytes(const std::unique_ptr<inference::ModelInferRequest>& request) {
  size_t bytes = 0;
  for (const std::string& raw : request->raw_input_contents()) bytes += raw.capacity();
  return bytes;
}
size_t TensorBytes(const OutputBuffer& buffer) { return buffer.capacity; }

// Keeps `item` as the newest of `idle` (oldest first, `idle_bytes` of
// tensor memory in all), then frees the oldest while more than `max_idle`
// or `max_idle_bytes` are idle; `item` itself is freed only if it alone is
// more than either allows. So the sizes being served stay, whatever sizes
// were served before: a pool that kept what came back only while there was
// room had its 4 places taken by small answers' buffers, and a 51 MB
// answer's buffer was then freed after every call and mapped again for the
// next (86 ms of page faults in a 4 ms computation; docs/performance.md "An
// answer's buffer"). What is freed goes to `freed`, for the caller to free
// once unlocked.
template <class T>
void KeepNewest(T item, int max_idle, size_t max_idle_bytes, std::vector<T>& idle,
                size_t& idle_bytes, std::vector<T>& freed) {
  const size_t bytes = TensorBytes(item);
  if (max_idle <= 0 || bytes > max_idle_bytes) {
    freed.push_back(std::move(item));
    return;
  }
  idle.push_back(std::move(item));
  idle_bytes += bytes;
  auto oldest = idle.begin();
  while (idle.end() - oldest > max_idle || idle_bytes > max_idle_bytes) {
    idle_bytes -= TensorBytes(*oldest);
    freed.push_back(std::move(*oldest));
    ++oldest;
  }
  idle.erase(idle.begin(), oldest);
}

}  // namespace

InferBufferPool::InferBufferPool(int max_idle, size_t max_idle_bytes)
    : max_idle_(max_idle), max_idle_bytes_(max_idle_bytes) {}

std::unique_ptr<inference::ModelInferRequest> InferBufferPool::TakeRequest() {
  {
    absl::MutexLock lock(&mu_);
    if (!requests_.empty()) {
      std::unique_ptr<inference::ModelInferRequest> request = std::move(requests_.back());
      requests_.pop_back();
      request_bytes_ -= TensorBytes(request);
      return request;
    }
  }
  return std::make_unique<inference::ModelInferRequest>();
}

void InferBufferPool::GiveRequest(std::unique_ptr<inference::ModelInferRequest> request) {
  if (request == nullptr) return;
  std::vector<std::unique_ptr<inference::ModelInferRequest>> freed;  // after the lock
  absl::MutexLock lock(&mu_);
  KeepNewest(std::move(request), max_idle_, max_idle_bytes_, requests_, request_bytes_, freed);
}

OutputBuffer InferBufferPool::TakeOutput(size_t bytes) {
  {
    absl::MutexLock lock(&mu_);
    // The smallest idle buffer that fits, so large ones stay for large answers.
    auto best = outputs_.end();
    for (auto it = outputs_.begin(); it != outputs_.end(); ++it) {
      if (it->capacity >= bytes && (best == outputs_.end() || it->capacity < best->capacity)) {
        best = it;
      }
    }
    if (best != outputs_.end()) {
      OutputBuffer buffer = std::move(*best);
      outputs_.erase(best);
      output_bytes_ -= buffer.capacity;
      return buffer;
    }
  }
  return NewOutput(bytes);
}

void InferBufferPool::GiveOutput(OutputBuffer buffer) {
  if (buffer.data == nullptr) return;
  std::vector<OutputBuffer> freed;  // after the lock
  absl::MutexLock lock(&mu_);
  KeepNewest(std::move(buffer), max_idle_, max_idle_bytes_, outputs_, output_bytes_, freed);
}

void InferBufferPool::Warm(size_t request_bytes, size_t output_bytes, int count) {
  std::vector<std::unique_ptr<inference::ModelInferRequest>> requests;
  std::vector<OutputBuffer> outputs;
  for (int i = 0; i < count; ++i) {
    std::unique_ptr<inference::ModelInferRequest> request = TakeRequest();
    request->Clear();  // keeps its strings, emptied, for the next parse
    std::string* raw = request->add_raw_input_contents();             // one, counted by GiveRequest
    if (raw->capacity() < request_bytes) raw->resize(request_bytes);  // writes every page
    requests.push_back(std::move(request));
    OutputBuffer output = TakeOutput(output_bytes);
    std::memset(output.data.get(), 0, output.capacity);
    outputs.push_back(std::move(output));
  }
  for (auto& request : requests) GiveRequest(std::move(request));
  for (OutputBuffer& output : outputs) GiveOutput(std::move(output));
  // gRPC reads a request into slices it mallocs: map that much of the heap
  // and free it, so those reads land on mapped pages.
  if (char* heap = static_cast<char*>(std::malloc(request_bytes))) {
    for (size_t at = 0; at < request_bytes; at += 4096) static_cast<volatile char*>(heap)[at] = 0;
    std::free(heap);
  }
}

int InferBufferPool::IdleRequests() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(requests_.size());
}

int InferBufferPool::IdleOutputs() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(outputs_.size());
}

absl::Status ParseModelInferBytes(const grpc::ByteBuffer& bytes,
                                  inference::ModelInferRequest* request) {
  // gRPC's reader takes a mutable buffer but only reads it.
  grpc::ProtoBufferReader reader(const_cast<grpc::ByteBuffer*>(&bytes));
  google::protobuf::io::CodedInputStream decoder(&reader);
  decoder.SetTotalBytesLimit(INT_MAX);  // gRPC's receive limit already applied
  if (!request->ParseFromCodedStream(&decoder) || !decoder.ConsumedEntireMessage()) {
    return absl::InvalidArgumentError("the request is not a valid inference.ModelInferRequest");
  }
  return absl::OkStatus();
}

grpc::ByteBuffer EncodeInferResponse(const inference::ModelInferResponse& header,
                                     OutputBuffer output, size_t output_bytes,
                                     std::shared_ptr<InferBufferPool> pool) {
  std::string head = header.SerializeAsString();
  if (output.data == nullptr) {
    grpc::Slice slice(head);
    return grpc::ByteBuffer(&slice, 1);
  }
  // raw_output_contents[0]'s key and length, then the bytes themselves.
  uint8_t prefix[2 * 10];
  uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      (Response::kRawOutputContentsFieldNumber << 3) | 2, prefix);  // 2: length-delimited
  end = google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(output_bytes, end);
  head.append(reinterpret_cast<const char*>(prefix), static_cast<size_t>(end - prefix));
  char* data = output.data.get();
  auto* lent = new Lent{std::move(pool), std::move(output)};
  grpc::Slice slices[2] = {grpc::Slice(head), grpc::Slice(data, output_bytes, GiveBack, lent)};
  return grpc::ByteBuffer(slices, 2);
}

}  // namespace sepconv
