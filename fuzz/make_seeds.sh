#!/usr/bin/env bash
# Seed corpora for the fuzz targets, from the test fixtures and a few hand-made files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
mkdir -p "$out"/{fuzz_safetensors,fuzz_config,fuzz_tokenizer,fuzz_indexed_dataset,fuzz_npy,fuzz_eval_samples,fuzz_eval_tasks,fuzz_unpickler,fuzz_chat_template,fuzz_input_files}
i=0
for d in tests/golden/fixtures/*/; do
  i=$((i + 1))
  cp "$d/config.json" "$out/fuzz_config/$i.json"
  head -c 65536 "$d/model.safetensors" > "$out/fuzz_safetensors/$i.safetensors"
done
printf '{"model_type":"nemotron_h","vocab_size":256,"hidden_size":64,"hybrid_override_pattern":"M*-","mamba_num_heads":4,"mamba_head_dim":32,"num_attention_heads":2,"intermediate_size":128,"time_step_limit":[0.0, Infinity]}' \
  > "$out/fuzz_config/hand.json"
# tokenizer.json (kind byte 0), a rank file (1), encoder.json + vocab.bpe (2), a .model (3).
{ printf '\x00'; printf '{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel"},"added_tokens":[{"id":3,"content":"<|endoftext|>","special":true}]}'; } \
  > "$out/fuzz_tokenizer/json"
{ printf '\x01'; printf 'IQ== 0\nIg== 1\nIyQ= 2\n'; } > "$out/fuzz_tokenizer/tiktoken"
{ printf '\x02'; printf '{"a":0,"b":1,"ab":2,"<|endoftext|>":3}\n----\n#version: 0.2\na b\n'; } > "$out/fuzz_tokenizer/gpt2"
model=$(ls tests/golden/fixtures/*/tokenizer.model 2>/dev/null | head -n 1 || true)
if [ -n "$model" ]; then { printf '\x03'; cat "$model"; } > "$out/fuzz_tokenizer/sp"; fi
# Megatron dataset: header "MMIDIDX\0\0", version 1, dtype 8 (uint16), 1 sequence, 2 doc indices.
python3 - "$out" <<'PY'
import struct, sys
out = sys.argv[1]
idx = b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", 8) + struct.pack("<QQ", 1, 2)
idx += struct.pack("<i", 3) + struct.pack("<q", 0) + struct.pack("<qq", 0, 1)
open(f"{out}/fuzz_indexed_dataset/one", "wb").write(idx + b"\n----\n" + struct.pack("<HHH", 1, 2, 3))
PY
for d in tests/golden/fixtures/*/; do head -c 16384 "$d/logits.npy" > "$out/fuzz_npy/$(basename "$d").npy"; done
printf '%s\n' '{"doc_id": 0, "target": "1", "arguments": {"gen_args_0": {"arg_0": "Q: a", "arg_1": " b"}, "gen_args_1": {"arg_0": "Q: a", "arg_1": " c"}}, "resps": [[["-1.0", "False"]], [["-2.0", "False"]]], "filtered_resps": [["-1.0", "False"], ["-2.0", "False"]], "filter": "none", "metrics": ["acc"], "acc": 1.0}' \
  > "$out/fuzz_eval_samples/mc.jsonl"
# mambalm's own task files (first byte: 0 = multiple choice, 1 = loglikelihood), in the shapes
# tests/test_eval_tasks.cpp and tests/test_eval_lm_rules.cpp write.
{ printf '\x00'; printf '%s\n' '{"context": "Question 0: which one?", "choices": ["red", "green apples", "blue"], "gold": 1}' \
    '{"query": "Q: 2+2?", "choices": ["3", "4"], "gold": 1}' '' '{"question": "caf\u00e9?", "choices": ["oui", "non"], "gold": 0}'; } \
  > "$out/fuzz_eval_tasks/mc"
{ printf '\x01'; printf '%s\n' '{"context": "Ada Lovelace:", "continuation": " 555-0134"}' '{"text": "he said the word hello"}'; } \
  > "$out/fuzz_eval_tasks/loglikelihood"
# The pickles inside the PyTorch checkpoint fixtures (good and hostile ones).
python3 - "$out" <<'PY'
import glob, sys, zipfile
out = sys.argv[1]
for i, path in enumerate(sorted(glob.glob("tests/golden/torch/*.pt"))):
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith("data.pkl"):
                    open(f"{out}/fuzz_unpickler/{i}.pkl", "wb").write(z.read(name))
    except zipfile.BadZipFile:
        pass
PY
# Chat templates: the real ones of tests/golden/chat_templates/ (the text of their chat_template).
python3 - "$out" <<'PY'
import glob, json, os, sys
for path in sorted(glob.glob("tests/golden/chat_templates/*/tokenizer_config.json")):
    t = json.load(open(path, encoding="utf-8"))["chat_template"]
    t = t if isinstance(t, str) else next(x["template"] for x in t if x["name"] == "default")
    open(os.path.join(sys.argv[1], "fuzz_chat_template", os.path.basename(os.path.dirname(path))), "w", encoding="utf-8").write(t)
PY
# Compressed text inputs (first byte: 0 = plain name, 1 = .gz, 2 = .zst): one stream of each kind,
# and two gzip members back to back.
text=$'First line of a document.\n{"text": "caf\\u00e9"}\n'
{ printf '\x00'; printf '%s' "$text"; } > "$out/fuzz_input_files/plain"
{ printf '\x01'; printf '%s' "$text" | gzip -c; } > "$out/fuzz_input_files/gz"
{ printf '\x01'; printf 'one\n' | gzip -c; printf 'two\n' | gzip -c; } > "$out/fuzz_input_files/gz-members"
if command -v zstd >/dev/null; then { printf '\x02'; printf '%s' "$text" | zstd -q -c; } > "$out/fuzz_input_files/zst"; fi
