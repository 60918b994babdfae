// Helpers for the net tests: a raw blocking TCP client (to send exactly the bytes a test
// needs, including malformed and slow requests), a minimal HTTP/1.1 response reader, and a
// server fixture on an ephemeral loopback port.
//
// Waits are bounded by kHangGuard only so that a broken build fails instead of hanging; tests
// never assert on how long something took.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "net/http_headers.h"
#include "net/http_server.h"

namespace spillway::net::testing {

inline constexpr std::chrono::milliseconds kHangGuard{10'000};

// Polls `condition` until it holds or kHangGuard passes; returns its last value.
inline bool wait_until(const std::function<bool()>& condition) {
  const auto give_up = std::chrono::steady_clock::now() + kHangGuard;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

class RawSocket {
 public:
  RawSocket() = default;
  explicit RawSocket(std::uint16_t port, int receive_buffer_bytes = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer_bytes > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof receive_buffer_bytes);
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawSocket() { close(); }
  RawSocket(RawSocket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  RawSocket& operator=(RawSocket&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }

  [[nodiscard]] bool connected() const { return fd_ >= 0; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Appends what arrives to buffer(); false on EOF, error or the hang guard.
  bool read_more() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kHangGuard.count())) <= 0) return false;
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  // Reads until `marker` is in buffer(); false if the connection ended first.
  bool read_until(std::string_view marker) {
    while (buffer_.find(marker) == std::string::npos) {
      if (!read_more()) return false;
    }
    return true;
  }

  // True once the peer closed (EOF or reset), reading and keeping whatever came before.
  bool wait_closed() {
    while (read_more()) {
    }
    return eof_;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string& buffer() { return buffer_; }

 private:
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

struct ParsedResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;
  bool chunked = false;
};

// Parses one response from the front of `data` and removes it. `head_only`: a response to
// HEAD (no body). Returns nullopt if `data` does not hold a whole response yet.
inline std::optional<ParsedResponse> take_response(std::string& data, bool head_only = false) {
  const std::size_t head_end = data.find("\r\n\r\n");
  if (head_end == std::string::npos) return std::nullopt;
  ParsedResponse r;
  std::string_view head(data.data(), head_end);
  const std::size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  r.status = std::stoi(std::string(status_line.substr(9, 3)));
  std::string_view fields = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!fields.empty()) {
    const std::size_t eol = fields.find("\r\n");
    const std::string_view line = fields.substr(0, eol);
    const std::size_t colon = line.find(':');
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    r.headers.add(std::string(line.substr(0, colon)), std::string(value));
    if (eol == std::string_view::npos) break;
    fields.remove_prefix(eol + 2);
  }
  std::size_t pos = head_end + 4;
  const auto te = r.headers.get("Transfer-Encoding");
  if (head_only || r.status == 204 || r.status == 304 || r.status / 100 == 1) {
    data.erase(0, pos);
    return r;
  }
  if (te && *te == "chunked") {
    r.chunked = true;
    while (true) {
      const std::size_t size_end = data.find("\r\n", pos);
      if (size_end == std::string::npos) return std::nullopt;
      const std::size_t size = std::stoul(data.substr(pos, size_end - pos), nullptr, 16);
      if (data.size() < size_end + 2 + size + 2) return std::nullopt;
      r.body.append(data, size_end + 2, size);
      pos = size_end + 2 + size + 2;
      if (size == 0) break;
    }
  } else if (const auto cl = r.headers.get("Content-Length")) {
    const std::size_t size = std::stoul(std::string(*cl));
    if (data.size() < pos + size) return std::nullopt;
    r.body = data.substr(pos, size);
    pos += size;
  }
  data.erase(0, pos);
  return r;
}

// Reads from `socket` until one whole response is buffered, then takes it.
inline std::optional<ParsedResponse> read_response(RawSocket& socket, bool head_only = false) {
  while (true) {
    if (auto r = take_response(socket.buffer(), head_only)) return r;
    if (!socket.read_more()) return take_response(socket.buffer(), head_only);
  }
}

inline std::string simple_get(std::string_view target, std::string_view extra_headers = "") {
  return std::string("GET ") + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" +
         std::string(extra_headers) + "\r\n";
}

// Options for tests: loopback, ephemeral port, short timeouts where a test needs them.
inline HttpServerOptions test_options() {
  HttpServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  return o;
}

inline std::unique_ptr<HttpServer> start_server(Router router,
                                                HttpServerOptions options = test_options()) {
  auto server = std::make_unique<HttpServer>(std::move(options), std::move(router));
  const Status status = server->start();
  EXPECT_TRUE(status.ok()) << status.error().to_string();
  return server;
}

// A listening socket on an ephemeral loopback port that the test drives by hand.
class RawListener {
 public:
  RawListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~RawListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  // Accepts one connection; returns its fd (owned by the caller).
  [[nodiscard]] int accept_one() const { return ::accept(fd_, nullptr, nullptr); }
  void close() {
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace spillway::net::testing
