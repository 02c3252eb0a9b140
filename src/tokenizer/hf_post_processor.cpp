// tokenizer.json post-processors (hf_post_processor.h), read once at load time into the ids to
// put around a text; encoding then costs two vector inserts.
#include "tokenizer/hf_post_processor.h"

#include "core/error.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "tokenizer/json_token_id.h"

namespace mambalm {

namespace {

using nlohmann::json;

// TemplateProcessing's "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}, ...]
// with "special_tokens": {"<s>": {"ids": [1], ...}}.
void add_template(const json& p, SpecialTokenTemplate& out, const std::string& where) {
  const json& single = p.value("single", json::array());
  check(single.is_array(), where, "TemplateProcessing \"single\" is not a list");
  const json& specials = p.value("special_tokens", json::object());
  bool seen_text = false;
  SpecialTokenTemplate t;
  for (const json& item : single) {
    if (item.is_object() && item.contains("Sequence")) {
      const std::string seq = item["Sequence"].value("id", std::string("?"));
      check(seq == "A", where, "TemplateProcessing single template names sequence '" + seq + "'",
            "a single text is sequence A");
      check(!seen_text, where, "TemplateProcessing single template has $A twice");
      seen_text = true;
    } else if (item.is_object() && item.contains("SpecialToken")) {
      const std::string name = item["SpecialToken"].value("id", std::string());
      check(specials.is_object() && specials.contains(name) && specials[name].contains("ids") && specials[name]["ids"].is_array(),
            where, "TemplateProcessing names special token '" + name + "' without ids in special_tokens",
            "the file is corrupt");
      for (const json& id : specials[name]["ids"])
        (seen_text ? t.after : t.before).push_back(json_token_id(id, where, "post_processor token '" + name + "'"));
    } else {
      fail(where, "TemplateProcessing item " + item.dump() + " is neither SpecialToken nor Sequence");
    }
  }
  check(seen_text, where, "TemplateProcessing single template has no $A", "the file is corrupt");
  // In a Sequence each processor wraps what the ones before it produced.
  out.before.insert(out.before.begin(), t.before.begin(), t.before.end());
  out.after.insert(out.after.end(), t.after.begin(), t.after.end());
}

// RobertaProcessing / BertProcessing: "cls": ["<s>", 0], "sep": ["</s>", 2].
int32_t pair_id(const json& p, const char* key, const std::string& where) {
  const json& v = p.value(key, json());
  check(v.is_array() && v.size() == 2 && v[0].is_string(), where,
        hf_type_of(p) + " without a [\"token\", id] " + key);
  return json_token_id(v[1], where, std::string("post_processor ") + key);
}

void add_processor(const json& p, SpecialTokenTemplate& out, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = hf_type_of(p);
  if (type == "Sequence") {
    for (const json& step : p.value("processors", json::array())) add_processor(step, out, where);
  } else if (type == "ByteLevel") {
    // Offsets only: it changes no ids.
  } else if (type == "TemplateProcessing") {
    add_template(p, out, where);
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    out.before.insert(out.before.begin(), pair_id(p, "cls", where));
    out.after.push_back(pair_id(p, "sep", where));
  } else {
    fail(where, "post_processor '" + type + "' is not supported",
         "supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence of these");
  }
}

// transformers' LlamaTokenizerFast / GemmaTokenizerFast (and their slow twins, which AutoTokenizer
// turns into them) replace the file's post_processor with one built from add_bos_token and
// add_eos_token: `update_post_processor()` in their __init__.
bool rebuilds_template(const json& config) {
  if (!config.is_object() || !config.contains("tokenizer_class") || !config["tokenizer_class"].is_string()) return false;
  std::string cls = config["tokenizer_class"].get<std::string>();
  if (cls.size() > 4 && cls.compare(cls.size() - 4, 4, "Fast") == 0) cls.resize(cls.size() - 4);
  return cls == "LlamaTokenizer" || cls == "CodeLlamaTokenizer" || cls == "GemmaTokenizer";
}

}  // namespace

SpecialTokenTemplate hf_post_processor(const json& doc, const json& config, const std::vector<AddedToken>& added,
                                       const std::function<int32_t(const std::string&)>& vocab_id, const std::string& path) {
  SpecialTokenTemplate out;
  if (rebuilds_template(config)) {
    auto flag = [&](const char* key, bool fallback) {
      return config.contains(key) && config[key].is_boolean() ? config[key].get<bool>() : fallback;
    };
    auto id_of = [&](const char* key) {
      const std::string name = hf_config_token(config, key);
      for (const AddedToken& a : added)
        if (!name.empty() && a.content == name) return a.id;
      if (const int32_t id = name.empty() ? -1 : vocab_id(name); id >= 0) return id;
      fail(path, std::string("tokenizer_config.json asks to add its ") + key + " ('" + name + "'), which is not a token",
           "transformers refuses this too; set the token or turn the add_ flag off in tokenizer_config.json");
    };
    if (flag("add_bos_token", true)) out.before.push_back(id_of("bos_token"));
    if (flag("add_eos_token", false)) out.after.push_back(id_of("eos_token"));
    return out;
  }
  add_processor(doc.value("post_processor", json()), out, path + " post_processor");
  return out;
}

}  // namespace mambalm
