"""Load on `mambalm serve` from Python's standard library alone (for machines without Node;
tests/serve/load_clients.mjs is the fuller client): C threads for D seconds, each looping over
streamed greedy completions of fixed prompts; every completed stream must equal the same request
run alone. Prints requests/s, time to first token (p50/p90), streamed tokens/s, mismatches.
  python3 bench/serve_load.py http://127.0.0.1:PORT [clients=64] [seconds=30] [max_tokens=64]"""
import http.client, json, sys, threading, time, urllib.parse

url, C, D, MAXT = (sys.argv[1:] + [None, "64", "30", "64"][len(sys.argv) - 1:])[:4]
C, D, MAXT = int(C), float(D), int(MAXT)
host = urllib.parse.urlparse(url)
PROMPTS = ["Once upon a time", "The quick brown fox", "In 1969,", "Mamba is", "def main():", "A hybrid model", "Q: why?", "x"]


def post(prompt, stream):
    c = http.client.HTTPConnection(host.hostname, host.port, timeout=600)
    c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": MAXT, "temperature": 0,
                                                      "ignore_eos": True, "stream": stream}),
              {"Content-Type": "application/json"})
    return c, c.getresponse()


reference = {}
for p in PROMPTS:
    c, r = post(p, False)
    reference[p] = json.loads(r.read())["choices"][0]["text"]
    c.close()

lock = threading.Lock()
stats = {"done": 0, "mismatched": 0, "errors": 0, "chunks": 0, "ttft": []}
deadline = time.time() + D


def client(k):
    i = k
    while time.time() < deadline:
        p = PROMPTS[i % len(PROMPTS)]
        i += 1
        try:
            t0 = time.perf_counter()
            c, r = post(p, True)
            text, first, chunks = "", None, 0
            for line in r:
                line = line.strip()
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                ev = json.loads(line[6:])
                piece = ev["choices"][0]["text"] if ev.get("choices") else ""
                if piece and first is None:
                    first = time.perf_counter() - t0
                text += piece
                chunks += 1 if piece else 0
            c.close()
            with lock:
                stats["done"] += 1
                stats["chunks"] += chunks
                stats["ttft"].append(first or 0.0)
                stats["mismatched"] += text != reference[p]
        except Exception:
            with lock:
                stats["errors"] += 1


t0 = time.time()
threads = [threading.Thread(target=client, args=(k,)) for k in range(C)]
for t in threads:
    t.start()
for t in threads:
    t.join()
el = time.time() - t0
tt = sorted(stats["ttft"]) or [0.0]
print(json.dumps({"clients": C, "seconds": round(el, 1), "requests": stats["done"], "requests_per_s": round(stats["done"] / el, 2),
                  "ttft_p50_s": round(tt[len(tt) // 2], 3), "ttft_p90_s": round(tt[int(len(tt) * 0.9)], 3),
                  "tokens_per_s": round(stats["chunks"] / el, 1), "mismatched": stats["mismatched"], "errors": stats["errors"]}))
