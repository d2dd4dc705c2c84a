#include "client/bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/metrics_scrape.h"

namespace sepconv::client {
namespace {

using Clock = std::chrono::steady_clock;

// What a step sends: one request for every send, or (exclusive) one request
// per slot, each in flight at most once at a time.
struct Requests {
  std::vector<std::shared_ptr<const PreparedRequest>> requests;
  bool exclusive = false;
};

constexpr absl::Duration kScrapeTimeout = absl::Seconds(5);
// The first request also connects (a TLS handshake, a busy server).
constexpr absl::Duration kProbeTimeout = absl::Seconds(10);

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Window {
  std::vector<double> latencies_ms;  // successes only
  double seconds = 0;

  double Throughput() const { return seconds > 0 ? latencies_ms.size() / seconds : 0; }
  double MeanLatency() const {
    double sum = 0;
    for (double v : latencies_ms) sum += v;
    return latencies_ms.empty() ? 0 : sum / latencies_ms.size();
  }
};

// True when every window is within `tolerance` of the group's mean on
// throughput and on mean latency.
bool Stable(const std::vector<Window>& windows, double tolerance) {
  double tp = 0, lat = 0;
  for (const Window& w : windows) {
    if (w.latencies_ms.empty()) return false;
    tp += w.Throughput();
    lat += w.MeanLatency();
  }
  tp /= windows.size();
  lat /= windows.size();
  for (const Window& w : windows) {
    if (std::abs(w.Throughput() - tp) > tolerance * tp) return false;
    if (std::abs(w.MeanLatency() - lat) > tolerance * lat) return false;
  }
  return true;
}

// What a step shares with the callbacks of its requests. The step and every
// callback hold it by shared_ptr, so it lives until the last of them lets go:
// a callback may still be unlocking `mu` after the step saw its request
// complete, or (after a drain timeout) still be pending when the step has
// returned. Callbacks touch nothing else of the step; they use `clients` only
// while `running`, and a Client outlives its calls (its destructor cancels
// and waits for them).
struct StepState {
  StepState(const std::vector<Client*>& clients, const std::vector<InferStream*>& streams,
            const Requests& requests, absl::Duration request_timeout, bool closed)
      : clients(clients),
        streams(streams),
        requests(requests.requests),
        exclusive(requests.exclusive),
        request_timeout(request_timeout),
        closed(closed) {
    if (exclusive) {
      for (int i = static_cast<int>(this->requests.size()) - 1; i >= 0; --i) free.push_back(i);
    }
  }

  // A slot (index into `requests`) for a request about to be sent, or -1
  // when every exclusive one is in flight.
  int TakeSlot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!exclusive) return 0;
    if (free.empty()) return -1;
    const int slot = free.back();
    free.pop_back();
    return slot;
  }
  bool HasSlot() const ABSL_SHARED_LOCKS_REQUIRED(mu) { return !exclusive || !free.empty(); }
  void ReturnSlot(int slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (exclusive) free.push_back(slot);
  }

  const std::vector<Client*> clients;
  // Empty: unary calls. The streams are closed (each waits for its
  // callbacks) before RunBench lets them go.
  const std::vector<InferStream*> streams;
  const std::vector<std::shared_ptr<const PreparedRequest>> requests;
  // Each request in flight at most once at a time (else requests[0] for all).
  const bool exclusive;
  const absl::Duration request_timeout;
  const bool closed;
  std::atomic<uint64_t> next_client{0};

  absl::Mutex mu;
  std::vector<int> free ABSL_GUARDED_BY(mu);  // exclusive slots not in flight
  bool running ABSL_GUARDED_BY(mu) = true;
  int64_t in_flight ABSL_GUARDED_BY(mu) = 0;
  int64_t completed ABSL_GUARDED_BY(mu) = 0;
  std::vector<double> latencies ABSL_GUARDED_BY(mu);
  std::map<std::string, int64_t> errors ABSL_GUARDED_BY(mu);
  std::string first_error ABSL_GUARDED_BY(mu);
  Clock::time_point window_start ABSL_GUARDED_BY(mu);
};

void OnDone(const std::shared_ptr<StepState>& state, Clock::time_point intended, int slot,
            const AsyncInferResult& r);

// Sends the request of `slot`, already counted in state->in_flight.
void Send(const std::shared_ptr<StepState>& state, Clock::time_point intended, int slot) {
  const std::shared_ptr<const PreparedRequest>& request = state->requests[slot];
  auto done = [state, intended, slot](AsyncInferResult r) { OnDone(state, intended, slot, r); };
  if (!state->streams.empty()) {
    InferStream* stream = state->streams[state->next_client.fetch_add(1) % state->streams.size()];
    stream->Send(request, std::move(done));
    return;
  }
  Client* client = state->clients[state->next_client.fetch_add(1) % state->clients.size()];
  client->InferAsync(request, state->request_timeout, std::move(done));
}

void OnDone(const std::shared_ptr<StepState>& state, Clock::time_point intended, int slot,
            const AsyncInferResult& r) {
  const double latency = Ms(Clock::now() - intended);
  bool again = false;
  {
    absl::MutexLock lock(&state->mu);
    ++state->completed;
    if (r.status.ok()) {
      state->latencies.push_back(latency);
    } else {
      ++state->errors[absl::StatusCodeToString(r.status.code())];
      if (state->first_error.empty()) state->first_error = r.status.ToString();
    }
    // Closed loop: the slot passes straight to the next request.
    again = state->closed && state->running;
    if (!again) {
      --state->in_flight;
      state->ReturnSlot(slot);
    }
  }
  if (again) Send(state, Clock::now(), slot);
}

// Sends a request on a free slot; the caller made sure there is one.
void Issue(const std::shared_ptr<StepState>& state, Clock::time_point intended) {
  int slot = 0;
  {
    absl::MutexLock lock(&state->mu);
    ++state->in_flight;
    slot = state->TakeSlot();
  }
  Send(state, intended, slot);
}

// One step of the sweep: a load level held until stable, then drained.
class Step {
 public:
  Step(const std::vector<Client*>& clients, const std::vector<InferStream*>& streams,
       const Requests& requests, const BenchOptions& options, bool closed, double load)
      : state_(std::make_shared<StepState>(clients, streams, requests, options.request_timeout,
                                           closed)),
        options_(options),
        closed_(closed),
        load_(load) {}

  absl::StatusOr<StepResult> Run() {
    StepResult result;
    result.mode = closed_ ? "concurrency" : "rate";
    result.load = load_;
    ServerCounters before;
    if (!options_.metrics_url.empty()) {
      absl::StatusOr<ServerCounters> scraped = Scrape();
      if (!scraped.ok()) return scraped.status();
      before = *scraped;
    }
    std::thread generator = StartLoad();
    const std::vector<Window> windows = MeasureUntilStable(&result);
    if (absl::Status s = StopAndDrain(generator, &result); !s.ok()) return s;
    Summarize(windows, &result);
    if (!options_.metrics_url.empty()) {
      if (absl::Status s = AddServerSplit(before, &result); !s.ok()) return s;
    }
    return result;
  }

 private:
  // Starts the load: the closed loop's requests, or the open loop's
  // generator thread (returned; not joinable for a closed loop).
  std::thread StartLoad() {
    {
      absl::MutexLock lock(&state_->mu);
      state_->window_start = Clock::now();
    }
    if (!closed_) return std::thread([this] { Generate(); });
    for (int i = 0; i < static_cast<int>(load_); ++i) Issue(state_, Clock::now());
    return std::thread();
  }

  // After the warm-up, measures windows until the last options_.stable_windows
  // agree (result->stable) or options_.max_windows have passed.
  std::vector<Window> MeasureUntilStable(StepResult* result) {
    absl::SleepFor(options_.warmup);
    TakeWindow();
    std::vector<Window> windows;
    const int k = std::max(1, options_.stable_windows);
    while (static_cast<int>(windows.size()) < std::max(1, options_.max_windows)) {
      absl::SleepFor(options_.window);
      windows.push_back(TakeWindow());
      const int n = static_cast<int>(windows.size());
      std::vector<Window> last(windows.end() - std::min(n, k), windows.end());
      result->stable = n >= k && Stable(last, options_.stability);
      if (options_.progress) {
        const Window& w = windows.back();
        options_.progress(absl::StrFormat("%s %g: window %d/%d  %.1f infer/s  mean %.2f ms%s",
                                          result->mode, load_, n, options_.max_windows,
                                          w.Throughput(), w.MeanLatency(),
                                          result->stable ? "  stable" : ""));
      }
      if (result->stable) break;
    }
    return windows;
  }

  // How long a step waits for its last requests: --drain_timeout_ms, else
  // the request timeout (30 s without one) and 5 s more.
  absl::Duration DrainTimeout() const {
    if (options_.drain_timeout > absl::ZeroDuration()) return options_.drain_timeout;
    return (options_.request_timeout > absl::ZeroDuration() ? options_.request_timeout
                                                            : absl::Seconds(30)) +
           absl::Seconds(5);
  }

  // Stops sending, joins `generator` and waits for the requests in flight;
  // then the step's counts go into `result`. DEADLINE_EXCEEDED if some are
  // still in flight after DrainTimeout.
  absl::Status StopAndDrain(std::thread& generator, StepResult* result) {
    {
      absl::MutexLock lock(&state_->mu);
      state_->running = false;
    }
    if (generator.joinable()) generator.join();
    // Every request carries its deadline, so gRPC ends each one by then; this
    // wait is only a backstop. Requests still pending after it keep the
    // shared state alive, and the Clients' destructors cancel them.
    StepState& s = *state_;
    absl::MutexLock lock(&s.mu);
    auto drained = [&s]() ABSL_SHARED_LOCKS_REQUIRED(s.mu) { return s.in_flight == 0; };
    if (!s.mu.AwaitWithTimeout(absl::Condition(&drained), DrainTimeout())) {
      return absl::DeadlineExceededError(
          absl::StrCat(s.in_flight, " requests still in flight after the step; giving up"));
    }
    result->requests = s.completed;
    result->errors = s.errors;
    result->first_error = s.first_error;
    return absl::OkStatus();
  }

  // The server's queue/compute split over the step, from its counters then
  // and `before` it.
  absl::Status AddServerSplit(const ServerCounters& before, StepResult* result) const {
    absl::StatusOr<ServerCounters> after = Scrape();
    // The server may count a request just after its response left: wait
    // (boundedly) for its counter to catch up with ours.
    for (int i = 0; i < 40 && after.ok() && after->requests - before.requests < result->requests;
         ++i) {
      absl::SleepFor(absl::Milliseconds(25));
      after = Scrape();
    }
    if (!after.ok()) return after.status();
    result->has_server = true;
    result->server_requests = after->requests - before.requests;
    const double queued = after->queue_count - before.queue_count;
    const double executions = after->compute_count - before.compute_count;
    if (queued > 0) result->server_queue_ms = 1e3 * (after->queue_sum - before.queue_sum) / queued;
    if (executions > 0) {
      result->server_compute_ms = 1e3 * (after->compute_sum - before.compute_sum) / executions;
    }
    const double batches = after->executions - before.executions;
    if (batches > 0) result->server_batch = (after->samples - before.samples) / batches;
    return absl::OkStatus();
  }

  absl::StatusOr<ServerCounters> Scrape() const {
    absl::StatusOr<ServerCounters> counters =
        ScrapeCounters(options_.metrics_url, options_.model, options_.version, kScrapeTimeout);
    if (!counters.ok()) {
      return absl::Status(counters.status().code(),
                          absl::StrCat("--metrics_url: ", counters.status().message()));
    }
    if (!counters->found) {
      return absl::NotFoundError(absl::StrCat("--metrics_url: ", options_.metrics_url,
                                              " has no sepconv_ series for model '", options_.model,
                                              "'"));
    }
    return counters;
  }

  // Open loop: sends at the scheduled times until the step stops.
  void Generate() {
    StepState& s = *state_;
    std::mt19937_64 rng(options_.seed);
    std::exponential_distribution<double> poisson(load_);
    const auto constant = std::chrono::duration<double>(1.0 / load_);
    Clock::time_point next = Clock::now();
    while (true) {
      const Clock::time_point now = Clock::now();
      if (next > now) {
        std::this_thread::sleep_until(std::min(next, now + std::chrono::milliseconds(50)));
        absl::MutexLock lock(&s.mu);
        if (!s.running) return;
        continue;
      }
      {
        absl::MutexLock lock(&s.mu);
        auto room = [&]() ABSL_SHARED_LOCKS_REQUIRED(s.mu) {
          return !s.running || (s.in_flight < options_.max_in_flight && s.HasSlot());
        };
        s.mu.AwaitWithTimeout(absl::Condition(&room), absl::Milliseconds(100));
        if (!s.running) return;
        if (s.in_flight >= options_.max_in_flight || !s.HasSlot()) continue;
      }
      Issue(state_, next);
      const double gap = options_.arrival == Arrival::kPoisson ? poisson(rng) : constant.count();
      next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap));
    }
  }

  Window TakeWindow() {
    Window w;
    absl::MutexLock lock(&state_->mu);
    const Clock::time_point now = Clock::now();
    w.seconds = std::chrono::duration<double>(now - state_->window_start).count();
    w.latencies_ms.swap(state_->latencies);
    state_->window_start = now;
    return w;
  }

  void Summarize(const std::vector<Window>& windows, StepResult* result) const {
    result->windows = static_cast<int>(windows.size());
    const size_t k =
        std::min(windows.size(), static_cast<size_t>(std::max(1, options_.stable_windows)));
    std::vector<double> all;
    double seconds = 0;
    for (size_t i = windows.size() - k; i < windows.size(); ++i) {
      all.insert(all.end(), windows[i].latencies_ms.begin(), windows[i].latencies_ms.end());
      seconds += windows[i].seconds;
    }
    std::sort(all.begin(), all.end());
    result->measured = static_cast<int64_t>(all.size());
    result->infer_per_sec = seconds > 0 ? all.size() / seconds : 0;
    result->samples_per_sec = result->infer_per_sec * state_->requests[0]->samples();
    double sum = 0;
    for (double v : all) sum += v;
    result->mean_ms = all.empty() ? 0 : sum / all.size();
    result->p50_ms = Percentile(all, 50);
    result->p90_ms = Percentile(all, 90);
    result->p95_ms = Percentile(all, 95);
    result->p99_ms = Percentile(all, 99);
    result->max_ms = all.empty() ? 0 : all.back();
  }

  const std::shared_ptr<StepState> state_;
  const BenchOptions& options_;
  const bool closed_;
  const double load_;
};

// The first request's outcome, shared with its callback (which may run after
// Probe gave up waiting).
struct ProbeState {
  absl::Notification done;
  absl::Status status;
};

absl::Status Probe(Client* client, std::shared_ptr<const PreparedRequest> request,
                   absl::Duration timeout) {
  auto state = std::make_shared<ProbeState>();
  timeout = std::max(timeout, kProbeTimeout);
  client->InferAsync(std::move(request), timeout, [state](AsyncInferResult r) {
    state->status = r.status;
    state->done.Notify();
  });
  // The call carries its own deadline; this is only a backstop.
  if (!state->done.WaitForNotificationWithTimeout(timeout + absl::Seconds(10))) {
    return absl::DeadlineExceededError("the first request never completed");
  }
  return state->status;
}

}  // namespace

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(p / 100.0 * sorted.size());
  const size_t index = static_cast<size_t>(std::clamp(rank, 1.0, double(sorted.size()))) - 1;
  return sorted[index];
}

namespace {

// INVALID_ARGUMENT for what no step could run with.
absl::Status CheckBench(const std::vector<Client*>& clients, const Requests& requests,
                        const BenchOptions& options) {
  if (clients.empty()) return absl::InvalidArgumentError("no clients");
  if (requests.requests.empty()) return absl::InvalidArgumentError("no requests");
  for (const auto& r : requests.requests) {
    if (r == nullptr) return absl::InvalidArgumentError("a null request");
  }
  if (requests.exclusive && options.rates.empty()) {
    for (int c : options.concurrency) {
      if (c > static_cast<int>(requests.requests.size())) {
        return absl::InvalidArgumentError(absl::StrCat("concurrency ", c, " needs ", c,
                                                       " requests that may be in flight at once, ",
                                                       "got ", requests.requests.size()));
      }
    }
  }
  for (int c : options.concurrency) {
    if (c <= 0)
      return absl::InvalidArgumentError(absl::StrCat("concurrency ", c, " is not positive"));
  }
  for (double r : options.rates) {
    if (!(r > 0)) return absl::InvalidArgumentError(absl::StrCat("rate ", r, " is not positive"));
  }
  if (options.window <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the window must be positive");
  }
  return absl::OkStatus();
}

// One step at `load`; with options.streaming over streams of its own, one
// per connection, fresh for each step so that no stream outlives a server's
// connection age.
absl::StatusOr<StepResult> RunStep(const std::vector<Client*>& clients, const Requests& requests,
                                   const BenchOptions& options, bool closed, double load) {
  std::vector<std::unique_ptr<InferStream>> owned_streams;
  std::vector<InferStream*> streams;
  if (options.streaming) {
    for (Client* client : clients) {
      absl::StatusOr<std::unique_ptr<InferStream>> stream = client->OpenStream();
      if (!stream.ok()) return stream.status();
      streams.push_back(stream->get());
      owned_streams.push_back(*std::move(stream));
    }
  }
  Step step(clients, streams, requests, options, closed, load);
  absl::StatusOr<StepResult> result = step.Run();
  // Closed (each waits for its callbacks) before the streams go.
  for (const std::unique_ptr<InferStream>& stream : owned_streams) {
    absl::Status closed_status =
        stream->Close(result.ok() ? absl::Seconds(30) : absl::ZeroDuration());
    if (result.ok() && !closed_status.ok()) {
      result = absl::Status(closed_status.code(),
                            absl::StrCat("ModelStreamInfer stream: ", closed_status.message()));
    }
  }
  return result;
}

absl::StatusOr<std::vector<StepResult>> RunSteps(const std::vector<Client*>& clients,
                                                 const Requests& requests,
                                                 const BenchOptions& options) {
  if (absl::Status s = CheckBench(clients, requests, options); !s.ok()) return s;
  if (absl::Status s = Probe(clients[0], requests.requests[0], options.request_timeout); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("the first request failed: ", s.message()));
  }
  std::vector<StepResult> results;
  const bool closed = options.rates.empty();
  const size_t steps = closed ? options.concurrency.size() : options.rates.size();
  for (size_t i = 0; i < steps; ++i) {
    absl::StatusOr<StepResult> result = RunStep(clients, requests, options, closed,
                                                closed ? options.concurrency[i] : options.rates[i]);
    if (!result.ok()) return result.status();
    results.push_back(*std::move(result));
  }
  return results;
}

}  // namespace

absl::StatusOr<std::vector<StepResult>> RunBench(const std::vector<Client*>& clients,
                                                 std::shared_ptr<const PreparedRequest> request,
                                                 const BenchOptions& options) {
  return RunSteps(clients, Requests{{std::move(request)}, /*exclusive=*/false}, options);
}

absl::StatusOr<std::vector<StepResult>> RunBench(
    const std::vector<Client*>& clients,
    std::vector<std::shared_ptr<const PreparedRequest>> exclusive_requests,
    const BenchOptions& options) {
  return RunSteps(clients, Requests{std::move(exclusive_requests), /*exclusive=*/true}, options);
}

}  // namespace sepconv::client
