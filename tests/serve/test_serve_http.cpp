// `mambalm serve` as a user runs it: the binary on an ephemeral loopback port over a tiny random
// hybrid model with the byte tokenizer, driven over HTTP. Checks every endpoint, streaming
// (server-sent events ending with [DONE]) against the same request unstreamed, concurrent
// greedy requests against the same requests one at a time, echo + logprobs against the scoring
// library, every kind of bad request (status, OpenAI error shape), and a client that hangs up
// mid-stream (its sequence is cancelled and the batch empties). The server must then still be
// healthy and exit 0 on SIGTERM.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "eval/scoring.h"
#include "model/model.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace mambalm;
using nlohmann::json;

namespace {

struct Server {
  pid_t pid = -1;
  int port = 0;
  std::string model_dir;
};
Server g_server;

class ServeHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = mambalm::testing::temp_dir("serve-http");
    g_server.model_dir = dir + "/hybrid-tiny";
    auto r = mambalm::testing::run_cli("init --preset hybrid-tiny --tokenizer bytes --seed 3 --out " + g_server.model_dir);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string port_file = dir + "/port";
    g_server.pid = fork();
    ASSERT_GE(g_server.pid, 0);
    if (g_server.pid == 0) {
      const std::string log = dir + "/server.log";
      if (!freopen(log.c_str(), "w", stderr)) _exit(126);
      execl(MAMBALM_CLI, MAMBALM_CLI, "serve", "--model", g_server.model_dir.c_str(), "--port", "0", "--port-file",
            port_file.c_str(), "--max-batch", "4", "--max-context", "256", "--prefill-chunk", "16", "--max-body", "65536",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 600 && g_server.port == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::ifstream f(port_file);
      f >> g_server.port;
    }
    ASSERT_GT(g_server.port, 0) << "the server did not start (see " << dir << "/server.log)";
  }
  static void TearDownTestSuite() {
    if (g_server.pid <= 0) return;
    kill(g_server.pid, SIGTERM);
    int status = 0;
    waitpid(g_server.pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the server did not exit cleanly: " << status;
  }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", g_server.port);
    c.set_read_timeout(60, 0);
    return c;
  }
  // POST a JSON body; returns (status, body).
  std::pair<int, std::string> post(const std::string& path, const std::string& body) {
    auto c = client();
    auto res = c.Post(path.c_str(), body, "application/json");
    if (!res) return {-1, ""};
    return {res->status, res->body};
  }
  json post_json(const std::string& path, const json& body) {
    auto [status, text] = post(path, body.dump());
    EXPECT_EQ(status, 200) << text;
    return json::parse(text);
  }
  // The data: payloads of a server-sent-event body, [DONE] included.
  static std::vector<std::string> events(const std::string& body) {
    std::vector<std::string> out;
    size_t at = 0;
    while ((at = body.find("data: ", at)) != std::string::npos) {
      const size_t end = body.find("\n\n", at);
      out.push_back(body.substr(at + 6, end - at - 6));
      at = end;
    }
    return out;
  }
  std::string metrics() {
    auto c = client();
    auto res = c.Get("/metrics");
    return res ? res->body : "";
  }
  static double metric(const std::string& text, const std::string& name) {
    const size_t at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
  }
  void expect_error(int status, const std::string& body, int want_status, const std::string& what) {
    EXPECT_EQ(status, want_status) << what << ": " << body;
    json j = json::parse(body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << body;
    EXPECT_TRUE(j["error"]["message"].is_string()) << what;
    EXPECT_TRUE(j["error"]["type"].is_string()) << what;
  }
};

json greedy(const std::string& prompt, int max_tokens) {
  return {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
}

}  // namespace

TEST_F(ServeHttp, HealthModelsAndMetrics) {
  auto c = client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  json models = json::parse(m->body);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "hybrid-tiny");
  const std::string text = metrics();
  for (const char* name : {"mambalm_requests_total", "mambalm_generation_tokens_per_second", "mambalm_batch_size",
                           "mambalm_queue_length", "mambalm_ssm_state_bytes", "mambalm_kv_cache_bytes",
                           "mambalm_prompt_cache_hits_total", "mambalm_prompt_cache_bytes", "process_resident_memory_bytes"})
    EXPECT_NE(text.find(name), std::string::npos) << name;
}

TEST_F(ServeHttp, CompletionStreamedEqualsUnstreamed) {
  json whole = post_json("/v1/completions", greedy("Once upon a time", 12));
  EXPECT_EQ(whole["object"], "text_completion");
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(whole["usage"]["prompt_tokens"], 16);
  EXPECT_EQ(whole["usage"]["completion_tokens"], 12);
  json req = greedy("Once upon a time", 12);
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto [status, body] = post("/v1/completions", req.dump());
  ASSERT_EQ(status, 200);
  auto ev = events(body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string text;
  std::string finish;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    json chunk = json::parse(ev[i]);
    if (chunk["choices"].empty()) {
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 12);  // the include_usage chunk
      continue;
    }
    text += chunk["choices"][0]["text"].get<std::string>();
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, whole["choices"][0]["text"].get<std::string>());
  EXPECT_EQ(finish, "length");
}

TEST_F(ServeHttp, ConcurrentGreedyRequestsEqualThemAlone) {
  std::vector<std::string> prompts = {"a", "The cat", "In 1969 the first", "xyz xyz", "Hello, world", "42", "Mamba", "q"};
  std::vector<std::string> alone, together(prompts.size());
  for (const auto& p : prompts) alone.push_back(post_json("/v1/completions", greedy(p, 10 + p.size()))["choices"][0]["text"]);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      auto [status, body] = post("/v1/completions", greedy(prompts[i], 10 + prompts[i].size()).dump());
      if (status == 200) together[i] = json::parse(body)["choices"][0]["text"];
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i], alone[i]) << "prompt " << i;
}

TEST_F(ServeHttp, ChatStreamsWithRoleThenContent) {
  json req = {{"messages", {{{"role", "user"}, {"content", "Say hi"}}}}, {"max_tokens", 6}, {"temperature", 0}};
  json whole = post_json("/v1/chat/completions", req);
  EXPECT_EQ(whole["object"], "chat.completion");
  EXPECT_EQ(whole["choices"][0]["message"]["role"], "assistant");
  req["stream"] = true;
  auto [status, body] = post("/v1/chat/completions", req.dump());
  ASSERT_EQ(status, 200);
  auto ev = events(body);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.back(), "[DONE]");
  json first = json::parse(ev[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    json d = json::parse(ev[i])["choices"][0]["delta"];
    if (d.contains("content")) text += d["content"].get<std::string>();
  }
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"].get<std::string>());
}

TEST_F(ServeHttp, NChoicesSeedsAndLogprobs) {
  json req = {{"prompt", "abc"}, {"max_tokens", 5}, {"temperature", 1.0}, {"seed", 9}, {"n", 3}, {"logprobs", 2}};
  json a = post_json("/v1/completions", req), b = post_json("/v1/completions", req);
  ASSERT_EQ(a["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a["choices"][i]["text"], b["choices"][i]["text"]) << "same seed, same text";
    const json& lp = a["choices"][i]["logprobs"];
    EXPECT_EQ(lp["tokens"].size(), lp["token_logprobs"].size());
    for (const json& top : lp["top_logprobs"]) EXPECT_LE(top.size(), 2u);
    for (const json& x : lp["token_logprobs"]) EXPECT_LE(x.get<double>(), 0.0);
  }
}

TEST_F(ServeHttp, EchoLogprobsEqualTheScoringLibrary) {
  // lm-evaluation-harness local-completions: prompt = context + continuation token ids,
  // echo, logprobs 1, max_tokens 0; the continuation's log-likelihood is the sum of its
  // token_logprobs.
  Model model = Model::load(g_server.model_dir);
  auto tok = open_tokenizer(g_server.model_dir);
  eval::Scorer scorer(model, tok.get());
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"The capital of France is", " Paris"}, {"2 + 2 =", " 4"}, {"A", " long continuation of several words"}};
  json prompts = json::array();
  std::vector<size_t> ctxlens;
  std::vector<eval::LoglikelihoodRequest> reqs;
  for (const auto& [ctx, cont] : pairs) {
    auto [c, k] = scorer.encode_pair(ctx, cont);
    std::vector<int32_t> all = c;
    all.insert(all.end(), k.begin(), k.end());
    prompts.push_back(all);
    ctxlens.push_back(c.size());
    reqs.push_back({ctx, cont});
  }
  json out = post_json("/v1/completions", {{"prompt", prompts}, {"echo", true}, {"logprobs", 1}, {"max_tokens", 0},
                                           {"temperature", 0}});
  const auto want = scorer.loglikelihood(reqs);
  ASSERT_EQ(out["choices"].size(), pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    const json& choice = out["choices"][i];
    EXPECT_EQ(choice["index"], i);
    EXPECT_EQ(choice["text"], pairs[i].first + pairs[i].second);
    const json& lps = choice["logprobs"]["token_logprobs"];
    EXPECT_TRUE(lps[0].is_null());
    double sum = 0;
    bool greedy = true;
    for (size_t t = ctxlens[i]; t < lps.size(); ++t) {
      sum += lps[t].get<double>();
      double best = -1e30;
      for (auto& [k, v] : choice["logprobs"]["top_logprobs"][t].items()) best = std::max(best, v.get<double>());
      greedy &= lps[t].get<double>() == best;
    }
    EXPECT_NEAR(sum, want[i].logprob, 1e-4 * std::abs(want[i].logprob)) << pairs[i].first;
    EXPECT_EQ(greedy, want[i].is_greedy) << pairs[i].first;
  }
}

TEST_F(ServeHttp, BadRequestsGetOpenAIErrors) {
  auto check = [&](const std::string& path, const std::string& body, int want, const std::string& what) {
    auto [status, text] = post(path, body);
    expect_error(status, text, want, what);
  };
  check("/v1/completions", "{\"prompt\": ", 400, "malformed JSON");
  check("/v1/completions", "[]", 400, "not an object");
  check("/v1/completions", R"({"prompt": "a", "max_tokens": "ten"})", 400, "wrong type");
  check("/v1/completions", R"({"prompt": "a", "max_tokens": -3})", 400, "max_tokens below range");
  check("/v1/completions", R"({"prompt": "a", "max_tokens": 100000})", 400, "max_tokens past the context");
  check("/v1/completions", "{\"prompt\": \"bad \xff\xfe utf8\"}", 400, "invalid UTF-8");
  check("/v1/completions", "{\"prompt\": \"" + std::string(300, 'x') + "\"}", 400, "prompt longer than the context");
  check("/v1/completions", "{\"prompt\": \"" + std::string(70000, 'x') + "\"}", 413, "body over the limit");
  check("/v1/chat/completions", R"({"messages": "hi"})", 400, "messages not a list");
  check("/v1/nothing", "{}", 404, "unknown route");
  auto [status, text] = post("/v1/completions", R"({"prompt": "a", "max_tokens": 100000})");
  EXPECT_EQ(json::parse(text)["error"]["code"], "context_length_exceeded");
  // Still serving, with no slot held.
  EXPECT_EQ(post_json("/v1/completions", greedy("ok", 2))["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(metric(metrics(), "mambalm_batch_size"), 0);
}

TEST_F(ServeHttp, ClientThatHangsUpIsCancelled) {
  const double cancelled_before = metric(metrics(), "mambalm_sequences_cancelled_total");
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(g_server.port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string body = R"({"prompt": "never ending", "max_tokens": 230, "temperature": 0, "ignore_eos": true, "stream": true})";
  const std::string http = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(write(fd, http.data(), http.size()), static_cast<ssize_t>(http.size()));
  char buf[512];
  ASSERT_GT(read(fd, buf, sizeof buf), 0);  // the stream has started
  close(fd);
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::string m = metrics();
    freed = metric(m, "mambalm_sequences_cancelled_total") > cancelled_before && metric(m, "mambalm_batch_size") == 0;
  }
  EXPECT_TRUE(freed) << metrics();
}

// Bad command lines end at once with one line on stderr and a non-zero exit.
TEST(ServeCli, BadOptionsAreOneLineErrors) {
  const std::string dir = mambalm::testing::temp_dir("serve-cli");
  auto init = mambalm::testing::run_cli("init --preset mamba-tiny --vocab 320 --out " + dir + "/plain");  // no tokenizer
  ASSERT_EQ(init.exit_code, 0) << init.err;
  // A port that is taken: listen on one ourselves.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string taken = std::to_string(ntohs(addr.sin_port));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"serve", "--model"},
      {"serve --model " + dir + "/missing", "missing"},
      {"serve --model " + dir + "/plain", "no tokenizer"},
      {"serve --model " + dir + "/plain --tokenizer bytes --port 70000", "--port"},
      {"serve --model " + dir + "/plain --tokenizer bytes --max-batch 0", "--max-batch"},
      {"serve --model " + dir + "/plain --tokenizer bytes --port " + taken, "cannot listen"},
  };
  for (const auto& [args, says] : cases) {
    auto r = mambalm::testing::run_cli(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(says), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
  close(fd);
}

// The HTTP transport is a module opened at run time (serve/http_front.h): a missing or corrupt one
// is a one-line error naming it, and no other command needs it.
TEST(ServeCli, HttpModuleMissingOrCorrupt) {
  const std::string dir = mambalm::testing::temp_dir("serve-module");
  auto init = mambalm::testing::run_cli("init --preset mamba-tiny --vocab 320 --out " + dir + "/plain");
  ASSERT_EQ(init.exit_code, 0) << init.err;
  mambalm::testing::write_file(dir + "/corrupt.so", "not a shared object\n");
  for (const std::string& module : {dir + "/missing.so", dir + "/corrupt.so"}) {
    auto r = mambalm::testing::run_command("MAMBALM_HTTP_MODULE=" + module + " " + MAMBALM_CLI + " serve --model " + dir +
                                           "/plain --tokenizer bytes --port 0");
    EXPECT_NE(r.exit_code, 0) << module;
    EXPECT_NE(r.err.find("serve: cannot load the module mambalm-http.so"), std::string::npos) << module << ": " << r.err;
    EXPECT_NE(r.err.find(module), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << module << ": " << r.err;
  }
  mambalm::testing::write_file(dir + "/prompt.txt", "1 2 3");
  auto gen = mambalm::testing::run_command("MAMBALM_HTTP_MODULE=" + dir + "/missing.so " + MAMBALM_CLI + " generate --model " +
                                           dir + "/plain --tokens " + dir + "/prompt.txt --max-tokens 2");
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
}
