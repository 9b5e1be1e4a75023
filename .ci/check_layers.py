#!/usr/bin/env python3
"""The core's modules are layered: each imports only modules listed below it.

Reads the layer list from core/src/lib.rs (the lines `// layer NAME: what it is`, bottom
layer first) and every `crate::...` path in the code of each top-level module of
core/src (comments, and `#[cfg(test)]` modules, left out), and
fails when a module imports one listed above it, or when a top-level module is missing
from the list. A path through a re-export of lib.rs (`crate::Nursery`,
`crate::futures::Sleep`, `crate::rt::enter`) counts as an import of the module that
defines it, and so does every path of a grouped import (`use crate::{group, kind::Kind};`).

Usage: python3 .ci/check_layers.py [--graph]   (--graph prints each module's imports)
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "core" / "src"
LIB = SRC / "lib.rs"

LAYER = re.compile(r"^// layer ([a-z_][a-z0-9_]*):")
PATH = re.compile(r"\bcrate::([A-Za-z_][A-Za-z0-9_]*)(?:::([A-Za-z_][A-Za-z0-9_]*))?")
USE = re.compile(r"pub(?:\([a-z]+\))?\s+use\s+crate::([a-z_][a-z0-9_]*)::(\{[^;]*\}|[A-Za-z0-9_:]+)\s*;", re.S)
INLINE_MOD = re.compile(r"^pub(?:\([a-z]+\))?\s+mod\s+([a-z_][a-z0-9_]*)\s*\{", re.M)
TEST_MOD = re.compile(r"^#\[cfg\((?:all\()?test\b.*\n(?:#\[.*\n)*mod\s+\w+\s*\{", re.M)


def strip_comments(src):
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return "\n".join(re.sub(r"//.*$", "", line) for line in src.splitlines())


def layers():
    found = [m.group(1) for line in LIB.read_text(encoding="utf-8").splitlines()
             if (m := LAYER.match(line))]
    if not found:
        sys.exit("error: no layer list in core/src/lib.rs (lines `// layer NAME: ...`)")
    return found


def reexports():
    """lib.rs's re-exports: {(inline module or '', name): defining module}."""
    text = strip_comments(LIB.read_text(encoding="utf-8"))
    # Which inline module (`pub mod rt { ... }`) each offset of lib.rs is in.
    spans = []
    for m in INLINE_MOD.finditer(text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        spans.append((m.start(), i, m.group(1)))
    found = {}
    for m in USE.finditer(text):
        inside = next((name for a, b, name in spans if a <= m.start() <= b), "")
        module, names = m.group(1), m.group(2)
        for item in re.split(r"[{},]", names):
            item = item.strip()
            if not item or item == "*":
                continue
            name = re.split(r"\s+as\s+", item)[-1].split("::")[-1].strip()
            found[(inside, name)] = module
    return found


def imports(modules, reexported):
    """{top-level module: {imported module: first file and line}}."""
    tops = {p.relative_to(SRC).parts[0].removesuffix(".rs") for p in SRC.rglob("*.rs")}
    graph = {}
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(SRC)
        top = rel.parts[0].removesuffix(".rs")
        if top == "lib":
            continue
        graph.setdefault(top, {})
        if rel.name in ("tests.rs", "loom.rs"):
            continue
        code = without_test_mods(strip_comments(path.read_text(encoding="utf-8")))
        for offset, first, second in paths(code):
            number = code.count("\n", 0, offset) + 1
            if first in modules and (first, second) in reexported:
                target = reexported[(first, second)]
            elif first in modules or first in tops:
                target = first
            else:
                target = reexported.get(("", first))
            if target and target != top:
                graph[top].setdefault(target, f"core/src/{rel}:{number}")
    return graph


def without_test_mods(code):
    """`code` without its `#[cfg(test)]` modules (each to its closing brace), line
    numbers kept."""
    while (m := TEST_MOD.search(code)):
        depth, i = 0, m.end() - 1
        while True:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            if depth == 0:
                break
            i += 1
        code = code[: m.start()] + "\n" * code.count("\n", m.start(), i + 1) + code[i + 1 :]
    return code


def paths(code):
    """(offset, first segment, second segment or None) of every `crate::` path in
    `code`, the paths of a grouped import (`crate::{a::{b, c}, d}`) each on its own."""
    found = []
    for m in re.finditer(r"\bcrate::", code):
        start = m.end()
        if code.startswith("{", start):
            found += [(m.start(), *p) for p in group(code, start)]
        else:
            p = PATH.match(code, m.start())
            found.append((m.start(), p.group(1), p.group(2)))
    return found


def group(code, at):
    """The (first, second) segments of each path in the brace group at `at`."""
    depth, i = 0, at
    while True:
        depth += {"{": 1, "}": -1}.get(code[i], 0)
        if depth == 0:
            break
        i += 1
    body = code[at + 1 : i]
    items, depth, cur = [], 0, ""
    for c in body:
        if c == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        cur += c
    items.append(cur)
    out = []
    for item in (x.strip() for x in items):
        if not item or item == "self":
            continue
        head, _, rest = item.partition("::")
        head = re.split(r"\s+as\s+", head)[0].strip()
        second = None
        if rest.startswith("{"):
            out += [(head, sub) for sub, _ in group(rest, 0)]
            continue
        if rest:
            second = re.match(r"[A-Za-z_][A-Za-z0-9_]*", rest)
            second = second.group(0) if second else None
        out.append((head, second))
    return out


def main():
    order = layers()
    rank = {name: i for i, name in enumerate(order)}
    graph = imports(set(order), reexports())
    errors = []
    for module in sorted(graph):
        if module not in rank:
            needs = sorted((m for m in graph[module] if m in rank), key=rank.get)
            users = sorted((m for m in graph if module in graph[m] and m in rank), key=rank.get)
            where = []
            if needs:
                where.append(f"after the line of `{needs[-1]}` (the highest module it imports)")
            if users:
                where.append(f"before the line of `{users[0]}` (the lowest module that imports it)")
            errors.append(
                f"core/src/{module} is a top-level module missing from the layer list: add a line "
                f"`// layer {module}: <what it is>` to the list in core/src/lib.rs, "
                f"{' and '.join(where) or 'anywhere'}")
    for name in order:
        if name not in graph and name != "rt":
            errors.append(f"the layer list in core/src/lib.rs names `{name}`, which is no "
                          "top-level module of core/src: remove its line")
    for module in sorted(graph):
        if module not in rank:
            continue
        for target, where in sorted(graph[module].items()):
            if target in rank and rank[target] > rank[module]:
                errors.append(
                    f"{where}: `{module}` imports `crate::{target}`, a layer above it (its line "
                    f"comes after that of `{module}` in core/src/lib.rs): move what it needs "
                    f"into `{module}` or a layer below it, or move the line of `{module}` after "
                    f"that of `{target}` if no layer in between imports `{module}`")
    if "--graph" in sys.argv[1:]:
        for module in order:
            deps = sorted(graph.get(module, {}), key=lambda m: rank.get(m, -1))
            print(f"{module:12} {', '.join(deps) or '-'}")
    if errors:
        for e in errors:
            print(f"error: {e}")
        return 1
    print(f"the {len(order)} layers of core/src/lib.rs hold: no module imports one above it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
