#!/usr/bin/env python3
"""Reports import cycles between the modules of each crate (proxy, nlq, ingest, common).

    python3 scripts/module-cycles.py              # production code only (the default)
    python3 scripts/module-cycles.py --with-tests # also count what #[cfg(test)] code refers to
    python3 scripts/module-cycles.py -v           # also print every module-to-module edge

For each crate the module tree is read from the `mod` declarations, starting at src/lib.rs, src/main.rs and
src/bin/*.rs (each its own tree), so `#[path = "x_tests.rs"]` files and inline `mod x { … }` blocks land in the
module that declares them. Every path that names a module of the crate counts as a reference: `use crate::…`,
`use super::…`, `use self::…`, `use child::…` (use trees with braces included) and the same paths inside code
(`crate::telemetry::query_finished(…)`, `super::protocol::Feature::Addendum`). Comments and string literals are
skipped; so are `#[cfg(test)]` items unless `--with-tests` is given.

The references are then looked at in two granularities:

- top-level modules (`ask`, `http`, `native`, `server`, …), all files under a module counting as that module;
- second-level modules under proxy's `native` and `http` (`native::session`, `http::pool`, …): the references
  between the children of each (a cycle that leaves the module is already a cycle of the top level).

A module using one of its ancestors (a child using items of its parent, anything using the crate root's
re-exports) is not counted: the point is that concerns do not depend on each other in circles. A cycle is a
strongly connected component of more than one module; for each one the script prints its modules, its files and
the references that close it. Exit status 1 if there is any cycle, 2 on a usage error. Python stdlib only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CRATES = ["proxy", "nlq", "ingest", "common"]

# Top-level modules whose children are nodes of their own in the second granularity, per crate.
SECOND_LEVEL = {"proxy": {"native", "http"}}

KEYWORDS_OF_PATHS = {"crate", "super", "self"}


# ---------------------------------------------------------------------------------------------------------------
# Lexing: identifiers, string literals (kept only for `#[path = "…"]`) and punctuation; comments dropped.


@dataclass
class Tok:
    kind: str  # "id", "str", "punct"
    text: str
    line: int


_IDENT = re.compile(r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*")
_RAW_STR = re.compile(r'b?r(#*)"')


def lex(src: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n, line = 0, len(src), 1
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += src[i] == "\n"
                    i += 1
        elif (m := _RAW_STR.match(src, i)) and (c in "rb"):
            close = '"' + m.group(1)
            j = src.find(close, m.end())
            j = n if j < 0 else j
            toks.append(Tok("str", src[m.end() : j], line))
            line += src.count("\n", i, j)
            i = j + len(close)
        elif c == '"' or (c == "b" and src.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            start = j
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            toks.append(Tok("str", src[start:j], line))
            line += src.count("\n", i, j)
            i = j + 1
        elif c == "'" or (c == "b" and src.startswith("b'", i)):
            # A char literal ('x', '\n', '\u{1F600}', b'x') or a lifetime ('a): skip either.
            j = i + (2 if c == "b" else 1)
            if j < n and src[j] == "\\":
                k = src.find("'", j + 2)
                i = (k + 1) if k >= 0 else n
            elif j + 1 < n and src[j + 1] == "'":
                i = j + 2
            else:
                m = _IDENT.match(src, j)
                i = m.end() if m else j
        elif m := _IDENT.match(src, i):
            toks.append(Tok("id", m.group(0).removeprefix("r#"), line))
            i = m.end()
        elif c.isdigit():
            m = re.compile(r"[0-9][0-9A-Za-z_.]*").match(src, i)
            i = m.end()
        elif src.startswith("::", i):
            toks.append(Tok("punct", "::", line))
            i += 2
        else:
            toks.append(Tok("punct", c, line))
            i += 1
    return toks


# ---------------------------------------------------------------------------------------------------------------
# Module tree and references.


@dataclass
class Ref:
    """One path naming a module of the crate."""

    module: tuple[str, ...]  # the module whose code holds the path
    target: tuple[str, ...]  # the module it names (the longest module prefix of the path)
    file: str
    line: int
    text: str


@dataclass
class Tree:
    """One crate root (lib.rs, main.rs or a bin): its modules and the files that hold them."""

    name: str
    modules: dict[tuple[str, ...], str] = field(default_factory=dict)  # module path → file that defines it
    children: dict[tuple[str, ...], set[str]] = field(default_factory=lambda: defaultdict(set))
    refs: list[Ref] = field(default_factory=list)
    files: set[str] = field(default_factory=set)
    test_files: set[str] = field(default_factory=set)


def attributes(toks: list[Tok], i: int) -> tuple[int, bool, str | None]:
    """Reads the outer attributes at `i`: (index after them, whether one is cfg(test), a #[path] value)."""
    is_test, path = False, None
    while i + 1 < len(toks) and toks[i].text == "#" and toks[i + 1].text == "[":
        depth, j = 0, i + 1
        while j < len(toks):
            if toks[j].text == "[":
                depth += 1
            elif toks[j].text == "]":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        body = [t.text for t in toks[i + 2 : j]]
        if body[:4] == ["cfg", "(", "test", ")"]:
            is_test = True
        if body[:2] == ["path", "="] and len(body) >= 3 and toks[i + 4].kind == "str":
            path = toks[i + 4].text
        i = j + 1
    return i, is_test, path


def skip_item(toks: list[Tok], i: int) -> int:
    """Index after the item starting at `i`: up to a `;` at depth 0, or the end of its first `{…}` at depth 0."""
    depth = 0
    while i < len(toks):
        t = toks[i].text
        if t in "([":
            depth += 1
        elif t in ")]":
            depth -= 1
        elif t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        elif t == ";" and depth == 0:
            return i + 1
        i += 1
    return i


def is_mod_rs(path: str) -> bool:
    return os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs") or "/src/bin/" in path


def child_file(parent_file: str, inline: list[str], name: str, explicit: str | None) -> str | None:
    directory = os.path.dirname(parent_file)
    if explicit is not None:
        if inline:
            return os.path.normpath(os.path.join(directory, *inline, explicit))
        return os.path.normpath(os.path.join(directory, explicit))
    if not is_mod_rs(parent_file):
        directory = os.path.join(directory, os.path.splitext(os.path.basename(parent_file))[0])
    directory = os.path.join(directory, *inline)
    for candidate in (os.path.join(directory, name + ".rs"), os.path.join(directory, name, "mod.rs")):
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    return None


def read_tree(tree: Tree, file: str, module: tuple[str, ...], with_tests: bool, in_test: bool) -> None:
    """First pass: the module tree (declarations only), recursively through the files."""
    tree.modules[module] = file
    (tree.test_files if in_test else tree.files).add(file)
    with open(file, encoding="utf-8") as f:
        toks = lex(f.read())
    stack: list[tuple[tuple[str, ...], int, bool]] = []  # inline modules: (path, brace depth, test)
    current, depth, i = module, 0, 0
    test_here = in_test
    while i < len(toks):
        t = toks[i]
        if t.text == "#" and i + 1 < len(toks) and toks[i + 1].text == "[":
            after, is_test, path = attributes(toks, i)
            j = after
            while j < len(toks) and toks[j].text in ("pub", "(", "crate", "super", "in", "self", ")"):
                j += 1
            declares_mod = j + 1 < len(toks) and toks[j].text == "mod" and toks[j + 1].kind == "id"
            if is_test and not with_tests:
                if declares_mod and j + 2 < len(toks) and toks[j + 2].text == ";":
                    name = toks[j + 1].text
                    inline = list(current[len(module) :])
                    target = child_file(file, inline, name, path)
                    if target:
                        read_tree(tree, target, current + (name,), with_tests, True)
                        # Known, but not a module whose references count.
                        del tree.modules[current + (name,)]
                i = skip_item(toks, after)
                continue
            if declares_mod and j + 2 < len(toks) and toks[j + 2].text == ";":
                name = toks[j + 1].text
                inline = list(current[len(module) :])
                target = child_file(file, inline, name, path)
                tree.children[current].add(name)
                if target:
                    read_tree(tree, target, current + (name,), with_tests, test_here or is_test)
                i = j + 3
                continue
            i = after
            continue
        if t.text == "mod" and i + 2 < len(toks) and toks[i + 1].kind == "id":
            name = toks[i + 1].text
            if toks[i + 2].text == ";":
                tree.children[current].add(name)
                target = child_file(file, list(current[len(module) :]), name, None)
                if target:
                    read_tree(tree, target, current + (name,), with_tests, test_here)
                i += 3
                continue
            if toks[i + 2].text == "{":
                tree.children[current].add(name)
                stack.append((current, depth, test_here))
                current = current + (name,)
                depth += 1
                i += 3
                continue
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
            if stack and depth == stack[-1][1]:
                current, _, test_here = stack.pop()
        i += 1


def read_refs(tree: Tree, file: str, module: tuple[str, ...], with_tests: bool) -> None:
    """Second pass: every path in the file that names a module of the crate."""
    with open(file, encoding="utf-8") as f:
        toks = lex(f.read())
    stack: list[tuple[tuple[str, ...], int]] = []
    current, depth, i = module, 0, 0
    rel = os.path.relpath(file, ROOT)

    def resolve(segments: list[str]) -> tuple[str, ...] | None:
        if not segments:
            return None
        first, rest = segments[0], segments[1:]
        if first == "crate":
            base: tuple[str, ...] = ()
        elif first == "self":
            base = current
        elif first == "super":
            base = current
            while True:
                if not base:
                    return None
                base = base[:-1]
                if rest and rest[0] == "super":
                    rest = rest[1:]
                    continue
                break
        elif first in tree.children.get(current, ()):
            base, rest = current + (first,), rest
        else:
            return None
        target = base
        for segment in rest:
            if target + (segment,) in tree.modules:
                target = target + (segment,)
            else:
                break
        return target

    def record(segments: list[str], line: int) -> None:
        target = resolve(segments)
        if target is not None and target in tree.modules:
            tree.refs.append(Ref(current, target, rel, line, "::".join(segments)))

    def use_tree(j: int, prefix: list[str], line: int) -> int:
        """Reads one use tree at `j`; records each leaf path. Returns the index after it."""
        segments = list(prefix)
        while j < len(toks):
            t = toks[j]
            if t.kind == "id" and t.text != "as":
                segments.append(t.text)
                j += 1
                if j < len(toks) and toks[j].text == "::":
                    j += 1
                    continue
                if j < len(toks) and toks[j].text == "as":
                    j += 2
                leaf = segments[:-1] if segments[-1] == "self" and len(segments) > 1 else segments
                record(leaf, t.line)
                return j
            if t.text == "*":
                record(segments, t.line)
                return j + 1
            if t.text == "{":
                j += 1
                while j < len(toks) and toks[j].text != "}":
                    if toks[j].text == ",":
                        j += 1
                        continue
                    j = use_tree(j, segments, toks[j].line)
                return j + 1
            if t.text == "::":
                j += 1
                continue
            return j + 1
        return j

    while i < len(toks):
        t = toks[i]
        if t.text == "#" and i + 1 < len(toks) and toks[i + 1].text == "[":
            after, is_test, _ = attributes(toks, i)
            i = skip_item(toks, after) if is_test and not with_tests else after
            continue
        if t.text == "pub" and i + 2 < len(toks) and toks[i + 1].text == "(" and toks[i + 2].text == "in":
            while i < len(toks) and toks[i].text != ")":
                i += 1
            continue
        if t.text == "mod" and i + 2 < len(toks) and toks[i + 1].kind == "id" and toks[i + 2].text == "{":
            stack.append((current, depth))
            current = current + (toks[i + 1].text,)
            depth += 1
            i += 3
            continue
        if t.text == "use":
            j = i + 1
            while j < len(toks) and toks[j].text != ";":
                j = use_tree(j, [], toks[j].line)
            i = j + 1
            continue
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
            if stack and depth == stack[-1][1]:
                current, _ = stack.pop()
        elif (
            t.kind == "id"
            and i + 1 < len(toks)
            and toks[i + 1].text == "::"
            and (i == 0 or toks[i - 1].text not in ("::", "$"))
            and (t.text in KEYWORDS_OF_PATHS or t.text in tree.children.get(current, ()))
        ):
            segments, j = [t.text], i + 1
            while j + 1 < len(toks) and toks[j].text == "::" and toks[j + 1].kind == "id":
                segments.append(toks[j + 1].text)
                j += 2
            record(segments, t.line)
            i = j
            continue
        i += 1


# ---------------------------------------------------------------------------------------------------------------
# Graph.


def strongly_connected(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def node_of(module: tuple[str, ...], split: set[str]) -> tuple[str, ...]:
    if len(module) >= 2 and module[0] in split:
        return module[:2]
    return module[:1]


def show(node: tuple[str, ...]) -> str:
    return "::".join(node) if node else "crate"


def cycles(tree: Tree, split: set[str], within: str | None = None) -> list[tuple[list[str], list[Ref]]]:
    """Components of the graph whose nodes are `node_of` each module, with the references inside each. With
    `within`, only the modules under that top-level module and the references between them."""

    def inside(module: tuple[str, ...]) -> bool:
        return within is None or module[:1] == (within,)

    edges: dict[str, set[str]] = defaultdict(set)
    by_edge: dict[tuple[str, str], list[Ref]] = defaultdict(list)
    nodes: set[str] = set()
    for module in tree.modules:
        if inside(module):
            nodes.add(show(node_of(module, split)))
    for ref in tree.refs:
        if not (inside(ref.module) and inside(ref.target)):
            continue
        src, dst = node_of(ref.module, split), node_of(ref.target, split)
        if src == dst or src[: len(dst)] == dst:  # the same module, or an ancestor of it
            continue
        edges[show(src)].add(show(dst))
        by_edge[(show(src), show(dst))].append(ref)
    out = []
    for component in strongly_connected(nodes, edges):
        members = set(component)
        inside = [r for (a, b), refs in sorted(by_edge.items()) if a in members and b in members for r in refs]
        out.append((component, inside))
    return out


def files_of(tree: Tree, component: list[str], split: set[str]) -> list[str]:
    members = set(component)
    return sorted(
        {os.path.relpath(f, ROOT) for m, f in tree.modules.items() if show(node_of(m, split)) in members}
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--with-tests", action="store_true", help="count #[cfg(test)] code too")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every module-to-module edge")
    parser.add_argument("crates", nargs="*", default=CRATES, help=f"crates to check (default: {' '.join(CRATES)})")
    args = parser.parse_args()

    total = 0
    for crate in args.crates:
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            print(f"{crate}: no src/ directory", file=sys.stderr)
            return 2
        roots = [("lib", os.path.join(src, "lib.rs")), ("main", os.path.join(src, "main.rs"))]
        bin_dir = os.path.join(src, "bin")
        if os.path.isdir(bin_dir):
            for entry in sorted(os.listdir(bin_dir)):
                path = os.path.join(bin_dir, entry)
                if entry.endswith(".rs"):
                    roots.append((f"bin {entry[:-3]}", path))
                elif os.path.exists(os.path.join(path, "main.rs")):
                    roots.append((f"bin {entry}", os.path.join(path, "main.rs")))
        reached: set[str] = set()
        for name, root in roots:
            if not os.path.exists(root):
                continue
            tree = Tree(name)
            read_tree(tree, os.path.normpath(root), (), args.with_tests, False)
            for module, file in sorted(tree.modules.items()):
                read_refs(tree, file, module, args.with_tests)
            reached |= tree.files | tree.test_files
            split = SECOND_LEVEL.get(crate, set()) if name == "lib" else set()
            granularities = [("top-level", set(), None)] + [
                (f"second-level under {parent}", split, parent) for parent in sorted(split)
            ]
            if args.verbose:
                seen = sorted({(node_of(r.module, split), node_of(r.target, split)) for r in tree.refs})
                for a, b in seen:
                    if a != b:
                        note = " (an ancestor: not counted)" if a[: len(b)] == b else ""
                        print(f"{crate} ({name}): {show(a)} -> {show(b)}{note}")
            for label, level, within in granularities:
                for component, inside in cycles(tree, level, within):
                    total += 1
                    print(f"{crate} ({name}), {label}: cycle between {', '.join(component)}")
                    for file in files_of(tree, component, level):
                        print(f"    file  {file}")
                    for ref in inside:
                        a, b = show(node_of(ref.module, level)), show(node_of(ref.target, level))
                        print(f"    {a} -> {b}: {ref.file}:{ref.line} {ref.text}")
        for dirpath, _, names in os.walk(src):
            for entry in names:
                path = os.path.normpath(os.path.join(dirpath, entry))
                if entry.endswith(".rs") and path not in reached:
                    print(f"{crate}: {os.path.relpath(path, ROOT)} is not reached by any mod declaration",
                          file=sys.stderr)
    if total:
        print(f"{total} module cycle(s)")
        return 1
    print(f"no module cycles in {', '.join(args.crates)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
