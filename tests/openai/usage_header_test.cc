// The replica → gateway usage field: what serve writes, the gateway reads back exactly, and
// anything else is refused (the gateway then reads the body).
#include "openai/usage_header.h"

#include <gtest/gtest.h>

#include <string>

namespace spillway::openai {
namespace {

TEST(UsageHeader, RoundTripsAndRefusesEverythingElse) {
  Usage u;
  u.prompt_tokens = 7;
  u.completion_tokens = 1234;
  u.cached_prompt_tokens = 5;  // Not carried: the gateway needs the two counts.
  const std::string value = render_usage_header(u);
  EXPECT_EQ(value, "prompt_tokens=7 completion_tokens=1234");
  const auto back = parse_usage_header(value);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->prompt_tokens, 7);
  EXPECT_EQ(back->completion_tokens, 1234);

  Usage negative;
  negative.prompt_tokens = -3;
  EXPECT_EQ(render_usage_header(negative), "prompt_tokens=0 completion_tokens=0");
  const auto big = parse_usage_header("prompt_tokens=999999999999999999 completion_tokens=0");
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->prompt_tokens, 999'999'999'999'999'999);

  for (const char* bad :
       {"", "prompt_tokens=7", "prompt_tokens=7 completion_tokens=",
        "prompt_tokens= completion_tokens=1", "prompt_tokens=-1 completion_tokens=1",
        "prompt_tokens=+1 completion_tokens=1", "prompt_tokens=1 completion_tokens=1 ",
        " prompt_tokens=1 completion_tokens=1", "prompt_tokens=1  completion_tokens=1",
        "prompt_tokens=1,completion_tokens=1", "completion_tokens=1 prompt_tokens=1",
        "prompt_tokens=1 completion_tokens=1x", "prompt_tokens=1.5 completion_tokens=1",
        "prompt_tokens=1000000000000000000 completion_tokens=1",
        "PROMPT_TOKENS=1 completion_tokens=1"}) {
    EXPECT_FALSE(parse_usage_header(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace spillway::openai
