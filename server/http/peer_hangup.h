#ifndef SEPCONV_SERVER_HTTP_PEER_HANGUP_H_
#define SEPCONV_SERVER_HTTP_PEER_HANGUP_H_

// Tells a REST handler that its client hung up while the request waits, so
// that a queued request is cancelled as a gRPC one is (dropped from the
// queue, counted CANCELLED) instead of computed for nobody.
//
// cpp-httplib (0.11) gives a handler no access to its connection's socket;
// PeerHangUp finds it among the process's descriptors by the connection's
// addresses (which the handler has) and remembers it per thread, as one
// httplib thread serves one connection at a time. Thread-compatible.

#include <string>

namespace sepconv {

class PeerHangUp {
 public:
  // The connection from `remote_addr`:`remote_port` to
  // `local_addr`:`local_port` (as httplib prints them: numeric hosts).
  PeerHangUp(std::string remote_addr, int remote_port, std::string local_addr, int local_port);

  // True once the client has closed (or reset) its end of the connection; a
  // client that only shuts its sending side while it waits counts as gone,
  // as it does for nginx. False while it is open, and when the socket cannot
  // be found (then the request simply runs to its end). Never blocks.
  bool HungUp();

 private:
  // The connection's descriptor, or -1.
  int Find() const;
  bool Matches(int fd) const;

  const std::string remote_addr_;
  const int remote_port_;
  const std::string local_addr_;
  const int local_port_;
  int fd_ = -2;  // -2: not looked for yet
};

}  // namespace sepconv

#endif  // SEPCONV_SERVER_HTTP_PEER_HANGUP_H_
