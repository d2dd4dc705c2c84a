#include "server/http/peer_hangup.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>
#include <utility>

namespace sepconv {
namespace {

// The descriptor that matched last on this thread: an httplib thread keeps
// one connection for all its keep-alive requests.
thread_local int last_found_fd = -1;

int Port(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  }
  return -1;
}

// The numeric host, as httplib prints it (getnameinfo, NI_NUMERICHOST).
std::string Host(const sockaddr_storage& address) {
  char host[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&address), sizeof(address), host, sizeof(host),
                  nullptr, 0, NI_NUMERICHOST) != 0) {
    return "";
  }
  return host;
}

}  // namespace

PeerHangUp::PeerHangUp(std::string remote_addr, int remote_port, std::string local_addr,
                       int local_port)
    : remote_addr_(std::move(remote_addr)),
      remote_port_(remote_port),
      local_addr_(std::move(local_addr)),
      local_port_(local_port) {}

bool PeerHangUp::Matches(int fd) const {
  if (remote_port_ <= 0 || local_port_ <= 0) return false;
  sockaddr_storage peer{};
  socklen_t length = sizeof(peer);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return false;
  if (Port(peer) != remote_port_) return false;
  sockaddr_storage local{};
  length = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) return false;
  if (Port(local) != local_port_) return false;
  return Host(peer) == remote_addr_ && Host(local) == local_addr_;
}

int PeerHangUp::Find() const {
  if (last_found_fd >= 0 && Matches(last_found_fd)) return last_found_fd;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    if (Matches(static_cast<int>(fd))) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  if (found >= 0) last_found_fd = found;
  return found;
}

bool PeerHangUp::HungUp() {
  if (fd_ == -2) fd_ = Find();
  if (fd_ < 0) return false;
  // POLLRDHUP: the client shut its side (FIN); POLLHUP/POLLERR: reset. A
  // pipelined next request (POLLIN) is not a hang-up.
  pollfd watched = {fd_, POLLRDHUP, 0};
  if (poll(&watched, 1, 0) != 1) return false;
  return (watched.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace sepconv
