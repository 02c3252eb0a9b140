// report.md: the results as tables. Every number is printed from results.json as it is there.
#include <cstdio>
#include <map>
#include <string>

#include "study/report.h"
#include "study/results.h"

namespace mambalm::study {

namespace {

using nlohmann::json;

std::string num(double v, const char* format = "%.4f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string integer(int64_t v) { return std::to_string(v); }

std::string row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const std::string& c : cells) s += " " + c + " |";
  return s + "\n";
}

std::string header(const std::vector<std::string>& cells) {
  std::string s = row(cells) + "|";
  for (size_t i = 0; i < cells.size(); ++i) s += "---|";
  return s + "\n";
}

std::string lengths_table(const json& r, const RetrievalTask& t) {
  std::map<int64_t, bool> lengths;
  for (const json& f : r["families"])
    for (const auto& [k, v] : r["retrieval"][f.get<std::string>()][t.key]["by_length"].items()) lengths[std::stoll(k)] = true;
  std::vector<std::string> head = {std::string("model \\ ") + t.unit};
  for (const auto& [len, _] : lengths) head.push_back(integer(len));
  head.push_back("all");
  std::string s = "### " + std::string(t.title) + "\n\n" + header(head);
  for (const json& fj : r["families"]) {
    const std::string f = fj.get<std::string>();
    const json& task = r["retrieval"][f][t.key];
    std::vector<std::string> cells = {f};
    for (const auto& [len, _] : lengths) {
      const std::string key = integer(len);
      cells.push_back(task["by_length"].contains(key) ? num(task["by_length"][key].get<double>(), "%.3f") : "-");
    }
    cells.push_back(num(task.value("accuracy", 0.0), "%.3f"));
    s += row(cells);
  }
  return s + "\n";
}

}  // namespace

std::string render_markdown(const json& r) {
  const json& st = r["study"];
  const json& d = r["data"];
  std::string s = "# mambalm study: " + st["scale"].get<std::string>() + " scale\n\n";
  s += "The four families of \"An Empirical Study of Mamba-based Language Models\" (Waleffe et al., 2024) at matched "
       "non-embedding parameters, trained on the same tokens in the same order with the same schedule and seed.\n\n";
  s += "## Findings\n\n";
  for (const json& f : r["findings"])
    s += "- **(" + f["id"].get<std::string>() + ") " + f["claim"].get<std::string>() + "**: **" + f["verdict"].get<std::string>() +
         "** at this scale. " + f["detail"].get<std::string>() + ". Test: " + f["test"].get<std::string>() + ".\n";
  s += "\n## Data\n\n";
  std::string dirs;
  for (const json& c : d["corpus_dirs"]) dirs += (dirs.empty() ? "" : ", ") + c.get<std::string>();
  s += "- corpus: " + dirs + ": " + integer(d["corpus"]["files"]) + " training files, " +
       num(d["corpus"]["bytes"].get<double>() / 1e6, "%.2f") + " MB, " + integer(d["corpus"]["tokens"]) + " tokens\n";
  s += "- held out (never trained on): " + integer(d["heldout"]["files"]) + " files, " +
       num(d["heldout"]["bytes"].get<double>() / 1e6, "%.2f") + " MB, " + integer(d["heldout"]["tokens"]) + " tokens\n";
  s += "- tokenizer: SentencePiece BPE, " + integer(d["tokenizer"]["pieces"]) + " pieces (embedding rows " +
       integer(d["tokenizer"]["embedding_rows"]) + ")\n";
  s += "- training mix: " + integer(d["train"]["tokens"]) + " tokens, " +
       num(100 * d["train"]["synthetic_share"].get<double>(), "%.1f") + "% synthetic (target " +
       num(100 * d["synthetic_fraction"].get<double>(), "%.0f") + "% retrieval + " + num(100 * d.value("mc_fraction", 0.0), "%.0f") +
       "% multiple choice): ";
  std::string parts;
  for (const auto& [task, v] : d["synthetic"].items())
    parts += (parts.empty() ? "" : ", ") + task + " " + integer(v["documents"]) + " documents / " + integer(v["tokens"]) + " tokens";
  s += parts + "\n";
  const json& tr = st["train"];
  s += "- training: " + integer(tr["steps"]) + " steps of " + integer(tr["micro_batch"]) + " x " + integer(tr["seq_len"]) +
       " tokens, cosine schedule, peak lr " + num(tr["lr"].get<double>(), "%g") + ", seed " + integer(tr["seed"]) + ", device " +
       tr["device"].get<std::string>() + "\n\n";

  s += "## Models\n\n" + header({"model", "preset", "pattern", "parameters", "non-embedding", "tokens", "final loss", "held-out loss"});
  for (const json& fj : r["families"]) {
    const std::string f = fj.get<std::string>();
    const json& m = r["models"][f];
    s += row({f, m["preset"].get<std::string>(), "`" + m["pattern"].get<std::string>() + "`", integer(m["parameters"]),
              integer(m["non_embedding_parameters"]), integer(m["tokens"]), num(m["final_loss"].get<double>()),
              num(m["final_val_loss"].get<double>())});
  }
  s += "\n## Language modelling (held-out text)\n\n" + header({"model", "token perplexity", "byte perplexity", "bits per byte"});
  for (const json& fj : r["families"]) {
    const std::string f = fj.get<std::string>();
    const json& m = r["lm"][f];
    s += row({f, num(m["token_perplexity"].get<double>(), "%.3f"), num(m["byte_perplexity"].get<double>()),
              num(m["bits_per_byte"].get<double>())});
  }
  s += "\n## Retrieval accuracy by length (exact match; training length " + integer(tr["seq_len"]) + " tokens)\n\n";
  for (const RetrievalTask& t : retrieval_tasks()) s += lengths_table(r, t);

  if (r.contains("multiple_choice")) {
    const json& ms = r["multiple_choice_settings"];
    s += "## Multiple choice: cloze vs letter format\n\n";
    s += "Generated questions about a passage of " + integer(ms["choices"]) + " facts (\"Ann's hat is red.\" ...; \"What colour is "
         "Ann's hat?\"; the choices are the passage's colours), " + integer(ms["questions"]) + " per format, " + integer(ms["shots"]) +
         "-shot; the same questions in both formats. Cloze: each choice's text is scored; letter: the choices are listed A-" +
         std::string(1, static_cast<char>('A' + ms["choices"].get<int64_t>() - 1)) + " and the letter is scored. acc_norm divides each "
         "log-likelihood by the choice's length in characters (lm-eval). Chance " + num(ms["chance"].get<double>(), "%.2f") +
         "; the training mix holds such questions in both formats (" + num(100 * ms["training_fraction"].get<double>(), "%.0f") +
         "% of its tokens).\n\n";
    s += header({"model", "cloze acc", "cloze acc_norm", "letter acc", "letter - cloze"});
    for (const json& fj : r["families"]) {
      const std::string f = fj.get<std::string>();
      if (!r["multiple_choice"].contains(f)) continue;
      const json& c = r["multiple_choice"][f]["cloze"];
      const json& l = r["multiple_choice"][f]["letter"];
      auto with_se = [&](const json& m, const char* k, const char* se) {
        return num(m[k].get<double>(), "%.3f") + " ± " + num(m[se].get<double>(), "%.3f");
      };
      s += row({f, with_se(c, "acc", "acc_stderr"), with_se(c, "acc_norm", "acc_norm_stderr"), with_se(l, "acc", "acc_stderr"),
                num(l["acc"].get<double>() - c["acc"].get<double>(), "%+.3f")});
    }
    s += "\n";
  }

  s += "## Generation speed (" + r["speed_device"].get<std::string>() + ", one sequence)\n\n";
  std::vector<std::string> head = {"model"};
  for (const json& c : r["speed"][r["families"][0].get<std::string>()]) head.push_back("ctx " + integer(c["context"]) + ": tok/s, KiB");
  s += header(head);
  for (const json& fj : r["families"]) {
    const std::string f = fj.get<std::string>();
    std::vector<std::string> cells = {f};
    for (const json& c : r["speed"][f])
      cells.push_back(num(c["decode_tokens_per_s"].get<double>(), "%.1f") + ", " +
                      num(c["memory_per_sequence_bytes"].get<double>() / 1024.0, "%.1f"));
    s += row(cells);
  }
  s += "\nKiB: memory one sequence holds (SSM and convolution state + KV cache) after the prompt and the generated tokens.\n";
  // The same comparison at the study's 8B shapes (study/speed_8b_shape.h).
  const json& b = r.value("speed_8b", json::object());
  s += "\n## Generation speed at the 8B shapes\n\n";
  if (!b.value("measured", false)) return s + "Not measured: " + b.value("reason", std::string("no measurement")) + ".\n";
  s += "`mambalm bench --device cuda --preset transformer-8b,hybrid-8b` (" + b.value("weights", std::string()) + " weights, " +
       b.value("device_name", std::string()) + "): decode tokens/s at the best batch that fits.\n\n";
  s += header({"context", "transformer-8b tok/s (batch)", "hybrid-8b tok/s (batch)", "hybrid / transformer"});
  for (const json& c : b["rows"])
    s += row({integer(c["context"]), num(c["transformer_tokens_per_s"].get<double>(), "%.0f") + " (" + integer(c["transformer_batch"]) + ")",
              num(c["hybrid_tokens_per_s"].get<double>(), "%.0f") + " (" + integer(c["hybrid_batch"]) + ")",
              num(c["hybrid_over_transformer"].get<double>(), "%.2f") + "x"});
  return s;
}

}  // namespace mambalm::study
