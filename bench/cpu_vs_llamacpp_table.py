#!/usr/bin/env python3
"""The table of bench/cpu_vs_llamacpp.sh from a results folder (RESULTS/<model>/t<threads>/r<round>_*):
median over rounds of prefill and decode tokens/s, ours / llama.cpp, decode against the DRAM
floor, peak resident memory.   python3 bench/cpu_vs_llamacpp_table.py RESULTS"""
import glob, json, os, re, statistics, sys
out = sys.argv[1]
def rss_mib(path):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
    return int(m.group(1)) / 1024 if m else None
def llama_tps(path):
    try: return json.load(open(path))[0]["avg_ts"]
    except Exception: return None
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, f="{:.1f}"): return "-" if x is None else f.format(x)
pairs = {"f32": "f32", "bf16": "bf16", "q8": "q8_0"}
print("| model | threads | weights | prefill tok/s ours / llama.cpp (ratio) | decode tok/s ours / llama.cpp (ratio) | ours: % of DRAM floor | peak RSS MiB ours / llama.cpp | load (median) |")
print("|---|---|---|---|---|---|---|---|")
for mdir in sorted(glob.glob(os.path.join(out, "*"))):
    for tdir in sorted(glob.glob(os.path.join(mdir, "t*"))):
        bw = med(json.load(open(f))["read_gb_s"] for f in glob.glob(os.path.join(tdir, "r*_membw.json")))
        loads = [float(open(f).read()) for f in glob.glob(os.path.join(tdir, "*.load"))]
        for ours_dt, theirs_dt in pairs.items():
            ours = [json.load(open(f)) for f in glob.glob(os.path.join(tdir, f"r*_ours_{ours_dt}.out")) if os.path.getsize(f)]
            if not ours: continue
            o_pp = med(d["prefill_tokens_per_s"] for d in ours)
            o_tg = med(d["decode_tokens_per_s"] for d in ours)
            # DRAM floor: the weight (and state) bytes a token reads, at the probe's read rate.
            floor_ms = med(d["decode_floor_ms"] * d["copy_bandwidth_gb_s"] / bw for d in ours) if bw else None
            o_floor = (floor_ms / (1000.0 / o_tg)) if floor_ms and o_tg else None
            t_pp = med(llama_tps(f) for f in glob.glob(os.path.join(tdir, f"r*_theirs_{theirs_dt}_pp.out")))
            t_tg = med(llama_tps(f) for f in glob.glob(os.path.join(tdir, f"r*_theirs_{theirs_dt}_tg.out")))
            # Ours: the process's own high-water mark before `bench` allocates its 512 MiB
            # bandwidth-probe buffers (which /usr/bin/time would count); theirs: /usr/bin/time.
            o_rss = med(d["peak_rss_bytes"] / 2**20 for d in ours)
            t_rss = med(rss_mib(f) for f in glob.glob(os.path.join(tdir, f"r*_theirs_{theirs_dt}_tg.time")))
            ratio = lambda a, b: fmt(a / b, "{:.2f}x") if a and b else "-"
            print(f"| {os.path.basename(mdir)} | {os.path.basename(tdir)[1:]} | {ours_dt} / {theirs_dt.upper()} | {fmt(o_pp)} / {fmt(t_pp)} ({ratio(o_pp, t_pp)}) | "
                  f"{fmt(o_tg)} / {fmt(t_tg)} ({ratio(o_tg, t_tg)}) | {fmt(100 * o_floor if o_floor else None, '{:.0f}%')} | "
                  f"{fmt(o_rss, '{:.0f}')} / {fmt(t_rss, '{:.0f}')} | {fmt(med(loads), '{:.2f}')} |")
