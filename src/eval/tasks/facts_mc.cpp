#include "eval/tasks/facts_mc.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"
#include "io/indexed_dataset.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::eval {

namespace {

// Short, common words: each is a few pieces even in the study's 1,024-piece tokenizer.
const std::vector<std::string>& names() {
  static const std::vector<std::string> v = {"Ann",  "Bob",  "Carl", "Dora", "Eve",  "Finn", "Gus",  "Hana", "Ida",  "Jack",
                                             "Kate", "Leo",  "Mia",  "Ned",  "Olga", "Paul", "Rosa", "Sam",  "Tom",  "Uma",
                                             "Vera", "Walt", "Yves", "Zoe"};
  return v;
}
const std::vector<std::string>& colours() {
  static const std::vector<std::string> v = {"red", "blue", "green", "black", "white", "yellow", "brown", "pink", "gray", "orange"};
  return v;
}
const std::vector<std::string>& objects() {
  static const std::vector<std::string> v = {"hat", "cup", "bag", "car", "dog", "ball", "box", "pen", "coat", "book", "lamp", "boat"};
  return v;
}

// k distinct indices in [0, n), in random order.
std::vector<size_t> draw(Rng& rng, size_t n, size_t k) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  for (size_t i = 0; i < k; ++i) std::swap(idx[i], idx[i + rng.next_u64() % (n - i)]);
  idx.resize(k);
  return idx;
}

McDoc make_doc(Rng& rng, int64_t facts, McFormat format) {
  const size_t k = static_cast<size_t>(facts);
  const std::vector<size_t> who = draw(rng, names().size(), k), colour = draw(rng, colours().size(), k);
  const std::vector<size_t> what = draw(rng, objects().size(), k);
  std::string passage;
  for (size_t i = 0; i < k; ++i)
    passage += (i ? " " : "") + names()[who[i]] + "'s " + objects()[what[i]] + " is " + colours()[colour[i]] + ".";
  const size_t asked = static_cast<size_t>(rng.next_u64() % k);
  McDoc d;
  d.context = passage + "\nQuestion: What colour is " + names()[who[asked]] + "'s " + objects()[what[asked]] + "?";
  if (format == McFormat::Cloze) d.context += "\nAnswer:";  // the letter format's "Answer:" follows its list
  const std::vector<size_t> order = draw(rng, k, k);           // the choices: the passage's colours, shuffled
  for (size_t c = 0; c < k; ++c) {
    d.choices.push_back(colours()[colour[order[c]]]);
    if (order[c] == asked) d.gold = static_cast<int64_t>(c);
  }
  return d;
}

}  // namespace

std::vector<McDoc> make_facts_mc(const FactsMcOptions& opts, McFormat format) {
  check(opts.documents > 0, "facts_mc", "the number of questions must be positive");
  check(opts.facts >= 2 && opts.facts <= 8, "facts_mc", "facts per passage must lie in [2, 8], got " + std::to_string(opts.facts));
  // The same seed gives the same questions in both formats (only the rendering differs).
  Rng rng(opts.seed * 0x9e3779b97f4a7c15ull + 0x5eed);
  std::vector<McDoc> docs;
  for (int64_t i = 0; i < opts.documents; ++i) {
    Rng doc_rng = rng.fork(static_cast<uint64_t>(i));
    docs.push_back(make_doc(doc_rng, opts.facts, format));
  }
  return docs;
}

FactsMcTrainingSummary write_facts_mc_training_data(const FactsMcOptions& opts, int64_t shots, int64_t target_tokens,
                                                    const Tokenizer& tokenizer, int64_t vocab_size, const std::string& prefix) {
  check(shots >= 0 && target_tokens > 0, prefix, "facts_mc training data needs shots >= 0 and a positive token target");
  // A pool per format; each document draws its question and its shots from it.
  FactsMcOptions pool_opts = opts;
  pool_opts.documents = std::max<int64_t>(opts.documents, 4 * (shots + 1));
  const std::vector<McDoc> pools[2] = {make_facts_mc(pool_opts, McFormat::Cloze), make_facts_mc(pool_opts, McFormat::Letter)};
  io::IndexedDatasetWriter w(prefix, vocab_size);
  FactsMcTrainingSummary s;
  for (int64_t i = 0; s.tokens < target_tokens; ++i) {
    McOptions m;
    m.format = i % 2 == 0 ? McFormat::Cloze : McFormat::Letter;
    m.shots = shots;
    m.seed = opts.seed + static_cast<uint64_t>(i);
    const std::vector<McDoc>& pool = pools[i % 2];
    const size_t d = static_cast<size_t>((i / 2) % static_cast<int64_t>(pool.size()));
    const McPrompt p = build_mc_prompt(pool[d], d, pool, m);
    std::vector<int32_t> ids = tokenizer.encode(p.context + p.continuations[static_cast<size_t>(pool[d].gold)] + "\n");
    if (tokenizer.eos_id() >= 0 && tokenizer.eos_id() < vocab_size) ids.push_back(tokenizer.eos_id());  // as write_task_training_data
    w.add_document(ids);
    s.tokens += static_cast<int64_t>(ids.size());
    ++s.documents;
  }
  w.finish();
  return s;
}

}  // namespace mambalm::eval
