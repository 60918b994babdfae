#include "net/router.h"

#include <algorithm>

#include "net/url.h"

namespace spillway::net {
namespace {

bool is_param_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// "/a/b/" -> {"a", "b", ""}; "/" -> {""}.
std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') return out;
  path.remove_prefix(1);
  while (true) {
    const std::size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool is_param_segment(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

void append_allow(std::string& allow, std::string_view method) {
  std::vector<std::string_view> existing;
  for (std::string_view rest = allow; !rest.empty();) {
    const std::size_t comma = rest.find(", ");
    existing.push_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 2);
  }
  if (std::find(existing.begin(), existing.end(), method) != existing.end()) return;
  if (!allow.empty()) allow += ", ";
  allow += method;
}

}  // namespace

Status Router::add(std::string_view method, std::string_view pattern, HttpHandler handler) {
  const bool has_param = pattern.find('{') != std::string_view::npos;
  return add_route(has_param ? RouteKind::kPattern : RouteKind::kExact, method, pattern,
                   std::move(handler));
}

Status Router::add_prefix(std::string_view method, std::string_view prefix, HttpHandler handler) {
  if (prefix.find('{') != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument, "route prefix '{}' may not contain '{{'",
                      prefix);
  }
  return add_route(RouteKind::kPrefix, method, prefix, std::move(handler));
}

Status Router::add_route(RouteKind kind, std::string_view method, std::string_view pattern,
                         HttpHandler handler) {
  if (!is_valid_header_name(method)) {  // A method is a token, like a header name.
    return make_error(ErrorCode::kInvalidArgument, "route method '{}' is not a valid token",
                      method);
  }
  if (!handler) {
    return make_error(ErrorCode::kInvalidArgument, "route {} {} has no handler", method, pattern);
  }
  if (pattern.empty() || pattern.front() != '/') {
    return make_error(ErrorCode::kInvalidArgument, "route pattern '{}' must start with '/'",
                      pattern);
  }
  if (pattern.find_first_of("?# \t\r\n") != std::string_view::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "route pattern '{}' may not contain '?', '#' or whitespace", pattern);
  }
  Route route{kind, std::string(method), std::string(pattern), {}, std::move(handler)};
  if (kind == RouteKind::kPattern) {
    std::vector<std::string_view> names;
    for (std::string_view segment : split_segments(pattern)) {
      if (segment.find_first_of("{}") != std::string_view::npos) {
        if (!is_param_segment(segment)) {
          return make_error(ErrorCode::kInvalidArgument,
                            "route pattern '{}': '{}' must be a whole segment '{{name}}'", pattern,
                            segment);
        }
        const std::string_view name = segment.substr(1, segment.size() - 2);
        if (!std::all_of(name.begin(), name.end(), is_param_name_char)) {
          return make_error(ErrorCode::kInvalidArgument,
                            "route pattern '{}': parameter name '{}' must be [A-Za-z0-9_]+",
                            pattern, name);
        }
        if (std::find(names.begin(), names.end(), name) != names.end()) {
          return make_error(ErrorCode::kInvalidArgument,
                            "route pattern '{}': parameter '{}' appears twice", pattern, name);
        }
        names.push_back(name);
      }
      route.segments.emplace_back(segment);
    }
  }
  for (const Route& existing : routes_) {
    if (existing.kind == kind && existing.method == method && existing.pattern == pattern) {
      return make_error(ErrorCode::kAlreadyExists, "route {} {} is already registered", method,
                        pattern);
    }
  }
  routes_.push_back(std::move(route));
  return Status::ok_status();
}

bool Router::path_matches(const Route& route, std::string_view path,
                          const std::vector<std::string_view>& path_segments,
                          std::vector<std::pair<std::string, std::string>>* params) {
  switch (route.kind) {
    case RouteKind::kExact:
      return path == route.pattern;
    case RouteKind::kPrefix:
      return path.substr(0, route.pattern.size()) == route.pattern;
    case RouteKind::kPattern:
      break;
  }
  if (path_segments.size() != route.segments.size()) return false;
  params->clear();
  for (std::size_t i = 0; i < path_segments.size(); ++i) {
    const std::string& want = route.segments[i];
    if (is_param_segment(want)) {
      if (path_segments[i].empty()) return false;
      params->emplace_back(want.substr(1, want.size() - 2), std::string(path_segments[i]));
    } else if (path_segments[i] != want) {
      return false;
    }
  }
  return true;
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  // An exact route of the method ranks first whatever else matches, and there is at most one
  // (add_route refuses duplicates): found without splitting the path or copying anything.
  for (const Route& route : routes_) {
    if (route.kind == RouteKind::kExact && route.pattern == path && route.method == method) {
      Match found;
      found.kind = Match::Kind::kFound;
      found.handler = &route.handler;
      return found;
    }
  }
  const std::vector<std::string_view> segments = split_segments(path);
  std::vector<std::pair<std::string, std::string>> params;

  // Best route for each method, by priority: exact, then patterns in order, then the longest
  // prefix.
  const Route* best = nullptr;
  int best_rank = 0;  // 0 exact, 1 pattern, 2 prefix.
  std::size_t best_prefix = 0;
  std::vector<std::pair<std::string, std::string>> best_params;
  std::string allow;
  bool path_known = false;

  auto consider = [&](std::string_view wanted_method) {
    for (const Route& route : routes_) {
      if (!path_matches(route, path, segments, &params)) continue;
      path_known = true;
      if (route.method != wanted_method) continue;
      const int rank = route.kind == RouteKind::kExact     ? 0
                       : route.kind == RouteKind::kPattern ? 1
                                                           : 2;
      const bool better = best == nullptr || rank < best_rank ||
                          (rank == 2 && best_rank == 2 && route.pattern.size() > best_prefix);
      if (better) {
        best = &route;
        best_rank = rank;
        best_prefix = route.pattern.size();
        // Only a pattern fills params; for the others they may hold an earlier route's.
        if (rank == 1) {
          best_params = params;
        } else {
          best_params.clear();
        }
      }
    }
  };
  consider(method);
  if (best == nullptr && method == "HEAD") consider("GET");

  Match result;
  if (best == nullptr) {
    if (!path_known) return result;  // kNotFound
    result.kind = Match::Kind::kMethodNotAllowed;
    for (const Route& route : routes_) {
      if (!path_matches(route, path, segments, &params)) continue;
      append_allow(result.allow, route.method);
      if (route.method == "GET") append_allow(result.allow, "HEAD");
    }
    return result;
  }
  for (auto& [name, raw] : best_params) {
    auto decoded = percent_decode(raw, false);
    if (!decoded.ok()) {
      result.kind = Match::Kind::kBadRequest;
      result.message = fmt::format("path parameter '{}': {}", name, decoded.error().message());
      return result;
    }
    result.params.emplace_back(std::move(name), std::move(decoded).value());
  }
  result.kind = Match::Kind::kFound;
  result.handler = &best->handler;
  return result;
}

}  // namespace spillway::net
