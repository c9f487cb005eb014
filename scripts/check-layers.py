#!/usr/bin/env python3
"""One-way layers: no file of core/src or migrate/src imports a file of a
higher layer, and no two files import each other (directly or through
others).

    scripts/check-layers.py            # check both crates, exit 1 on a breach
    scripts/check-layers.py --graph    # also print every file's imports

An import is any `crate::a::b` or `super::x` path in a file's code (use
lines and inline paths alike; `#[cfg(test)]` modules are left out, since
tests may reach anywhere). A path through a name re-exported by lib.rs
(`crate::Item`) or a module's mod.rs counts as an import of the file that
defines the name. `mod x;` declarations are not imports.

The layers are listed below, bottom first; ARCHITECTURE.md explains them.
Every top-level module of a crate must be in exactly one layer, so a new
file cannot sneak in without a place.
"""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = {
    "core/src": [
        ["error", "key", "expr", "hash", "reserved", "size"],
        ["attr", "template"],
        ["design"],
        ["item", "field", "condition", "managed", "collection", "stream"],
        ["table"],
        ["ops"],
        ["migrating"],
        ["private", "lib"],
    ],
    "migrate/src": [
        ["error", "civil"],
        ["raw", "retry"],
        ["ddb_json", "live"],
        ["fingerprint", "reserved"],
        ["plan"],
        ["decide"],
        ["analyze", "render"],
        ["planner"],
        ["apply", "design"],
        ["online"],
        ["status"],
        ["cli"],
        ["main", "lib"],
    ],
}


def module_of(rel):
    """`ops/write.rs` -> ("ops", "write"); `ops/mod.rs` -> ("ops",)."""
    parts = rel[:-3].split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def strip_tests(text):
    """Cuts `#[cfg(test)] mod ... { ... }` blocks (brace-matched)."""
    out = []
    i = 0
    pat = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i:m.start()])
        depth = 1
        j = m.end()
        while j < len(text) and depth:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        i = j
    return "".join(out)


def inline_super(text):
    """In an inline `mod x { ... }`, `super::` is the file's own module."""
    out, i = [], 0
    for m in re.finditer(r"\bmod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        out.append(text[i:m.end()])
        out.append(re.sub(r"\bsuper::", "self::", text[m.end():j]))
        i = j
    out.append(text[i:])
    return "".join(out)


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def expand_use_groups(text):
    """`use crate::{a::X, b::{Y, Z}}` -> paths `crate::a::X`, `crate::b::Y` ..."""
    paths = []
    for m in re.finditer(r"\b(crate|super)::\{", text):
        start = m.end()
        depth = 1
        j = start
        while j < len(text) and depth:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        body = text[start:j - 1]
        for item in split_top(body):
            item = item.strip()
            if not item:
                continue
            if "{" in item:
                head, rest = item.split("{", 1)
                for sub in split_top(rest.rstrip("}")):
                    if sub.strip():
                        paths.append(f"{m.group(1)}::{head}{sub.strip()}")
            else:
                paths.append(f"{m.group(1)}::{item}")
    return paths


def split_top(s):
    items, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return items


def reexports(text):
    """Names a module file re-exports: `pub use a::b::{X, Y as Z}` -> {X: (a, b), Z: (a, b)}."""
    names = []
    for m in re.finditer(r"pub(\(crate\))?\s+use\s+([^;]+);", text):
        spec = m.group(2).strip()
        if spec.startswith("crate::"):
            spec = spec[len("crate::"):]
        if spec.startswith("self::"):
            spec = spec[len("self::"):]
        if "{" in spec:
            head, body = spec.split("{", 1)
            head = head.rstrip(":")
            for item in split_top(body.rstrip("}")):
                item = item.strip()
                if not item or "{" in item:
                    continue
                name = item.split(" as ")[-1].strip()
                path = item.split(" as ")[0].strip().split("::")
                names.append((name, tuple(head.split("::")) + tuple(path[:-1])))
        else:
            path = spec.split(" as ")[0].strip().split("::")
            name = spec.split(" as ")[-1].strip().split("::")[-1]
            names.append((name, tuple(path[:-1])))
    return names


def check(crate_dir, layers, show_graph):
    src = os.path.join(ROOT, crate_dir)
    files = {}
    for dirpath, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dirpath, n), src)
                files[module_of(rel)] = rel
    texts = {m: strip_comments(open(os.path.join(src, r)).read()) for m, r in files.items()}
    # lib.rs is the crate root: module ()
    files[()] = files.pop(("lib",))
    texts[()] = texts.pop(("lib",))
    tops = {m[0] for m in files if m}
    # only re-exports of this crate's own modules (`pub use singletable_derive::Item`
    # is a macro of another crate, not an import)
    exported = {
        m: {n: o for n, o in reexports(t) if o and ((m + o)[:len(m) + 1] in files or o[0] in tops)}
        for m, t in texts.items()
    }

    def resolve(parts, depth=0):
        """Longest module prefix of `parts`; a name re-exported by that module
        resolves to where it comes from."""
        parts = tuple(p for p in parts if p and p != "self")
        k = len(parts)
        while k > 0 and parts[:k] not in files:
            k -= 1
        mod = parts[:k]
        rest = parts[k:]
        if rest and rest[0] in exported.get(mod, {}) and depth < 8:
            origin = exported[mod][rest[0]]
            target = resolve(mod + origin + (rest[0],), depth + 1) if mod else resolve(origin + (rest[0],), depth + 1)
            if target is not None:
                return target
        return mod

    edges = defaultdict(set)
    for mod, text in texts.items():
        body = inline_super(strip_tests(text))
        if mod == ():
            body = re.sub(r"pub\s+use\s+[^;]+;", "", body)  # lib.rs re-exports are the manual's index
        paths = expand_use_groups(body)
        paths += re.findall(r"\b(?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+", body)
        for p in paths:
            p = re.sub(r"\s+", "", p)
            segs = p.split("::")
            if segs[0] == "self":
                continue
            if segs[0] == "crate":
                abs_parts = segs[1:]
            else:
                # super:: from a file: its parent module (a mod.rs's parent is one more up)
                base = list(mod[:-1])
                while segs and segs[0] == "super":
                    segs = segs[1:]
                abs_parts = base + segs
            target = resolve(abs_parts)
            if target != mod:
                edges[mod].add(target)
        # a mod.rs re-exporting its children imports them
        for name, origin in exported[mod].items():
            t = resolve(mod + origin + (name,)) if mod else None
            if t is not None and t != mod and t[:len(mod)] == mod:
                edges[mod].add(t)

    layer_of = {}
    for i, names in enumerate(layers):
        for n in names:
            layer_of[n] = i
    layer_of[""] = layer_of["lib"]

    problems = []
    for mod in files:
        top = mod[0] if mod else ""
        if top not in layer_of:
            problems.append(f"{crate_dir}/{files[mod]}: module `{top}` has no layer in scripts/check-layers.py")
    for a, targets in sorted(edges.items()):
        for b in sorted(targets):
            la = layer_of.get(a[0] if a else "", 99)
            lb = layer_of.get(b[0] if b else "", 99)
            if lb > la:
                problems.append(f"{crate_dir}/{files[a]} (layer {la}) imports {files[b]} (layer {lb}): upward")

    # cycles between files (Tarjan)
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in files:
        if v not in index:
            strong(v)
    for comp in sccs:
        problems.append(f"{crate_dir}: import cycle among " + ", ".join(sorted(files[m] for m in comp)))

    if show_graph:
        for a in sorted(files):
            print(f"{crate_dir}/{files[a]} -> " + ", ".join(sorted(files[b] for b in edges.get(a, ()))))
    return problems


def main():
    show = "--graph" in sys.argv
    problems = []
    for crate_dir, layers in LAYERS.items():
        problems += check(crate_dir, layers, show)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)")
        sys.exit(1)
    print("check-layers: core/src and migrate/src import one way, no cycles")


if __name__ == "__main__":
    main()
