#include "net/sse.h"

#include <gtest/gtest.h>

namespace spillway::net {
namespace {

TEST(Sse, SingleLineData) {
  EXPECT_EQ(format_sse_data(R"({"x":1})"), "data: {\"x\":1}\n\n");
  EXPECT_EQ(format_sse_data("[DONE]"), "data: [DONE]\n\n");
  EXPECT_EQ(format_sse_data(""), "data: \n\n");
}

TEST(Sse, MultiLineDataBecomesSeveralDataLines) {
  EXPECT_EQ(format_sse_data("a\nb\r\nc\rd"), "data: a\ndata: b\ndata: c\ndata: d\n\n");
  EXPECT_EQ(format_sse_data("end\n"), "data: end\ndata: \n\n");
}

TEST(Sse, EventIdRetryAndSanitizing) {
  SseEvent e;
  e.event = "delta";
  e.id = "4\r\n2";
  e.retry_ms = 1500;
  e.data = "x";
  EXPECT_EQ(format_sse_event(e), "event: delta\nid: 42\nretry: 1500\ndata: x\n\n");
  EXPECT_EQ(format_sse_comment("keep-alive"), ": keep-alive\n\n");
}

TEST(Sse, ResponseHeaders) {
  const HttpHeaders h = sse_response_headers();
  EXPECT_EQ(h.get("content-type"), "text/event-stream");
  EXPECT_EQ(h.get("Cache-Control"), "no-cache");
  EXPECT_EQ(h.get("Connection"), "keep-alive");
  EXPECT_EQ(h.get("X-Accel-Buffering"), "no");
}

}  // namespace
}  // namespace spillway::net
