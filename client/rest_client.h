#ifndef SEPCONV_CLIENT_REST_CLIENT_H_
#define SEPCONV_CLIENT_REST_CLIENT_H_

// The Client over KServe v2 HTTP/REST and Triton's HTTP extensions (config,
// statistics, repository, system shared memory, binary tensor data), made by
// Client::Create with ClientOptions::protocol == Protocol::kHttp; it answers
// as the gRPC client does, call for call (see client.h for where it differs).
//
// The target is one "host:port" (the server's --http_port, 8000 by
// default). Connections are HTTP/1.1 keep-alive, one request at a time each:
// blocking calls take one from an idle pool (opening one when none is idle)
// and put it back; every InferAsync call in flight holds a worker thread
// with a connection of its own (internal/http_workers.h). A call that gets
// no HTTP answer (refused, reset, a kept-alive connection the server had
// closed) is sent again, up to ClientOptions::max_attempts tries within its
// deadline, from 50 ms backoff; an HTTP error answer is never resent. The
// deadline bounds connecting, sending and each wait for the answer (the
// server is not told of it). Thread-safe.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"

namespace sepconv::client {

// A REST client of `address` ("host:port" or "[v6]:port"). Fails on an
// address of another form or unusable options (see Client::Create).
absl::StatusOr<std::unique_ptr<Client>> CreateRestClient(const std::string& address,
                                                         const ClientOptions& options);

}  // namespace sepconv::client

#endif  // SEPCONV_CLIENT_REST_CLIENT_H_
