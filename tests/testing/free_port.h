#ifndef SEPCONV_TESTS_TESTING_FREE_PORT_H_
#define SEPCONV_TESTS_TESTING_FREE_PORT_H_

// The one free-port finder of the tests, and a listening loopback socket for
// fake servers. Thread-safe (LoopbackListener: one owner).

#include <memory>

#include "absl/status/statusor.h"

namespace sepconv::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for
// port 0; another process may take it before the caller binds it).
absl::StatusOr<int> FreePort();

// A TCP socket listening on 127.0.0.1 on a port the kernel picked; it accepts
// nothing by itself (a "silent server" until the owner calls accept(fd())).
// Closed on destruction.
class LoopbackListener {
 public:
  static absl::StatusOr<std::unique_ptr<LoopbackListener>> Open(int backlog = 8);
  ~LoopbackListener();
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;

  int fd() const { return fd_; }
  int port() const { return port_; }

 private:
  LoopbackListener(int fd, int port) : fd_(fd), port_(port) {}
  int fd_;
  int port_;
};

}  // namespace sepconv::testing

#endif  // SEPCONV_TESTS_TESTING_FREE_PORT_H_
