// Real models' chat templates (tests/serve/data, see SOURCES.md) rendered on one conversation
// and compared with the prompt format each model documents, as transformers'
// apply_chat_template produces it; the templates' own errors; the fallback template; and the
// template of a model file.
#include "serve/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "engine/model.h"

#include "test_support.h"

namespace spillway::serve {
namespace {

std::string read_template(const std::string& name) {
  const auto path = std::filesystem::path(__FILE__).parent_path() / "data" / (name + ".jinja");
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

ChatTemplate load(const std::string& name) {
  auto t = ChatTemplate::create(read_template(name));
  EXPECT_TRUE(t.ok()) << name << ": " << t.status().error().to_string();
  return t.ok() ? *t : ChatTemplate::fallback();
}

ChatRenderOptions tokens(std::string bos, std::string eos) {
  ChatRenderOptions o;
  o.bos_token = std::move(bos);
  o.eos_token = std::move(eos);
  return o;
}

const std::vector<ChatMessage> kWithSystem = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello!"},
    {"assistant", "Hi! How can I help?"},
    {"user", "What is 2+2?"},
};
const std::vector<ChatMessage> kNoSystem(kWithSystem.begin() + 1, kWithSystem.end());

std::string render_ok(const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                      const ChatRenderOptions& options) {
  auto r = t.render(messages, options);
  EXPECT_TRUE(r.ok()) << r.status().error().to_string();
  return r.ok() ? *r : std::string("<error>");
}

Error render_error(const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                   const ChatRenderOptions& options) {
  auto r = t.render(messages, options);
  EXPECT_FALSE(r.ok()) << *r;
  return r.ok() ? Error(ErrorCode::kOk, "") : r.error();
}

constexpr const char* kAlternate =
    "Conversation roles must alternate user/assistant/user/assistant/...";

TEST(ChatTemplateModels, Llama2) {
  const ChatTemplate t = load("llama2_chat");
  EXPECT_EQ(render_ok(t, kWithSystem, tokens("<s>", "</s>")),
            "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] "
            "Hi! How can I help? </s><s>[INST] What is 2+2? [/INST]");
  Error e = render_error(t, {{"user", "a"}, {"user", "b"}}, tokens("<s>", "</s>"));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message(), kAlternate);
}

TEST(ChatTemplateModels, Llama3) {
  const ChatTemplate t = load("llama3_instruct");
  const ChatRenderOptions o = tokens("<|begin_of_text|>", "<|eot_id|>");
  EXPECT_EQ(render_ok(t, kWithSystem, o),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
            "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  ChatRenderOptions no_prompt = o;
  no_prompt.add_generation_prompt = false;
  EXPECT_EQ(render_ok(t, {{"user", "  padded \n"}}, no_prompt),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>");
}

TEST(ChatTemplateModels, Llama31) {
  const ChatTemplate t = load("llama31_instruct");
  const ChatRenderOptions o = tokens("<|begin_of_text|>", "<|eot_id|>");
  const std::string header =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
      "December 2023\nToday Date: 26 Jul 2024\n\n";
  const std::string turns =
      "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>"
      "assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|><|start_header_id|>user"
      "<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
      "\n\n";
  EXPECT_EQ(render_ok(t, kWithSystem, o),
            header + "You are a helpful assistant.<|eot_id|>" + turns);
  EXPECT_EQ(render_ok(t, kNoSystem, o), header + "<|eot_id|>" + turns);
}

TEST(ChatTemplateModels, MistralV01AndV02) {
  const ChatTemplate v1 = load("mistral_v01_instruct");
  const ChatTemplate v2 = load("mistral_v02_instruct");
  const ChatRenderOptions o = tokens("<s>", "</s>");
  EXPECT_EQ(render_ok(v1, kNoSystem, o),
            "<s>[INST] Hello! [/INST]Hi! How can I help?</s> [INST] What is 2+2? [/INST]");
  EXPECT_EQ(render_ok(v2, kNoSystem, o),
            "<s>[INST] Hello! [/INST]Hi! How can I help?</s>[INST] What is 2+2? [/INST]");
  // These templates have no system role: the first message must be the user's.
  for (const ChatTemplate* t : {&v1, &v2}) {
    Error e = render_error(*t, kWithSystem, o);
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.message(), kAlternate);
  }
}

TEST(ChatTemplateModels, MistralV03) {
  const ChatTemplate t = load("mistral_v03_instruct");
  const ChatRenderOptions o = tokens("<s>", "</s>");
  // The system message is prepended to the last user message.
  EXPECT_EQ(render_ok(t, kWithSystem, o),
            "<s>[INST] Hello![/INST] Hi! How can I help?</s>[INST] You are a helpful assistant."
            "\n\nWhat is 2+2?[/INST]");
  Error e = render_error(t, {{"user", "a"}, {"user", "b"}}, o);
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message(),
            "After the optional system message, conversation roles must alternate "
            "user/assistant/user/assistant/...");
}

TEST(ChatTemplateModels, Qwen2ChatML) {
  const ChatTemplate t = load("qwen2_instruct");
  const ChatRenderOptions o = tokens("", "<|im_end|>");
  const std::string expected =
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!"
      "<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n<|im_start|>user\n"
      "What is 2+2?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(render_ok(t, kWithSystem, o), expected);
  // Without a system message the template supplies its default one, the same text here.
  EXPECT_EQ(render_ok(t, kNoSystem, o), expected);
}

TEST(ChatTemplateModels, Zephyr) {
  const ChatTemplate t = load("zephyr_beta");
  EXPECT_EQ(render_ok(t, kWithSystem, tokens("<s>", "</s>")),
            "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n<|assistant|>\n"
            "Hi! How can I help?</s>\n<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n");
}

TEST(ChatTemplateModels, Gemma) {
  const ChatTemplate t = load("gemma_it");
  const ChatRenderOptions o = tokens("<bos>", "<eos>");
  EXPECT_EQ(render_ok(t, kNoSystem, o),
            "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi! How can I "
            "help?<end_of_turn>\n<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  Error e = render_error(t, kWithSystem, o);
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message(), "System role not supported");
}

TEST(ChatTemplateModels, Phi3) {
  const ChatTemplate t = load("phi3_mini_instruct");
  ChatRenderOptions o = tokens("<s>", "<|endoftext|>");
  EXPECT_EQ(render_ok(t, kWithSystem, o),
            "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n"
            "<|assistant|>\nHi! How can I help?<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n"
            "<|assistant|>\n");
  o.add_generation_prompt = false;
  EXPECT_EQ(render_ok(t, {{"user", "Hi"}}, o), "<|user|>\nHi<|end|>\n<|endoftext|>");
}

TEST(ChatTemplateModels, UnicodeContentPassesThroughUnchanged) {
  const ChatTemplate t = load("qwen2_instruct");
  EXPECT_EQ(render_ok(t, {{"system", "S"}, {"user", "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80"}},
                      tokens("", "")),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nh\xC3\xA9llo \xE2\x9C\x93 "
            "\xF0\x9F\x98\x80<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, FallbackIsRolePrefixed) {
  const ChatTemplate t = ChatTemplate::fallback();
  EXPECT_TRUE(t.is_fallback());
  EXPECT_EQ(t.source(), ChatTemplate::kFallbackSource);
  EXPECT_EQ(render_ok(t, kWithSystem, tokens("<s>", "</s>")),
            "<s>System: You are a helpful assistant.\n\nUser: Hello!\n\nAssistant: Hi! How can I "
            "help?\n\nUser: What is 2+2?\n\nAssistant:");
  ChatRenderOptions no_prompt;
  no_prompt.add_generation_prompt = false;
  EXPECT_EQ(render_ok(t, {{"user", " hi "}}, no_prompt), "User: hi\n\n");
}

TEST(ChatTemplate, SyntaxErrorsAreReportedAtCreation) {
  auto t = ChatTemplate::create("{% for m in messages %}{{ m.content }}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(t.error().message(),
            "chat template: 1:39: unexpected end of template, expected 'endfor' or 'else' to "
            "close the 'for' at 1:4");
  EXPECT_FALSE(ChatTemplate::create("{{ messages | no_such_filter }}").ok());
}

TEST(ChatTemplate, RuntimeErrorsAndLimits) {
  auto t = ChatTemplate::create("{{ messages[0].content + 1 }}");
  ASSERT_TRUE(t.ok());
  Error e = render_error(*t, kWithSystem, {});
  EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(e.message(), "chat template: 1:24: unsupported operand type(s) for +: 'str' and 'int'");

  ChatRenderOptions small;
  small.limits.max_output_bytes = 64;
  e = render_error(load("qwen2_instruct"), kWithSystem, small);
  EXPECT_EQ(e.code(), ErrorCode::kOutOfRange);
}

TEST(ChatTemplate, RendersConcurrently) {
  const ChatTemplate t = load("llama31_instruct");
  const ChatRenderOptions o = tokens("<|begin_of_text|>", "<|eot_id|>");
  const std::string expected = render_ok(t, kWithSystem, o);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 50; ++k) {
        auto r = t.render(kWithSystem, o);
        if (!r.ok() || *r != expected) ++mismatches[i];
      }
    });
  }
  for (std::thread& th : threads)
    th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(ChatTemplate, ModelWithoutTemplateGetsTheFallback) {
  const std::string path = ::spillway::testing::shared_path("models/stories260K.gguf");
  SPW_REQUIRE_SHARED_FILE(path);
  engine::ModelLoadOptions options;
  options.path = path;
  auto model = engine::Model::load(options);
  ASSERT_TRUE(model.ok()) << model.status().error().to_string();
  ASSERT_FALSE((*model)->chat_template().has_value());
  auto t = ChatTemplate::for_model(**model);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->is_fallback());
  const ChatRenderOptions o = chat_render_options((*model)->vocab());
  EXPECT_EQ(o.bos_token, "<s>");
  EXPECT_EQ(o.eos_token, "</s>");
  EXPECT_EQ(render_ok(*t, {{"user", "Once upon a time"}}, o),
            "<s>User: Once upon a time\n\nAssistant:");
}

}  // namespace
}  // namespace spillway::serve
