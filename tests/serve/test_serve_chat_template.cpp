// `mambalm serve` with a model directory whose tokenizer_config.json carries a chat template
// (Mixtral-8x7B-Instruct-v0.1's, from tests/golden/chat_templates/): the startup log names it,
// /v1/chat/completions prompts are the template's rendering (prompt_tokens of the byte tokenizer
// is its length in bytes, unlike the default template's), a conversation the template refuses
// (two user turns in a row) is a 400 carrying the template's message, and `mambalm generate
// --chat` renders with the same template.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_util.h"

using nlohmann::json;

namespace {

struct Server {
  pid_t pid = -1;
  int port = 0;
  std::string dir, model_dir, log;
};
Server g_server;

class ServeChatTemplate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_server.dir = mambalm::testing::temp_dir("serve-chat-template");
    g_server.model_dir = g_server.dir + "/hybrid-tiny";
    auto r = mambalm::testing::run_cli("init --preset hybrid-tiny --tokenizer bytes --seed 3 --out " + g_server.model_dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::filesystem::copy_file(
        mambalm::testing::source_dir() + "/tests/golden/chat_templates/mixtral-8x7b-instruct-v0.1/tokenizer_config.json",
        g_server.model_dir + "/tokenizer_config.json", std::filesystem::copy_options::overwrite_existing);
    const std::string port_file = g_server.dir + "/port";
    g_server.log = g_server.dir + "/server.log";
    g_server.pid = fork();
    ASSERT_GE(g_server.pid, 0);
    if (g_server.pid == 0) {
      if (!freopen(g_server.log.c_str(), "w", stderr)) _exit(126);
      execl(MAMBALM_CLI, MAMBALM_CLI, "serve", "--model", g_server.model_dir.c_str(), "--port", "0", "--port-file",
            port_file.c_str(), "--max-batch", "2", "--max-context", "256", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 600 && g_server.port == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::ifstream f(port_file);
      f >> g_server.port;
    }
    ASSERT_GT(g_server.port, 0) << "the server did not start (see " << g_server.log << ")";
  }
  static void TearDownTestSuite() {
    if (g_server.pid <= 0) return;
    kill(g_server.pid, SIGTERM);
    int status = 0;
    waitpid(g_server.pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the server did not exit cleanly: " << status;
  }

  static std::pair<int, json> chat(const json& messages) {
    httplib::Client c("127.0.0.1", g_server.port);
    c.set_read_timeout(60, 0);
    const json body = {{"messages", messages}, {"max_tokens", 2}, {"temperature", 0}};
    auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
    if (!res) return {-1, json()};
    return {res->status, json::parse(res->body, nullptr, false)};
  }
};

json msg(const char* role, const char* content) { return {{"role", role}, {"content", content}}; }

TEST_F(ServeChatTemplate, StartupLogNamesTheTemplate) {
  std::ifstream f(g_server.log);
  std::stringstream text;
  text << f.rdbuf();
  EXPECT_NE(text.str().find("chat_template: " + g_server.model_dir + "/tokenizer_config.json chat_template"),
            std::string::npos)
      << text.str();
}

TEST_F(ServeChatTemplate, PromptIsTheTemplatesRendering) {
  auto [status, body] = chat(json::array({msg("user", "Hi"), msg("assistant", "Yo"), msg("user", "Go")}));
  ASSERT_EQ(status, 200) << body.dump();
  // Mixtral's template: "<s>[INST] Hi [/INST]Yo</s>[INST] Go [/INST]" (the byte tokenizer has no
  // "<s>" special token, so every character is one token). The default would be
  // "User: Hi\n\nAssistant: Yo\n\nUser: Go\n\nAssistant:" (45 bytes).
  const std::string rendered = "<s>[INST] Hi [/INST]Yo</s>[INST] Go [/INST]";
  EXPECT_EQ(body["usage"]["prompt_tokens"], static_cast<int>(rendered.size()));
}

TEST_F(ServeChatTemplate, RefusedConversationIs400WithTheTemplatesMessage) {
  auto [status, body] = chat(json::array({msg("user", "first"), msg("user", "second")}));
  EXPECT_EQ(status, 400) << body.dump();
  ASSERT_TRUE(body.is_object() && body.contains("error")) << body.dump();
  EXPECT_EQ(body["error"]["param"], "messages");
  EXPECT_NE(body["error"]["message"].get<std::string>().find("Conversation roles must alternate user/assistant"),
            std::string::npos)
      << body.dump();
  // The server goes on serving.
  EXPECT_EQ(chat(json::array({msg("user", "again")})).first, 200);
}

TEST_F(ServeChatTemplate, GenerateChatUsesTheTemplate) {
  // --ids prints the generated ids only; the rendered prompt shows in a refusal instead: with
  // --system, Mixtral's template sees a system turn first and raises its own message.
  auto ok = mambalm::testing::run_cli("generate --model " + g_server.model_dir + " --chat --prompt Hi --max-tokens 2 --ids");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  auto refused =
      mambalm::testing::run_cli("generate --model " + g_server.model_dir + " --chat --system Be --prompt Hi --max-tokens 2");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("Conversation roles must alternate"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find('\n'), refused.err.size() - 1) << "one line: " << refused.err;
  auto no_chat = mambalm::testing::run_cli("generate --model " + g_server.model_dir + " --system Be --prompt Hi");
  EXPECT_NE(no_chat.exit_code, 0);
  EXPECT_NE(no_chat.err.find("--system"), std::string::npos) << no_chat.err;
}

}  // namespace
