// The pieces of the server that need no model: UTF-8 checks, stop strings cut out of
// streamed text, request validation (every bad field gets a 400 naming it), the chat template.
#include <gtest/gtest.h>

#include <string>

#include "serve/api_error.h"
#include "serve/chat_template.h"
#include "serve/choice_text.h"
#include "serve/completion_request.h"
#include "serve/utf8.h"
#include "tokenizer/tokenizer.h"

using namespace mambalm;
using namespace mambalm::serve;

namespace {

const Tokenizer& bytes() {
  static std::unique_ptr<Tokenizer> t = open_tokenizer("bytes");
  return *t;
}

RequestLimits limits() {
  RequestLimits l;
  l.max_context = 64;
  l.vocab = 256;
  return l;
}

// The ApiError a body raises: its status and param ("" when none is raised).
std::pair<int, std::string> error_of(const std::string& body, bool chat = false) {
  try {
    parse_completion_request(body, chat, bytes(), limits());
  } catch (const ApiError& e) {
    return {e.status(), e.param()};
  }
  return {0, ""};
}

std::vector<int32_t> ids(const std::string& s) { return bytes().encode(s); }

}  // namespace

TEST(ServeUtf8, FindsTheFirstBadByte) {
  EXPECT_EQ(first_invalid_utf8("plain"), std::string::npos);
  EXPECT_EQ(first_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), std::string::npos);
  EXPECT_EQ(first_invalid_utf8("ab\xff"), 2u);
  EXPECT_EQ(first_invalid_utf8("ab\xc3"), 2u);              // truncated
  EXPECT_EQ(first_invalid_utf8("\xc0\xaf"), 0u);            // overlong
  EXPECT_EQ(first_invalid_utf8("x\xed\xa0\x80"), 1u);       // a UTF-16 surrogate
  EXPECT_EQ(first_invalid_utf8("\xf4\x90\x80\x80"), 0u);    // past U+10FFFF
  EXPECT_EQ(utf8_boundary_at_or_before("a\xc3\xa9", 2), 1u);
  EXPECT_EQ(utf8_boundary_at_or_before("a\xc3\xa9", 3), 3u);
}

TEST(ServeChoiceText, CutsAtTheStopStringAndNeverShowsIt) {
  ChoiceText t(bytes(), {"STOP"});
  std::string shown;
  for (int32_t id : ids("hello ST")) shown += t.push(id);
  EXPECT_EQ(shown, "hello ");  // "ST" might begin "STOP": held back
  for (int32_t id : ids("OP and more")) shown += t.push(id);
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(shown, "hello ");
  EXPECT_EQ(t.finish(), "");
  EXPECT_EQ(t.visible(), "hello ");
}

TEST(ServeChoiceText, ReleasesHeldTextThatWasNoStopString) {
  ChoiceText t(bytes(), {"STOP"});
  std::string shown;
  for (int32_t id : ids("a STO")) shown += t.push(id);
  for (int32_t id : ids("RY")) shown += t.push(id);
  shown += t.finish();
  EXPECT_FALSE(t.stopped());
  EXPECT_EQ(shown, "a STORY");
}

TEST(ServeRequest, ParsesTheFourPromptForms) {
  auto r = parse_completion_request(R"({"prompt": "ab", "max_tokens": 3, "temperature": 0})", false, bytes(), limits());
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0], ids("ab"));
  EXPECT_EQ(r.max_tokens, 3);
  r = parse_completion_request(R"({"prompt": ["ab", "c"]})", false, bytes(), limits());
  EXPECT_EQ(r.prompts.size(), 2u);
  r = parse_completion_request(R"({"prompt": [97, 98]})", false, bytes(), limits());
  EXPECT_EQ(r.prompts[0], ids("ab"));
  EXPECT_EQ(r.prompt_texts[0], "ab");
  r = parse_completion_request(R"({"prompt": [[97], [98, 99]], "echo": true, "logprobs": 1, "max_tokens": 0})", false,
                               bytes(), limits());
  EXPECT_EQ(r.prompts.size(), 2u);
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.logprobs, 1);
  EXPECT_EQ(r.max_tokens, 0);
}

TEST(ServeRequest, PenaltiesAndMinPReachTheSampler) {
  auto r = parse_completion_request(R"({"prompt": "ab"})", false, bytes(), limits());
  EXPECT_FALSE(r.sampling.penalties.active());
  EXPECT_EQ(r.sampling.min_p, 0.0);
  r = parse_completion_request(
      R"({"prompt": "ab", "presence_penalty": 0.5, "frequency_penalty": -1, "repetition_penalty": 1.3, "min_p": 0.05})", false,
      bytes(), limits());
  EXPECT_EQ(r.sampling.penalties.presence, 0.5);
  EXPECT_EQ(r.sampling.penalties.frequency, -1.0);
  EXPECT_EQ(r.sampling.penalties.repeat, 1.3);
  EXPECT_EQ(r.sampling.penalties.repeat_last_n, -1);  // vLLM's: over the whole prompt and output
  EXPECT_EQ(r.sampling.min_p, 0.05);
}

TEST(ServeRequest, ChatUsesThePlainTemplateAndItsStop) {
  auto r = parse_completion_request(R"({"messages": [{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})",
                                    true, bytes(), limits());
  EXPECT_EQ(r.prompt_texts[0], "System: Be brief.\n\nUser: Hi\n\nAssistant:");
  ASSERT_FALSE(r.stop.empty());
  EXPECT_EQ(r.stop.back(), kDefaultChatStop);
}

TEST(ServeRequest, EveryBadFieldIsA400NamingIt) {
  EXPECT_EQ(error_of("{not json"), std::make_pair(400, std::string("")));
  EXPECT_EQ(error_of("[1, 2]"), std::make_pair(400, std::string("")));
  EXPECT_EQ(error_of("{}").second, "prompt");
  EXPECT_EQ(error_of(R"({"prompt": 5})").second, "prompt");
  EXPECT_EQ(error_of(R"({"prompt": [1, "a"]})").second, "prompt");
  EXPECT_EQ(error_of(R"({"prompt": [300]})").second, "prompt");          // outside the vocabulary
  EXPECT_EQ(error_of(R"({"prompt": ""})").second, "prompt");             // no tokens
  EXPECT_EQ(error_of(R"({"prompt": ")" + std::string(64, 'x') + "\"}").second, "prompt");  // the whole context
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": "5"})").second, "max_tokens");
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": -1})").second, "max_tokens");
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": 64})").second, "max_tokens");  // past the context
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": 0})").second, "max_tokens");   // 0 needs echo
  EXPECT_EQ(error_of(R"({"prompt": "a", "max_tokens": 1e30})").second, "max_tokens");
  EXPECT_EQ(error_of(R"({"prompt": "a", "temperature": "hot"})").second, "temperature");
  EXPECT_EQ(error_of(R"({"prompt": "a", "temperature": 3})").second, "temperature");
  EXPECT_EQ(error_of(R"({"prompt": "a", "top_p": 0})").second, "top_p");
  EXPECT_EQ(error_of(R"({"prompt": "a", "top_k": 1.5})").second, "top_k");
  EXPECT_EQ(error_of(R"({"prompt": "a", "n": 0})").second, "n");
  EXPECT_EQ(error_of(R"({"prompt": "a", "stream": "yes"})").second, "stream");
  EXPECT_EQ(error_of(R"({"prompt": "a", "stop": 7})").second, "stop");
  EXPECT_EQ(error_of(R"({"prompt": "a", "stop": ["a","b","c","d","e"]})").second, "stop");
  EXPECT_EQ(error_of(R"({"prompt": "a", "logprobs": 99})").second, "logprobs");
  EXPECT_EQ(error_of(R"({"prompt": "a", "seed": "x"})").second, "seed");
  EXPECT_EQ(error_of(R"({"prompt": "a", "frequency_penalty": 2.5})").second, "frequency_penalty");
  EXPECT_EQ(error_of(R"({"prompt": "a", "presence_penalty": "x"})").second, "presence_penalty");
  EXPECT_EQ(error_of(R"({"prompt": "a", "repetition_penalty": 0})").second, "repetition_penalty");
  EXPECT_EQ(error_of(R"({"prompt": "a", "min_p": 1.5})").second, "min_p");
  EXPECT_EQ(error_of(R"({"prompt": "a", "echo": true, "stream": true})").second, "echo");
  EXPECT_EQ(error_of(R"({"prompt": "a", "model": 3})").second, "model");
  EXPECT_EQ(error_of(R"({"messages": []})", true).second, "messages");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "wizard", "content": "x"}]})", true).second, "messages[0].role");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": 5}]})", true).second, "messages[0].content");
  EXPECT_EQ(error_of(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", true).second,
            "top_logprobs");
  // Neutral values of unsupported fields, and nulls, are fine.
  EXPECT_EQ(error_of(R"({"prompt": "a", "frequency_penalty": 0, "logit_bias": {}, "seed": null})").first, 0);
}
