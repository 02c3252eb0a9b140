// The chat-template loader (tokenizer_config.json forms, the default), errors (one line naming the
// template line; raise_exception keeps the template's message), and every construct of the Jinja
// subset, each rendered by us and by Python's jinja2 set up as transformers sets it up
// (tests/chat_template_reference.py) and compared byte for byte (skipped without python3-jinja2).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tokenizer/chat_template/chat_template.h"
#include "tokenizer/chat_template/jinja_error.h"
#include "tokenizer_test_util.h"

namespace mambalm {
namespace {

using nlohmann::json;

json conversation() {
  return json::parse(R"([{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hello"},
                         {"role": "assistant", "content": "Hi there"}, {"role": "user", "content": "Bye"}])");
}

std::string write_config(const std::string& dir, const json& config) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer_config.json") << config.dump();
  return dir;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ChatTemplate, DefaultWithoutTokenizerConfig) {
  const std::string dir = testing::temp_dir("chat-default");
  const ChatTemplate t = ChatTemplate::from_model_dir(dir);
  EXPECT_TRUE(t.is_default());
  EXPECT_EQ(t.source_name(), "built-in default");
  EXPECT_EQ(t.implied_stop(), "\n\nUser:");
  EXPECT_EQ(t.render(conversation()), "System: Sys\n\nUser: Hello\n\nAssistant: Hi there\n\nUser: Bye\n\nAssistant:");
  // A config without chat_template keeps the default too.
  write_config(dir, {{"bos_token", "<s>"}});
  EXPECT_TRUE(ChatTemplate::from_model_dir(dir).is_default());
}

TEST(ChatTemplate, ConfigForms) {
  const std::string base = testing::temp_dir("chat-forms");
  const std::string tmpl = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}";
  // AddedToken objects for the special tokens.
  const ChatTemplate a = ChatTemplate::from_model_dir(write_config(
      base + "/a", {{"chat_template", tmpl}, {"bos_token", {{"content", "<s>"}, {"lstrip", false}}}, {"eos_token", "</s>"}}));
  EXPECT_FALSE(a.is_default());
  EXPECT_EQ(a.implied_stop(), "");
  EXPECT_EQ(a.render(conversation()), "<s>SysHelloHi thereBye</s>");
  EXPECT_EQ(a.source_name(), base + "/a/tokenizer_config.json chat_template");
  // A list of named templates: "default" is the one.
  const ChatTemplate b = ChatTemplate::from_model_dir(write_config(
      base + "/b", {{"chat_template", json::array({{{"name", "tool_use"}, {"template", "TOOLS"}}, {{"name", "default"}, {"template", tmpl}}})},
                    {"bos_token", nullptr}}));
  EXPECT_EQ(b.render(conversation()), "SysHelloHi thereBye");  // a null bos_token is undefined: ""
  // Malformed configs: one line naming the file.
  const std::string c = write_config(base + "/c", {{"chat_template", json::array({{{"name", "rag"}, {"template", "x"}}})}});
  EXPECT_NE(error_of([&] { ChatTemplate::from_model_dir(c); }).find("without a template named \"default\""), std::string::npos);
  const std::string d = write_config(base + "/d", {{"chat_template", 3}});
  EXPECT_NE(error_of([&] { ChatTemplate::from_model_dir(d); }).find(d + "/tokenizer_config.json: 'chat_template' must be"),
            std::string::npos);
  const std::string e = write_config(base + "/e", {{"chat_template", "x"}, {"eos_token", 5}});
  EXPECT_NE(error_of([&] { ChatTemplate::from_model_dir(e); }).find("'eos_token' must be a string"), std::string::npos);
  std::ofstream(base + "/e/tokenizer_config.json") << "{not json";
  EXPECT_NE(error_of([&] { ChatTemplate::from_model_dir(e); }).find("not valid JSON"), std::string::npos);
}

TEST(ChatTemplate, ErrorsAreOneLineNamingTheTemplateLine) {
  auto render_error = [](const std::string& source) {
    return error_of([&] { ChatTemplate::from_source(source, "<s>", "</s>", "T").render(conversation()); });
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a\nb\n{{ foo( }}", "T chat_template line 3: unclosed '{{'"},
      {"{% if x %}\nno end", "T chat_template line 1: missing {% endif %} for the tag opened here"},
      {"{% for x in y %}{% else %}", "T chat_template line 1: missing {% endfor %} for the tag opened here"},
      {"\n{% include 'x' %}", "T chat_template line 2: unknown or unsupported tag 'include'"},
      {"{{ 'x' | frobnicate }}", "T chat_template line 1: unknown filter 'frobnicate'"},
      {"{{ x is frob }}", "T chat_template line 1: unknown test 'frob'"},
      {"\n\n{{ nothing() }}", "T chat_template line 3: 'nothing' is undefined (called as a function)"},
      {"{{ missing.attr }}", "T chat_template line 1: 'missing' is undefined (reading .attr)"},
      {"{{ 1 + 'a' }}", "T chat_template line 1: unsupported operand types for +: 'int' and 'str'"},
      {"{{ 1 // 0 }}", "T chat_template line 1: integer division or modulo by zero"},
      {"{{ 1 < 2 < 3 }}", "T chat_template line 1: chained comparisons (a < b < c) are not supported"},
      {"{{ 'a' ! 'b' }}", "T chat_template line 1: unexpected character '!' in an expression"},
      {"{{ 'abc }}", "T chat_template line 1: unclosed string literal"},
      {"{% set x.y = 1 %}", "T chat_template line 1: cannot set attribute 'y' on 'x': only namespace() objects take attributes"},
      {"{% for m in messages %}\n{{ raise_exception('Only user and assistant roles are supported!') }}{% endfor %}",
       "T chat_template line 2: the template raised an exception: Only user and assistant roles are supported!"},
      {"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "T chat_template line 1: macros nest deeper than 100 calls"},
      {"{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
       "T chat_template line 1: the template runs too long (more than 1M steps)"},
      {"{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}", "the template nests deeper than 200 levels"},
      {"{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
       "T chat_template line 1: a value larger than 64 MiB"},
      {"\xff", "T chat_template: invalid UTF-8 at byte 0"},
      // Found by fuzz_chat_template's long run (signed overflow, undefined behaviour before):
      {"{{55*555555551*5555**5}}", "T chat_template line 1: integer overflow in '*'"},
      {"{{ 9223372036854775807 + 1 }}", "T chat_template line 1: integer overflow in '+'"},
      {"{{ -9223372036854775807 - 2 }}", "T chat_template line 1: integer overflow in '-'"},
      {"{{ (-9223372036854775807 - 1) // -1 }}", "T chat_template line 1: integer overflow in '//'"},
      {"{{ -(-9223372036854775807 - 1) }}", "T chat_template line 1: integer overflow in unary '-'"},
      {"{{ (-9223372036854775807 - 1) | abs }}", "T chat_template line 1: integer overflow in abs()"},
      {"{{ [9223372036854775807, 1] | sum }}", "T chat_template line 1: integer overflow in sum"},
  };
  for (const auto& [source, want] : cases) {
    const std::string got = render_error(source);
    EXPECT_NE(got.find(want), std::string::npos) << "template: " << source << "\n got: " << got;
    EXPECT_EQ(got.find('\n'), std::string::npos) << "one line: " << got;
  }
  try {
    ChatTemplate::from_source("{{ raise_exception('roles must alternate') }}", "", "", "T").render(conversation());
    ADD_FAILURE() << "no exception";
  } catch (const jinja::TemplateRaised& e) {
    EXPECT_EQ(e.message(), "roles must alternate");
  }
}

// Each construct of the subset, in a template of its own, against Python's jinja2.
const char* const kSweep[] = {
    // loop variables, for-if, else, break, continue, cycle, previtem
    "{% for m in messages %}{{ loop.index0 }}/{{ loop.index }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/"
    "{{ loop.last }}/{{ loop.length }} {% endfor %}",
    "{% for m in messages if m.role != 'system' %}{% if loop.index > 2 %}{% break %}{% endif %}{% if m.role == 'assistant' %}"
    "{% continue %}{% endif %}[{{ m.role }}]{% endfor %}{% for x in [] %}no{% else %}empty{% endfor %}",
    "{% for m in messages %}{{ loop.cycle('o', 'e') }}{{ loop.previtem.role if loop.previtem is defined else '-' }}"
    "{{ loop.nextitem.role if loop.nextitem is defined else '.' }}{% endfor %}",
    // slices, map, join, first/last, tojson of lists
    "{{ messages[1:] | map(attribute='role') | join(',') }}|{{ messages[::-1] | map(attribute='role') | list | tojson }}|"
    "{{ (messages | last).content[:-1] }}|{{ messages[-1].content }}|{{ messages[1:3] | length }}|{{ 'abcdef'[::2] }}|"
    "{{ 'abcdef'[-2:] }}|{{ 'abcdef'[5:1:-2] }}|{{ (messages | first).role }}",
    // namespace objects and attribute assignment
    "{% set ns = namespace(n=0, s='', found=false) %}{% for m in messages %}{% set ns.n = ns.n + m.content | length %}"
    "{% set ns.s = ns.s ~ m.role[0] %}{% if m.role == 'assistant' %}{% set ns.found = true %}{% endif %}{% endfor %}"
    "{{ ns.n }} {{ ns.s }} {{ ns.found }}",
    // scoping: a set inside a loop does not leak out of it
    "{% set x = 'outer' %}{% for m in messages %}{% set x = m.role %}{% endfor %}{{ x }}",
    // arithmetic, with Python's floor division, modulo and float formatting
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 * 2 }} {{ 10 / 4 }} "
    "{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 123456789.0 * 1000 }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ -(3) }} {{ 7.5 // 2 }} "
    "{{ -7.5 % 2 }} {{ true + 1 }}",
    // comparisons, membership, tests
    "{{ 1 < 2 }} {{ 'a' in 'cat' }} {{ 'x' not in ['a', 'b'] }} {{ 'role' in messages[0] }} {{ none is none }} "
    "{{ messages is iterable }} {{ messages[0] is mapping }} {{ 3 is odd }} {{ 4 is divisibleby 2 }} {{ nope is defined }} "
    "{{ 'A' is upper }} {{ 'a' is string }} {{ 1 is number }} {{ 1.0 is float }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} "
    "{{ messages[0] is not none }} {{ 2 is eq 2 }} {{ 'b' >= 'a' }} {{ [1, 2] < [1, 3] }} {{ none is defined }}",
    // string methods
    "{{ '  x y  '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|"
    "{{ 'hello wORLD'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'abc'.startswith(('x', 'a')) }}|{{ 'abc'.endswith('bc') }}|"
    "{{ 'aXbXc'.replace('X', '-', 1) }}|{{ 'xxhixx'.strip('x') }}|{{ '\\n\\nhi\\n'.lstrip('\\n') }}|{{ 'hi  '.rstrip() }}|"
    "{{ 'Grüße'.upper() }}|{{ 'ÀB'.lower() }}|{{ 'héllo'[1:3] }}|{{ 'héllo' | length }}|{{ 'banana'.count('an') }}|"
    "{{ 'banana'.find('n') }}|{{ '-'.join(['a', 'b']) }}",
    // filters
    "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(' + ') }}|"
    "{{ messages | rejectattr('role', 'eq', 'user') | list | length }}|{{ messages | selectattr('missing', 'undefined') | list | length }}|"
    "{{ {'b': 1, 'a': [1, 2.5, none, true]} | tojson }}|{{ {'b': 1, 'a': {'c': 'é\"\\n'}} | tojson(indent=2) }}|"
    "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|{{ x | default('dflt') }}|{{ '' | default('e', true) }}|"
    "{{ [3, 1, 2] | sort | join }}|{{ ['b', 'A', 'c'] | sort | join }}|{{ ['b', 'a'] | sort(reverse=true) | join }}|"
    "{{ '42' | int + 1 }}|{{ '3.7' | float }}|{{ 'x' | int }}|{{ [1, 2, 2, 3] | unique | list }}|{{ 'ab' | reverse }}|"
    "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ [1, 2, 3] | sum }}|{{ 2.567 | round(2) }}|"
    "{{ 'x' | capitalize }}|{{ -3 | abs }}|{{ '  t  ' | trim }}|{{ 'ab' | upper }}|{{ 'AB' | lower }}|{{ 12 | string }}|"
    "{{ [1, 2] | first }}{{ [1, 2] | last }}|{{ messages | length }}|{{ 'hi' | list }}|{{ ['a', 'b'] | map('upper') | join }}|"
    "{{ [0, 1, 2] | select('odd') | list }}|{{ [0, 1, 2] | reject | list }}|{{ '<&>' | e }}|{{ 'x' | safe }}",
    // dicts: items, keys, values, get, attribute and subscript access
    "{% for k, v in {'p': 1, 'q': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in {'r': 3} | items %}{{ k }}{{ v }}{% endfor %}"
    "{{ messages[0]['role'] }} {{ messages[0].get('missing', 'dflt') }} {{ messages[0].get('missing') }} "
    "{{ messages[0].missing is undefined }} {{ {'a': 1}.keys() | list }} {{ {'a': 1}.values() | list }} {{ messages[10] is defined }}",
    // macros with defaults and keyword arguments; set blocks; tuple assignment
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('a') }} {{ greet('b', punct='?') }} "
    "{{ greet(name='c') }}{% set a, b = 1, 2 %} {{ a + b }}{% set t %}x{{ a }}y{% endset %} {{ t }}",
    // ternaries and the values of and/or; printing of Python values
    "{{ 'y' if messages else 'n' }} {{ 'z' if false }}. {{ none or 'fallback' }} {{ 0 and 1 }} {{ [] or [1] }} {{ 'x' ~ 1 ~ none }} "
    "{{ none }} {{ true }} {{ 1.0 }} {{ [1, 'a', none, \"it's\"] }} {{ {'a': 1} }} {{ x }}|{{ range(3) | list }} {{ range(1, 10, 3) | list }}",
    // whitespace control, trim_blocks, lstrip_blocks, comments
    "A\n  {% if true %}\n    B\n  {% endif %}\nC\n{#- comment -#}\n  D {{- ' E ' -}} F\n  {# c #}\n G {% if true -%}\n  H\n{%- endif %}\n",
    // string literals: escapes and adjacent literals
    "{{ 'tab\\there \\u00e9 \\x41 \\\\ \\' \"' }} {{ \"dq\" 'sq' }} {{ 'line\nbreak' }}",
    // generation blocks render in place; bos/eos are defined
    "{{ bos_token }}{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}{{ eos_token }}",
};

TEST(ChatTemplate, SubsetSweepVsPythonJinja2) {
  if (std::system("python3 -c 'import jinja2' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "reference unavailable: python3 with jinja2 not found (run scripts/setup.sh: Debian's python3-jinja2)";
  const std::string dir = testing::temp_dir("chat-sweep");
  json request = {{"cases", json::array()}};
  std::vector<std::string> configs;
  for (size_t i = 0; i < std::size(kSweep); ++i) {
    configs.push_back(write_config(dir + "/t" + std::to_string(i), {{"chat_template", kSweep[i]}, {"bos_token", "<s>"}, {"eos_token", "</s>"}}));
    request["cases"].push_back({{"config", configs.back() + "/tokenizer_config.json"}, {"messages", conversation()}, {"add_generation_prompt", true}});
  }
  std::ofstream(dir + "/request.json") << request.dump();
  const std::string cmd = "python3 " + testing::source_dir() + "/tests/chat_template_reference.py <" + dir + "/request.json >" +
                          dir + "/reply.json 2>" + dir + "/err";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << testing::read_all(dir + "/err");
  const json theirs = json::parse(testing::read_all(dir + "/reply.json"));
  ASSERT_EQ(theirs.size(), std::size(kSweep));
  for (size_t i = 0; i < std::size(kSweep); ++i) {
    ASSERT_TRUE(theirs[i].contains("text")) << kSweep[i] << "\n python: " << theirs[i].dump();
    std::string ours;
    try {
      ours = ChatTemplate::from_model_dir(configs[i]).render(conversation());
    } catch (const Error& e) {
      ours = std::string("error: ") + e.what();
    }
    EXPECT_EQ(ours, theirs[i]["text"].get<std::string>()) << "template " << i << ": " << kSweep[i];
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mambalm
