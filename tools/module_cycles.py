#!/usr/bin/env python3
"""Lists import cycles between the files (modules) of each crate under crates/.

An edge A -> B means the non-test code of A's file names module B (`crate::b::…`, `super::…`, or a child module
by its bare name). Re-exports (`pub use`) and `mod` declarations are not edges; comments and `#[cfg(test)]`
modules are skipped. Prints every strongly connected component with more than one module and exits 1 if any.

Usage: tools/module_cycles.py [CRATE_DIR ...]   (default: every crates/*)
"""
import glob
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def modules_of(src):
    """Module path (tuple) -> file, for one crate's src/ directory."""
    mods = {}
    for f in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(f, src)[:-3].split(os.sep)
        if rel in (["lib"], ["main"]):
            path = ()
        elif rel[-1] == "mod":
            path = tuple(rel[:-1])
        else:
            path = tuple(rel)
        if path == () and ("lib" in rel) and () in mods:
            continue
        if path == () and rel == ["main"] and os.path.exists(os.path.join(src, "lib.rs")):
            continue  # a binary next to a library: only the library's tree is checked
        mods.setdefault(path, f)
    return mods


def code_of(path):
    """The file's text without comments and without its `#[cfg(test)]` items."""
    lines = []
    skip_depth = None
    depth = 0
    pending_test = False
    for line in open(path, encoding="utf-8"):
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        line = re.sub(r"//.*", "", line)
        opens, closes = line.count("{"), line.count("}")
        if skip_depth is None and stripped.startswith("#[cfg(test)]"):
            pending_test = True
            continue
        if pending_test:
            if opens:
                skip_depth = depth
                pending_test = False
            elif stripped.endswith(";"):
                pending_test = False
                continue
        depth += opens - closes
        if skip_depth is not None:
            if depth <= skip_depth:
                skip_depth = None
            continue
        lines.append(line)
    return "".join(lines)


def group_items(text, start):
    """The top-level comma-separated items of the brace group opening at text[start]."""
    depth, items, cur = 0, [], ""
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        if ch == "," and depth == 1:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    items.append(cur.strip())
    return [i for i in items if i]


def paths_from(text, base, pos):
    """Module-path candidates named right after `…::` at text[pos]."""
    rest = text[pos:]
    if rest.startswith("{"):
        out = []
        for item in group_items(text, pos):
            segs = re.match(rf"({IDENT}(?:::{IDENT})*)", item)
            if segs and segs.group(1) != "self":
                out.append(base + tuple(segs.group(1).split("::")))
            elif item.startswith("self"):
                out.append(base)
        return out
    segs = re.match(rf"({IDENT}(?:::{IDENT})*)", rest)
    return [base + tuple(segs.group(1).split("::"))] if segs else [base]


def resolve(mods, path):
    for n in range(len(path), -1, -1):
        if path[:n] in mods:
            return path[:n]
    return ()


def edges_of(mods, module, text):
    out = set()
    text = "\n".join(
        l for l in text.split("\n")
        if not re.match(r"\s*pub(\([a-z]+\))?\s+use\b", l) and not re.match(r"\s*(pub(\([a-z]+\))?\s+)?mod\s", l)
    )
    for m in re.finditer(r"\b(crate|super(?:::super)*)::", text):
        head = m.group(1)
        if head == "crate":
            base = ()
        else:
            ups = head.count("super")
            # A file's own module is `module`; super:: is its parent.
            base = module[: len(module) - ups] if ups <= len(module) else ()
        for p in paths_from(text, base, m.end()):
            out.add(resolve(mods, p))
    children = {p[-1]: p for p in mods if len(p) == len(module) + 1 and p[: len(module)] == module}
    for m in re.finditer(rf"(?<![:\w])({IDENT})::", text):
        if m.group(1) in children:
            out.add(children[m.group(1)])
    out.discard(module)
    return out


def cycles(graph):
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
    for v in list(graph):
        if v not in index:
            strong(v)
    return sccs


def name(p):
    return "::".join(p) or "(root)"


def main():
    crates = sys.argv[1:] or sorted(glob.glob("crates/*/"))
    found = False
    for crate in crates:
        src = os.path.join(crate, "src")
        if not os.path.isdir(src):
            continue
        mods = modules_of(src)
        graph = {m: edges_of(mods, m, code_of(f)) for m, f in mods.items()}
        for comp in cycles(graph):
            found = True
            members = set(comp)
            print(f"{crate.rstrip('/')}: cycle among {', '.join(sorted(name(c) for c in comp))}")
            for a in sorted(members):
                for b in sorted(graph[a] & members):
                    print(f"    {name(a)} -> {name(b)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
