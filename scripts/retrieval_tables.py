#!/usr/bin/env python3
"""Markdown tables of accuracy by length from scripts/retrieval-tables.sh's eval JSON files.

Usage: python3 scripts/retrieval_tables.py DIR   (reads DIR/<family>/eval/<task>.json)
One table per task: a row per family, a column per length; each cell is the task's metric
(phonebook: exact match; RULER: string_match_all) over that length's samples.
"""
import json
import pathlib
import sys

FAMILIES = ["transformer", "mamba", "mamba2", "hybrid"]
TITLES = {"phonebook": "Phonebook, standard (book first)", "phonebook_reversed": "Phonebook, reversed (question first)"}


def cell_value(cell):
    for key in ("acc", "string_match_all", "exact_match"):
        if key in cell:
            return cell[key]
    raise KeyError(f"no accuracy in {cell}")


def main(root):
    root = pathlib.Path(root)
    results = {}  # task -> family -> {length: (value, n)}
    for family in FAMILIES:
        for path in sorted((root / family / "eval").glob("*.json")):
            by_length = json.loads(path.read_text())["breakdown"]["length"]
            results.setdefault(path.stem, {})[family] = {int(k): (cell_value(v), v["n"]) for k, v in by_length.items()}
    if not results:
        sys.exit(f"retrieval_tables: no eval/*.json under {root}/<family>/")
    order = ["phonebook", "phonebook_reversed"] + sorted(t for t in results if t.startswith("ruler_"))
    for task in [t for t in order if t in results]:
        lengths = sorted({n for cells in results[task].values() for n in cells})
        samples = {c[1] for cells in results[task].values() for c in cells.values()}
        print(f"### {TITLES.get(task, task)}\n")
        print(f"samples per length: {', '.join(str(n) for n in sorted(samples))}\n")
        print("| model | " + " | ".join(str(n) for n in lengths) + " |")
        print("|---" * (len(lengths) + 1) + "|")
        for family in FAMILIES:
            if family in results[task]:
                cells = results[task][family]
                print(f"| {family} | " + " | ".join(f"{cells[n][0]:.2f}" if n in cells else "-" for n in lengths) + " |")
        print()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
