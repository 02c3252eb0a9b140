// The reference side of tests/test_chat_template_parity.cpp: renders chat templates with
// @huggingface/jinja (transformers.js's Jinja) exactly as transformers' apply_chat_template
// calls Jinja: messages, add_generation_prompt, tools = documents = null, and the special tokens
// of tokenizer_config.json (strings or {"content": ...}). The template is chat_template, or the
// entry named "default" when chat_template is a list.
// stdin:  {"jinja": "<dir of @huggingface/jinja>", "cases": [{"config": "<tokenizer_config.json>",
//          "messages": [...], "add_generation_prompt": true}, ...]}
// stdout: [{"text": "..."} or {"error": "<message>"}, ...] in the order of the cases.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import path from "node:path";

const request = JSON.parse(readFileSync(0, "utf8"));
const { Template } = await import(pathToFileURL(path.join(request.jinja, "dist", "index.js")).href);

function tokenText(value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  return value.content;
}

const compiled = new Map();
function load(configPath) {
  if (!compiled.has(configPath)) {
    const config = JSON.parse(readFileSync(configPath, "utf8"));
    let source = config.chat_template;
    if (Array.isArray(source)) source = source.find((t) => t.name === "default").template;
    const tokens = {};
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      const text = tokenText(config[key]);
      if (text !== undefined) tokens[key] = text;
    }
    compiled.set(configPath, { template: new Template(source), tokens });
  }
  return compiled.get(configPath);
}

const results = request.cases.map((c) => {
  try {
    const { template, tokens } = load(c.config);
    const text = template.render({
      messages: c.messages,
      add_generation_prompt: c.add_generation_prompt,
      tools: null,
      documents: null,
      ...tokens,
    });
    return { text };
  } catch (e) {
    return { error: String(e.message ?? e) };
  }
});
process.stdout.write(JSON.stringify(results));
