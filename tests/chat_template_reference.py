"""The second reference of tests/test_chat_template_parity.cpp: Python's jinja2 (Debian's
python3-jinja2), configured the way transformers' apply_chat_template configures it: a sandboxed,
immutable environment with trim_blocks, lstrip_blocks and the loopcontrols extension; `tojson`
as json.dumps(ensure_ascii=False, ...); the globals raise_exception and strftime_now; and the
variables messages, add_generation_prompt, tools = documents = None plus the special tokens.
Same protocol as tests/chat_template_reference.mjs (stdin: {"cases": [...]}, stdout: results)."""
import json
import sys
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateRaised(Exception):
    pass


def raise_exception(message):
    raise TemplateRaised(message)


def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class GenerationBlock(Extension):
    """transformers' {% generation %}...{% endgeneration %} (it marks assistant text for masks):
    the body renders in place."""

    tags = {"generation"}

    def parse(self, parser):
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, GenerationBlock])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)

compiled = {}


def load(path):
    if path not in compiled:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        source = config["chat_template"]
        if isinstance(source, list):
            source = next(t["template"] for t in source if t["name"] == "default")
        tokens = {}
        for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
            value = config.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if value is not None:
                tokens[key] = value
        compiled[path] = (env.from_string(source), tokens)
    return compiled[path]


request = json.load(sys.stdin)
results = []
for case in request["cases"]:
    try:
        template, tokens = load(case["config"])
        text = template.render(messages=case["messages"], add_generation_prompt=case["add_generation_prompt"],
                               tools=None, documents=None, **tokens)
        results.append({"text": text})
    except TemplateRaised as e:
        results.append({"error": str(e)})
    except Exception as e:  # noqa: BLE001 - any other failure is reported, not raised
        results.append({"error": "python: %s: %s" % (type(e).__name__, e)})
sys.stdout.write(json.dumps(results))
