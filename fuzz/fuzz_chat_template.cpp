// A model's tokenizer_config.json chat_template: the input is the template text, parsed and
// rendered over a fixed conversation. Any outcome but a clean render or a TemplateError (one
// line, naming the template line) is a finding.
#include "fuzz_input.h"
#include "tokenizer/chat_template/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return mambalm::fuzz::expect_error_or_success([&] {
    const std::string source(reinterpret_cast<const char*>(data), size);
    const auto t = mambalm::ChatTemplate::from_source(source, "<s>", "</s>", "fuzz chat_template");
    const nlohmann::json messages = nlohmann::json::parse(
        R"([{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Gr\u00fc\u00dfe {{ x }}"},
            {"role": "assistant", "content": "Hi \ud83d\ude42"}, {"role": "user", "content": "Again"}])");
    (void)t.render(messages, true);
  });
}
