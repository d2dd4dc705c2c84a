#ifndef SEPCONV_CLIENT_INTERNAL_PREPARED_REQUEST_H_
#define SEPCONV_CLIENT_INTERNAL_PREPARED_REQUEST_H_

// A PreparedRequest back as the implementation that prepared it, checked:
// both clients accept only their own protocol's requests (any Client of that
// protocol may have prepared one: the encoding does not depend on the
// server), and a static_cast would make any other undefined behaviour. And
// the answer for a request refused that way. Thread-safe.

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"

namespace sepconv::client::internal {

// `request` as a T, sharing its ownership; INVALID_ARGUMENT for null or a
// request another implementation (`protocol`'s Client did not) prepared.
template <typename T>
absl::StatusOr<std::shared_ptr<const T>> AsPrepared(std::shared_ptr<const PreparedRequest> request,
                                                    const char* protocol) {
  const auto* own = dynamic_cast<const T*>(request.get());
  if (own == nullptr) {
    return absl::InvalidArgumentError(
        request == nullptr
            ? std::string("no request: give one from Prepare")
            : absl::StrCat("the request was not prepared by a ", protocol,
                           " Client (another protocol's Client prepared it): Prepare it "
                           "with this one"));
  }
  return std::shared_ptr<const T>(std::move(request), own);
}

// Runs `done` at once, on this thread, with `status` and no latency.
inline void FailAtOnce(const std::function<void(AsyncInferResult)>& done, absl::Status status) {
  AsyncInferResult result;
  result.status = std::move(status);
  done(std::move(result));
}

}  // namespace sepconv::client::internal

#endif  // SEPCONV_CLIENT_INTERNAL_PREPARED_REQUEST_H_
