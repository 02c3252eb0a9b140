#!/usr/bin/env python3
"""Opens a study's report.html in headless Chromium and checks that the page, as rendered after
its scripts ran, shows results.json's numbers: every family's row of held-out language modelling,
each retrieval task by length, multiple choice, decode speed, and the 8B-shape table; and that
the copy of results.json the page carries (and draws its charts from) equals the file.

  python3 scripts/study_page_check.py DIR [--screenshot PNG] [--height PX (default 4500)]

Exit 0 when every number was found, 1 with the missing ones listed otherwise."""
import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path


def chromium(*args):
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        sys.exit("study_page_check: no Chromium on PATH (scripts/setup.sh installs it)")
    base = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=180).stdout


def table_rows(dom):
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", dom, re.S):
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr, re.S)
        rows.append([html.unescape(re.sub(r"<.*?>", "", c)).strip() for c in cells])
    return rows


def shows(cell, value):
    """A cell shows a value when it starts with it, whole ("3537.6, 16944.0", "0.188 ± 0.049")."""
    return re.match(re.escape(value) + r"(?![0-9])", cell) is not None


def expected(r):
    """(what, first cell of the row, strings the row must hold), formatted as the report prints them."""
    for fam, lm in r["lm"].items():
        yield "held-out", fam, ["%.3f" % lm["token_perplexity"], "%.4f" % lm["byte_perplexity"], "%.4f" % lm["bits_per_byte"]]
    for fam, tasks in r["retrieval"].items():
        for task, t in tasks.items():
            yield task, fam, ["%.3f" % v for v in t["by_length"].values()] + ["%.3f" % t["accuracy"]]
    for fam, rows in r["speed"].items():
        yield "decode", fam, ["%.1f" % s["decode_tokens_per_s"] for s in rows]
    for fam, mc in r["multiple_choice"].items():
        yield "multiple choice", fam, ["%.3f" % mc["cloze"]["acc"], "%.3f" % mc["letter"]["acc"]]
    for row in r.get("speed_8b", {}).get("rows", []):
        yield "8B shapes", str(row["context"]), [
            "%.0f (%d)" % (row["transformer_tokens_per_s"], row["transformer_batch"]),
            "%.0f (%d)" % (row["hybrid_tokens_per_s"], row["hybrid_batch"]),
            "%.2fx" % row["hybrid_over_transformer"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--screenshot")
    ap.add_argument("--height", type=int, default=4500)  # the `small` report's length
    a = ap.parse_args()
    page = (Path(a.dir) / "report.html").resolve()
    r = json.loads((Path(a.dir) / "results.json").read_text())
    dom = chromium("--dump-dom", page.as_uri())
    rows = table_rows(dom)
    missing, numbers = [], 0
    for what, first, values in expected(r):
        numbers += len(values)
        if not any(c and c[0] == first and all(any(shows(cell, v) for cell in c[1:]) for v in values) for c in rows):
            missing.append(f"{what} {first}: {values}")
    carried = re.search(r'<script type="application/json" id="results">(.*?)</script>', dom, re.S)
    if not carried or json.loads(html.unescape(carried.group(1))) != r:
        missing.append("the page's embedded results.json differs from the file")
    charts = dom.count("<canvas")
    print(f"study_page_check: {page}: {len(rows)} table rows, {charts} charts; "
          f"{numbers} numbers of results.json looked up in the rendered tables, {len(missing)} problems")
    for m in missing:
        print("  missing:", m)
    if a.screenshot:
        chromium(f"--window-size=1280,{a.height}", f"--screenshot={Path(a.screenshot).resolve()}", page.as_uri())
        print(f"study_page_check: screenshot {a.screenshot}")
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
