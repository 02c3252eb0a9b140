// The reference for bench/prepare_bench.sh: gpt-tokenizer (pure JavaScript, one thread) encodes
// the same documents `mambalm prepare` does, the same way (special-token text as plain text).
// Usage: node gpt_tokenizer_bench.mjs NODE_MODULES ENCODING CORPUS_DIR
// Prints one line: "gpt-tokenizer: FILES files, BYTES bytes, TOKENS tokens, SECONDS s, MB/s".
// Timed like prepare: from the first file read to the last document encoded.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, encoding, corpus] = process.argv.slice(2);
if (!modules || !encoding || !corpus) {
  console.error('usage: node gpt_tokenizer_bench.mjs NODE_MODULES ENCODING CORPUS_DIR');
  process.exit(2);
}
const mod = await import(pathToFileURL(path.join(modules, `gpt-tokenizer/esm/encoding/${encoding}.js`)).href);
const ordinary = { disallowedSpecial: new Set() };

// Every regular file below `dir`, names starting with '.' skipped, sorted by path as prepare does.
function walk(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}
const files = walk(corpus).sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));

mod.encode('warm up the module', ordinary);
const start = process.hrtime.bigint();
let bytes = 0, tokens = 0;
for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  bytes += Buffer.byteLength(text, 'utf8');
  tokens += mod.encode(text, ordinary).length + 1;  // + the end-of-document token prepare adds
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`gpt-tokenizer: ${files.length} files, ${bytes} bytes, ${tokens} tokens, ` +
            `${seconds.toFixed(3)} s, ${(bytes / 1e6 / seconds).toFixed(2)} MB/s`);
