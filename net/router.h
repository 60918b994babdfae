// Maps (method, path) to a handler. Three kinds of route, tried in this order:
//   exact    "/v1/models"                    the path must be equal;
//   pattern  "/v1/fleet/pools/{name}/drain"  each {name} matches one non-empty path segment,
//                                            other segments must be equal; patterns are tried
//                                            in registration order;
//   prefix   add_prefix("/static/")          any path that starts with the prefix; the longest
//                                            matching prefix wins.
// Paths are compared still percent-encoded; {param} values are percent-decoded (a bad escape
// makes the match fail with kBadRequest). A HEAD request falls back to the GET route. When the
// path matches routes only under other methods, the result is kMethodNotAllowed with the Allow
// list.
//
// Thread-safety: add routes before handing the router to a server; `match` is const and safe
// for concurrent use.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

#include "net/http_request.h"
#include "net/response_writer.h"

namespace spillway::net {

// Runs on an I/O thread: it must not block. It may complete `writer` before it returns or hand
// it (copyable) to any other thread. Exceptions it throws become a 500 response.
using HttpHandler = std::function<void(HttpRequest request, ResponseWriter writer)>;

class Router {
 public:
  // Errors: kInvalidArgument for a bad method token or pattern (must start with '/', no '?' or
  // '#', a '{' only as a whole "{name}" segment with name [A-Za-z0-9_]+, names unique);
  // kAlreadyExists when the same method and pattern are already registered.
  Status add(std::string_view method, std::string_view pattern, HttpHandler handler);
  // Errors: as for add; the prefix must start with '/' and may not contain '{'.
  Status add_prefix(std::string_view method, std::string_view prefix, HttpHandler handler);

  struct Match {
    enum class Kind { kFound, kNotFound, kMethodNotAllowed, kBadRequest };
    Kind kind = Kind::kNotFound;
    const HttpHandler* handler = nullptr;  // kFound: valid while the router lives.
    std::vector<std::pair<std::string, std::string>> params;  // kFound: decoded {param} values.
    std::string allow;                                        // kMethodNotAllowed: "GET, HEAD".
    std::string message;                                      // kBadRequest: what was wrong.
  };
  [[nodiscard]] Match match(std::string_view method, std::string_view path) const;

  [[nodiscard]] std::size_t size() const { return routes_.size(); }

 private:
  enum class RouteKind { kExact, kPattern, kPrefix };
  struct Route {
    RouteKind kind;
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // kPattern: literal segments, or "{name}".
    HttpHandler handler;
  };

  Status add_route(RouteKind kind, std::string_view method, std::string_view pattern,
                   HttpHandler handler);
  // Whether `route` matches `path`; fills `params` (raw, still encoded) for patterns.
  [[nodiscard]] static bool path_matches(const Route& route, std::string_view path,
                                         const std::vector<std::string_view>& path_segments,
                                         std::vector<std::pair<std::string, std::string>>* params);

  std::vector<Route> routes_;
};

}  // namespace spillway::net
