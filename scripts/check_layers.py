#!/usr/bin/env python3
"""Checks the two structural rules of the tree; ctest runs it (test `check_layers`), so `make test` does.

1. Layering: a file under src/<dir>/ includes "<other>/..." only when <other> is not above <dir> in
   src/LAYERS (the one place the order is written down). Every directory under src/ must be listed.
   Only tests (*_test.cpp) in src/ include "testing/...": libevmm ships no test code.
2. Size: no source file (.c .cpp .h .S) under src/, tests/, testing/, bench/, fuzz/ or guests/ is
   longer than 600 lines (STYLE.md: a file over 600 lines is a sign to split it).

Known violations may be listed in scripts/layers_allowlist.txt, one per line, exactly as this script
prints them; a listed line that no longer occurs fails the check too, so the list only shrinks.

Usage: check_layers.py [--root DIR] [--allowlist FILE]   (exit 0: clean, 1: violations, 2: bad setup)
"""
import argparse
import pathlib
import re
import sys

MAX_LINES = 600
SOURCE_SUFFIXES = {".c", ".cpp", ".h", ".S"}
SIZE_DIRS = ("src", "tests", "testing", "bench", "fuzz", "guests")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"/]+)/[^"]*"')


def read_layers(root):
    """The layer names from src/LAYERS, lowest first (comments and blank lines skipped)."""
    path = root / "src" / "LAYERS"
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def sources(top):
    return sorted(p for p in top.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES)


def layer_violations(root, layers):
    rank = {name: i for i, name in enumerate(layers)}
    src = root / "src"
    found = []
    for d in sorted(p for p in src.iterdir() if p.is_dir()):
        if d.name not in rank:
            found.append(f"unlisted-dir src/{d.name} (add it to src/LAYERS)")
    for f in sources(src):
        rel = f.relative_to(root)
        if len(rel.parts) < 3 or rel.parts[1] not in rank:
            continue
        here = rel.parts[1]
        is_test = f.name.endswith("_test.cpp")
        for line in f.read_text(errors="replace").splitlines():
            m = INCLUDE.match(line)
            if not m:
                continue
            target = line.split('"')[1]
            if m.group(1) in rank and rank[m.group(1)] > rank[here]:
                found.append(f"include-up {rel} includes {target} ({m.group(1)} is above {here})")
            elif m.group(1) == "testing" and not is_test:
                found.append(f"test-include {rel} includes {target} (only *_test.cpp may)")
    return found


def size_violations(root):
    found = []
    for top in SIZE_DIRS:
        if not (root / top).is_dir():
            continue
        for f in sources(root / top):
            n = len(f.read_text(errors="replace").splitlines())
            if n > MAX_LINES:
                found.append(f"too-long {f.relative_to(root)} ({n} lines, limit {MAX_LINES})")
    return found


def key(violation):
    """What the allowlist matches: the violation without its counts, which change with edits."""
    return violation.split(" (", 1)[0]


def main():
    here = pathlib.Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=pathlib.Path, default=here.parent)
    ap.add_argument("--allowlist", type=pathlib.Path, default=None)
    args = ap.parse_args()
    root = args.root.resolve()
    allow_path = args.allowlist or root / "scripts" / "layers_allowlist.txt"

    try:
        layers = read_layers(root)
    except OSError as e:
        print(f"check_layers: cannot read the layer order: {e}", file=sys.stderr)
        return 2
    if not layers:
        print("check_layers: src/LAYERS lists no layers", file=sys.stderr)
        return 2

    allowed = set()
    if allow_path.exists():
        for line in allow_path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                allowed.add(line)

    found = layer_violations(root, layers) + size_violations(root)
    bad = [v for v in found if key(v) not in allowed]
    seen = {key(v) for v in found}
    stale = sorted(a for a in allowed if a not in seen)
    for v in found:
        if key(v) in allowed:
            print(f"allowed (temporary): {v}")
    for v in bad:
        print(f"VIOLATION: {v}")
    for a in stale:
        print(f"STALE allowlist entry, fixed: remove it from {allow_path.name}: {a}")
    if bad or stale:
        print(f"check_layers: {len(bad)} violation(s), {len(stale)} stale allowlist entr(ies); "
              "layer order in src/LAYERS", file=sys.stderr)
        return 1
    print(f"check_layers: ok ({len(layers)} layers, {len(found)} allowed violation(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
