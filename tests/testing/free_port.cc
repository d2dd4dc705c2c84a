#include "tests/testing/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sepconv::testing {
namespace {

// A socket bound to 127.0.0.1 on the kernel's pick of port; sets `port`.
absl::StatusOr<int> BindLoopback(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int error = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("no free port: ", std::strerror(error)));
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

absl::StatusOr<int> FreePort() {
  int port = 0;
  absl::StatusOr<int> fd = BindLoopback(&port);
  if (!fd.ok()) return fd.status();
  close(*fd);
  return port;
}

absl::StatusOr<std::unique_ptr<LoopbackListener>> LoopbackListener::Open(int backlog) {
  int port = 0;
  absl::StatusOr<int> fd = BindLoopback(&port);
  if (!fd.ok()) return fd.status();
  if (listen(*fd, backlog) != 0) {
    const int error = errno;
    close(*fd);
    return absl::InternalError(absl::StrCat("listen: ", std::strerror(error)));
  }
  return std::unique_ptr<LoopbackListener>(new LoopbackListener(*fd, port));
}

LoopbackListener::~LoopbackListener() { close(fd_); }

}  // namespace sepconv::testing
