// Load on `mambalm serve` over loopback with Node's built-in fetch (no packages): C concurrent
// clients for D seconds, each looping over streamed greedy completions of a few fixed prompts,
// some hanging up mid-stream and some sending malformed bodies. Afterwards: every stream that
// completed must equal the same request run alone (unstreamed, before the load); prints
// requests/s, time to first token (p50/p90), streamed tokens/s and the server's resident memory
// before and after.
// Usage: node tests/serve/load_clients.mjs URL [clients=16] [seconds=30] [max_tokens=32]
//                                          [disconnect_fraction=0.1] [malformed_fraction=0.05]
const [url, C = "16", D = "30", MAXT = "32", PDISC = "0.1", PBAD = "0.05"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node load_clients.mjs http://127.0.0.1:PORT [clients] [seconds] [max_tokens] [disconnect] [malformed]");
  process.exit(2);
}
const clients = Number(C), seconds = Number(D), maxTokens = Number(MAXT), pDisc = Number(PDISC), pBad = Number(PBAD);
const prompts = ["Once upon a time", "The quick brown fox", "In 1969,", "Mamba is", "def main():", "A hybrid model", "Q: why?", "x"];
const body = (p, stream) => JSON.stringify({ prompt: p, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream });

async function metric(name) {
  const m = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`\n${name} (\\S+)`).exec(m)[1]);
}
const residentBytes = () => metric("process_resident_memory_bytes");

const reference = {};
for (const p of prompts) {
  const r = await (await fetch(`${url}/v1/completions`, { method: "POST", body: body(p, false) })).json();
  reference[p] = r.choices[0].text;
}
const rssBefore = await residentBytes();
const tokensBefore = await metric("mambalm_generation_tokens_total");

const stats = { done: 0, mismatched: 0, disconnected: 0, malformed: 0, badStatus: 0, errors: 0, chunks: 0, ttft: [] };
const deadline = Date.now() + seconds * 1000;
const t0 = Date.now();

async function oneStream(p, hangUp) {
  const ctl = new AbortController();
  const start = performance.now();
  const res = await fetch(`${url}/v1/completions`, { method: "POST", body: body(p, true), signal: ctl.signal });
  if (res.status !== 200) return void stats.badStatus++;
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "", text = "", first = true, finished = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (!ev.startsWith("data: ")) continue;
      const data = ev.slice(6);
      if (data === "[DONE]") { finished = true; continue; }
      const chunk = JSON.parse(data);
      if (first) { stats.ttft.push(performance.now() - start); first = false; }
      stats.chunks++;
      text += chunk.choices[0]?.text ?? "";
      if (hangUp && stats.chunks % 3 === 0) { ctl.abort(); stats.disconnected++; return; }
    }
  }
  if (!finished) return void stats.errors++;
  stats.done++;
  if (text !== reference[p]) stats.mismatched++;
}

async function client(i) {
  let k = i;
  while (Date.now() < deadline) {
    const p = prompts[k++ % prompts.length];
    try {
      if (Math.random() < pBad) {
        const r = await fetch(`${url}/v1/completions`, { method: "POST", body: '{"prompt": "x", "max_tokens": ' });
        await r.text();
        if (r.status === 400) stats.malformed++; else stats.badStatus++;
      } else {
        await oneStream(p, Math.random() < pDisc);
      }
    } catch (e) {
      if (e.name !== "AbortError") stats.errors++;
    }
  }
}
await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
const elapsed = (Date.now() - t0) / 1000;
await new Promise((r) => setTimeout(r, 1000));
const rssAfter = await residentBytes();
const tokensServed = (await metric("mambalm_generation_tokens_total")) - tokensBefore;
const health = (await fetch(`${url}/health`)).status;
const q = (a, f) => a.slice().sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * f))] ?? NaN;
console.log(JSON.stringify({
  clients, seconds: elapsed, max_tokens: maxTokens,
  completed_streams: stats.done, mismatched_vs_alone: stats.mismatched, disconnected: stats.disconnected,
  malformed_rejected: stats.malformed, unexpected_status: stats.badStatus, errors: stats.errors,
  requests_per_s: +(stats.done / elapsed).toFixed(2),
  ttft_ms_p50: +q(stats.ttft, 0.5).toFixed(1), ttft_ms_p90: +q(stats.ttft, 0.9).toFixed(1),
  generated_tokens_per_s: +(tokensServed / elapsed).toFixed(1),
  rss_mb_before: +(rssBefore / 2 ** 20).toFixed(1), rss_mb_after: +(rssAfter / 2 ** 20).toFixed(1), health_after: health,
}));
process.exit(stats.mismatched || stats.errors || stats.badStatus || health !== 200 ? 1 : 0);
