#include "eval/tasks/study_phonebook.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "eval/tasks/length_fit.h"

namespace mambalm::eval {

namespace {

// Ten digits, the first one 6-9, as Jelassi et al.'s rand_phone.
std::string jelassi_number(Rng& rng) {
  std::string s(10, '0');
  s[0] = static_cast<char>('6' + rng.next_u64() % 4);
  for (size_t i = 1; i < s.size(); ++i) s[i] = static_cast<char>('0' + rng.next_u64() % 10);
  return s;
}

// One book's entries, drawn on demand from the sample's stream (so a longer book extends a
// shorter one: the first n entries never depend on how many are drawn).
class Book {
 public:
  Book(const NameLists& names, Rng rng) : names_(names), rng_(rng) {}
  void ensure(size_t n) {
    const uint64_t people = static_cast<uint64_t>(names_.first.size()) * names_.last.size();
    while (entries_.size() < n) {
      check(used_.size() < people, "phonebook", "the name lists cannot fill a book of " + std::to_string(n) + " entries",
            "use shorter lengths or the fetched name lists (scripts/fetch-eval-data.sh)");
      const size_t f = rng_.next_u64() % names_.first.size(), l = rng_.next_u64() % names_.last.size();
      if (!used_.insert({f, l}).second) continue;
      std::string line = names_.first[f] + " " + names_.last[l] + ": ";
      const size_t name_end = line.size() - 2;
      line += jelassi_number(rng_);
      entries_.push_back({line, name_end});
    }
  }
  const std::string& line(size_t i) const { return entries_[i].first; }
  std::string name(size_t i) const { return entries_[i].first.substr(0, entries_[i].second); }
  std::string number(size_t i) const { return entries_[i].first.substr(entries_[i].second + 2); }

 private:
  const NameLists& names_;
  Rng rng_;
  std::set<std::pair<size_t, size_t>> used_;
  std::vector<std::pair<std::string, size_t>> entries_;  // (line, length of the name)
};

struct Lookup {
  std::string prompt, answer;
};

// The prompt over the first n entries; the target and the examples are drawn from a stream
// seeded by (select_seed, n), so the same n always gives the same prompt.
Lookup build(Book& book, size_t n, uint64_t select_seed, int64_t shots, bool reversed) {
  book.ensure(n);
  Rng sel = Rng(select_seed).fork(n);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  const size_t picks = static_cast<size_t>(shots) + 1;  // the examples, then the target
  for (size_t i = 0; i < picks; ++i) std::swap(order[i], order[i + sel.next_u64() % (n - i)]);
  const size_t target = order[static_cast<size_t>(shots)];
  std::string prompt;
  if (reversed) prompt = "Lookup: " + book.name(target) + "\n\n";
  for (size_t i = 0; i < n; ++i) prompt += book.line(i) + (i + 1 < n ? "\n" : "");
  prompt += "\n\n";
  for (int64_t k = 0; k < shots; ++k) prompt += book.line(order[static_cast<size_t>(k)]) + (k + 1 < shots ? "\n" : "\n\n");
  prompt += book.name(target) + ":";
  return {prompt, book.number(target)};
}

}  // namespace

std::vector<int64_t> study_phonebook_lengths(int64_t longest) {
  if (longest <= 0) return {500, 1000, 2000, 4000, 8000};
  std::vector<int64_t> out;
  for (int64_t l = 500; l <= longest; l *= 2) out.push_back(l);
  if (out.empty() || out.back() != longest) out.push_back(longest);
  return out;
}

std::vector<GenerationSample> make_study_phonebook(const StudyPhonebookOptions& opts, const NameLists& names,
                                                   const TokenCounter& count_tokens) {
  check(!names.first.empty() && !names.last.empty(), "phonebook", "empty name lists");
  check(opts.shots >= 0, "phonebook", "--shots must be >= 0");
  check(opts.samples_per_cell > 0, "phonebook", "samples per cell must be positive");
  check(!opts.lengths.empty(), "phonebook", "no lengths given");
  std::vector<GenerationSample> out;
  const int64_t min_entries = opts.shots + 1;
  for (size_t li = 0; li < opts.lengths.size(); ++li) {
    const int64_t target = opts.lengths[li];
    check(target > 0, "phonebook", "lengths must be positive");
    int64_t fitted = 0;  // entries that fit, found on the first book of this length
    for (int64_t s = 0; s < opts.samples_per_cell; ++s) {
      Rng rng = Rng(opts.seed ^ 0x5eed0b00c5ull).fork(li * 1000003 + static_cast<uint64_t>(s) + 1);
      const uint64_t select_seed = rng.next_u64();
      Book book(names, rng.fork(7));
      auto fits = [&](int64_t n) {
        return count_tokens(build(book, static_cast<size_t>(n), select_seed, opts.shots, opts.reversed).prompt) +
                   kStudyPhonebookAnswerTokens <= target;
      };
      const std::string what = "phonebook_study length " + std::to_string(target);
      if (s == 0) {
        book.ensure(16);
        std::string sample_text;
        for (size_t i = 0; i < 16; ++i) sample_text += book.line(i) + "\n";
        const int64_t per_entry = std::max<int64_t>(1, count_tokens(sample_text) / 16);
        const int64_t hi = std::max<int64_t>(min_entries, 3 * target / per_entry + 16);
        fitted = largest_fitting(min_entries, hi, fits);
        check(fitted >= min_entries, what, "too short for " + std::to_string(min_entries) + " entries and the answer",
              "give longer --lengths or fewer --shots");
      }
      const int64_t n = fit_near(fitted, min_entries, fits, what);
      Lookup l = build(book, static_cast<size_t>(n), select_seed, opts.shots, opts.reversed);
      GenerationSample g;
      g.prompt = std::move(l.prompt);
      g.answer = std::move(l.answer);
      g.until = {"\n"};
      g.max_gen_tokens = kStudyPhonebookAnswerTokens;
      g.tags = {{"length", std::to_string(target)}, {"format", opts.reversed ? "reversed" : "standard"}};
      out.push_back(std::move(g));
    }
  }
  return out;
}

}  // namespace mambalm::eval
