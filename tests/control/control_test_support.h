// Helpers for the control tests: the spillway binary and model, bounded waits, HTTP calls.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "net/http_client.h"

#include "test_support.h"

namespace spillway::control::testing {

// Every wait in these tests is bounded by this; reaching it is a failure, never a pass.
inline constexpr std::chrono::seconds kWaitLimit{60};

inline std::string spillway_bin() {
  return SPILLWAY_BIN;
}
inline std::string model_path() {
  return spillway::testing::shared_path("models/stories260K.gguf");
}

// Polls `done` every 20 ms until it holds (true) or kWaitLimit passes (false).
inline bool wait_until(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kWaitLimit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// Whether a process with this pid is alive: it exists and is not a zombie (an orphan's zombie
// may linger in a container whose init does not reap).
inline bool process_exists(pid_t pid) {
  if (pid <= 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

inline net::HttpClient client_for(int port) {
  net::HttpClientOptions o;
  o.port = port;
  o.connect_timeout = std::chrono::milliseconds(5'000);
  o.io_timeout = std::chrono::milliseconds(30'000);
  o.request_timeout = std::chrono::milliseconds(60'000);
  return net::HttpClient(o);
}

// "http://127.0.0.1:PORT" → PORT; 0 when malformed.
inline int port_of(const std::string& url) {
  const auto colon = url.rfind(':');
  if (colon == std::string::npos) return 0;
  return std::atoi(url.c_str() + colon + 1);
}

}  // namespace spillway::control::testing
