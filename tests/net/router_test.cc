#include "net/router.h"

#include <gtest/gtest.h>

#include <string>

namespace spillway::net {
namespace {

// A handler that records which route matched, by a name stored in the closure.
HttpHandler named(std::string* out, std::string name) {
  return [out, name](HttpRequest, ResponseWriter) { *out = name; };
}

std::string run(const Router& router, std::string_view method, std::string_view path,
                std::string* seen) {
  Router::Match m = router.match(method, path);
  if (m.kind != Router::Match::Kind::kFound) return "";
  (*m.handler)(HttpRequest{}, ResponseWriter());
  return *seen;
}

TEST(Router, ExactPatternAndPrefixInPriorityOrder) {
  std::string seen;
  Router router;
  ASSERT_TRUE(router.add("GET", "/v1/fleet/pools/default", named(&seen, "exact")).ok());
  ASSERT_TRUE(router.add("GET", "/v1/fleet/pools/{name}", named(&seen, "pattern")).ok());
  ASSERT_TRUE(router.add_prefix("GET", "/v1/", named(&seen, "short-prefix")).ok());
  ASSERT_TRUE(router.add_prefix("GET", "/v1/fleet/", named(&seen, "long-prefix")).ok());

  EXPECT_EQ(run(router, "GET", "/v1/fleet/pools/default", &seen), "exact");
  EXPECT_EQ(run(router, "GET", "/v1/fleet/pools/alpha", &seen), "pattern");
  EXPECT_EQ(run(router, "GET", "/v1/fleet/other", &seen), "long-prefix");
  EXPECT_EQ(run(router, "GET", "/v1/models", &seen), "short-prefix");
  EXPECT_EQ(router.match("GET", "/v2").kind, Router::Match::Kind::kNotFound);
}

TEST(Router, ParamsAreWholeSegmentsAndDecoded) {
  std::string seen;
  Router router;
  ASSERT_TRUE(router.add("POST", "/v1/fleet/pools/{name}/drain", named(&seen, "drain")).ok());
  Router::Match m = router.match("POST", "/v1/fleet/pools/gpu%2Deast/drain");
  ASSERT_EQ(m.kind, Router::Match::Kind::kFound);
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].first, "name");
  EXPECT_EQ(m.params[0].second, "gpu-east");

  EXPECT_EQ(router.match("POST", "/v1/fleet/pools//drain").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(router.match("POST", "/v1/fleet/pools/a/b/drain").kind, Router::Match::Kind::kNotFound);
  EXPECT_EQ(router.match("POST", "/v1/fleet/pools/a/drain/").kind, Router::Match::Kind::kNotFound);
  Router::Match bad = router.match("POST", "/v1/fleet/pools/%zz/drain");
  EXPECT_EQ(bad.kind, Router::Match::Kind::kBadRequest);
  EXPECT_NE(bad.message.find("name"), std::string::npos);
}

TEST(Router, MethodNotAllowedListsMethodsAndHeadFallsBackToGet) {
  std::string seen;
  Router router;
  ASSERT_TRUE(router.add("GET", "/ready", named(&seen, "get")).ok());
  ASSERT_TRUE(router.add("POST", "/ready", named(&seen, "post")).ok());
  EXPECT_EQ(run(router, "HEAD", "/ready", &seen), "get");
  Router::Match m = router.match("DELETE", "/ready");
  EXPECT_EQ(m.kind, Router::Match::Kind::kMethodNotAllowed);
  EXPECT_EQ(m.allow, "GET, HEAD, POST");
}

TEST(Router, ExactRouteWinsWhenRegisteredAfterPatternsAndCarriesNoParams) {
  std::string seen;
  Router router;
  ASSERT_TRUE(router.add("GET", "/pools/{name}", named(&seen, "pattern")).ok());
  ASSERT_TRUE(router.add_prefix("GET", "/pools/", named(&seen, "prefix")).ok());
  ASSERT_TRUE(router.add("POST", "/pools/default", named(&seen, "post")).ok());
  ASSERT_TRUE(router.add("GET", "/pools/default", named(&seen, "exact")).ok());

  Router::Match m = router.match("GET", "/pools/default");
  ASSERT_EQ(m.kind, Router::Match::Kind::kFound);
  EXPECT_TRUE(m.params.empty());
  EXPECT_EQ(run(router, "GET", "/pools/default", &seen), "exact");
  EXPECT_EQ(run(router, "POST", "/pools/default", &seen), "post");
  // HEAD falls back to GET past the pattern that matched first; the pattern's raw value must
  // not leak into the exact route's params.
  Router::Match head = router.match("HEAD", "/pools/default");
  ASSERT_EQ(head.kind, Router::Match::Kind::kFound);
  EXPECT_TRUE(head.params.empty());
  EXPECT_EQ(run(router, "HEAD", "/pools/default", &seen), "exact");
  Router::Match other = router.match("GET", "/pools/alpha");
  ASSERT_EQ(other.kind, Router::Match::Kind::kFound);
  ASSERT_EQ(other.params.size(), 1u);
  EXPECT_EQ(other.params[0].second, "alpha");
  EXPECT_EQ(router.match("DELETE", "/pools/default").allow, "GET, HEAD, POST");
}

TEST(Router, RejectsBadRoutes) {
  Router router;
  auto h = [](HttpRequest, ResponseWriter) {};
  EXPECT_EQ(router.add("GET", "no-slash", h).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(router.add("G T", "/x", h).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(router.add("GET", "/x?y", h).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(router.add("GET", "/a/{b", h).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(router.add("GET", "/a/x{b}", h).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(router.add("GET", "/a/{b-c}", h).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(router.add("GET", "/{a}/{a}", h).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(router.add("GET", "/x", nullptr).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(router.add_prefix("GET", "/{x}/", h).code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(router.add("GET", "/x", h).ok());
  EXPECT_EQ(router.add("GET", "/x", h).code(), ErrorCode::kAlreadyExists);
  EXPECT_TRUE(router.add("POST", "/x", h).ok());
  EXPECT_EQ(router.size(), 2u);
}

}  // namespace
}  // namespace spillway::net
