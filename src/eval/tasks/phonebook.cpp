#include "eval/tasks/phonebook.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/rng.h"

namespace mambalm::eval {

namespace {

// Written for this project: common given names and surnames, enough for books of a few
// thousand distinct people (60 x 60 = 3600 full names). The fetched lists are far larger.
const char* const kFirst[] = {
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Margaret", "Donald", "Sandra",
    "Steven", "Ashley", "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol",
    "Kevin", "Amanda", "Brian", "Melissa", "George", "Deborah", "Edward", "Stephanie", "Ronald", "Rebecca",
    "Timothy", "Laura", "Jason", "Sharon", "Jeffrey", "Cynthia", "Ryan", "Kathleen", "Jacob", "Amy"};
const char* const kLast[] = {
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes"};

std::vector<std::string> read_list(const std::string& path) {
  std::ifstream f(path);
  check(f.good(), path, "cannot read the name list", "run scripts/fetch-eval-data.sh");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(f, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    // One word of letters: names with spaces, hyphens or digits would blur the line format.
    if (line.size() < 2 || !std::all_of(line.begin(), line.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); }))
      continue;
    out.push_back(line);
  }
  check(out.size() >= 10, path, "holds fewer than 10 usable names");
  return out;
}

std::string cache_dir() {
  const char* c = std::getenv("MAMBALM_CACHE");
  if (c && *c) return std::string(c) + "/eval";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/mambalm/eval";
}

std::string phone_number(Rng& rng) {
  char buf[16];
  auto d = [&](int lo) { return static_cast<int>(lo + rng.next_u64() % static_cast<uint64_t>(10 - lo)); };
  std::snprintf(buf, sizeof buf, "%d%d%d-%d%d%d-%d%d%d%d", d(2), d(0), d(0), d(2), d(0), d(0), d(0), d(0), d(0), d(0));
  return buf;
}

}  // namespace

NameLists builtin_name_lists() {
  NameLists n;
  n.first.assign(std::begin(kFirst), std::end(kFirst));
  n.last.assign(std::begin(kLast), std::end(kLast));
  n.source = "built-in";
  return n;
}

NameLists load_name_lists(const std::string& which) {
  if (which == "built-in") return builtin_name_lists();
  std::string dir = which == "auto" ? cache_dir() : which;
  namespace fs = std::filesystem;
  if (!fs::exists(dir + "/first-names.txt") || !fs::exists(dir + "/surnames.txt")) {
    check(which == "auto", which, "no first-names.txt and surnames.txt here", "run scripts/fetch-eval-data.sh");
    return builtin_name_lists();
  }
  NameLists n;
  n.first = read_list(dir + "/first-names.txt");
  n.last = read_list(dir + "/surnames.txt");
  n.source = which == "auto" ? "random-name@0.1.2 (npm), " + dir : dir;
  return n;
}

std::vector<GenerationSample> make_phonebook(const PhonebookOptions& opts, const NameLists& names,
                                             const TokenCounter& count_tokens) {
  check(!names.first.empty() && !names.last.empty(), "phonebook_depth", "empty name lists");
  check(opts.shots >= 0, "phonebook_depth", "--shots must be >= 0");
  check(opts.samples_per_cell > 0, "phonebook_depth", "samples per cell must be positive");
  for (double d : opts.depths) check(d >= 0 && d <= 1, "phonebook_depth", "depth " + tag_number(d) + " is outside [0, 1]");
  const uint64_t max_people = static_cast<uint64_t>(names.first.size()) * names.last.size();
  std::vector<GenerationSample> out;
  for (size_t li = 0; li < opts.book_tokens.size(); ++li) {
    const int64_t target = opts.book_tokens[li];
    check(target > 0, "phonebook_depth", "book lengths must be positive");
    for (size_t di = 0; di < opts.depths.size(); ++di) {
      for (int64_t s = 0; s < opts.samples_per_cell; ++s) {
        // One stream per sample: changing one cell's settings leaves the others' books alone.
        Rng rng = Rng(opts.seed).fork(((li * 1000003 + di) * 1000003) + static_cast<uint64_t>(s) + 1);
        std::set<std::pair<size_t, size_t>> used;
        std::vector<std::pair<std::string, std::string>> book;  // (name, number)
        int64_t tokens = 0;
        while (tokens < target || static_cast<int64_t>(book.size()) < opts.shots + 1) {
          check(used.size() < max_people, "phonebook_depth", "the name lists cannot fill a book of " + std::to_string(target) + " tokens",
                "use shorter books or the fetched name lists");
          size_t f = rng.next_u64() % names.first.size(), l = rng.next_u64() % names.last.size();
          if (!used.insert({f, l}).second) continue;
          std::string name = names.first[f] + " " + names.last[l], number = phone_number(rng);
          tokens += count_tokens(name + ": " + number + "\n");
          book.emplace_back(std::move(name), std::move(number));
        }
        const size_t n = book.size();
        const double depth = opts.depths[di];
        const size_t ti = static_cast<size_t>(depth * static_cast<double>(n - 1) + 0.5);
        std::vector<size_t> others;
        for (size_t i = 0; i < n; ++i)
          if (i != ti) others.push_back(i);
        for (size_t i = 0; i < static_cast<size_t>(opts.shots); ++i)
          std::swap(others[i], others[i + rng.next_u64() % (others.size() - i)]);
        std::string book_text, shots_text;
        for (const auto& [name, number] : book) book_text += name + ": " + number + "\n";
        for (int64_t k = 0; k < opts.shots; ++k) {
          const auto& e = book[others[static_cast<size_t>(k)]];
          shots_text += e.first + ": " + e.second + "\n";
        }
        const std::string& target_name = book[ti].first;
        GenerationSample g;
        if (!opts.reversed) {
          g.prompt = book_text + "\n" + shots_text + target_name + ":";
        } else {
          g.prompt = "Find the phone number of a person in the phonebook below. Examples:\n" + shots_text +
                     "The person to find: " + target_name + "\n\nPhonebook:\n" + book_text + "\n" + target_name + ":";
        }
        g.answer = book[ti].second;
        g.until = {"\n"};
        g.max_gen_tokens = 24;
        g.tags = {{"length", std::to_string(target)}, {"depth", tag_number(depth)}, {"format", opts.reversed ? "reversed" : "standard"}};
        out.push_back(std::move(g));
      }
    }
  }
  return out;
}

}  // namespace mambalm::eval
