#!/usr/bin/env python3
"""Finds import cycles between vmbench's top-level modules.

The design promises data flows one way (scenario -> plan -> runner ->
record -> stats -> reports); a cycle between two top-level modules means
that promise is broken somewhere. This reads every `.rs` file under `src/`
(except the agent, which is built on its own, and the binaries, which are
not part of the library), maps it to its top-level module, and collects the
other top-level modules it names through `crate::` paths (or `super::`
chains that climb to the crate root). Comments, string literals and
`#[cfg(test)]` items are ignored: tests may reach anywhere.

Usage: check-module-cycles.py [--list | --dot] [SRC_DIR]

Exits 1 and prints every elementary cycle (`a -> b -> a`) if there is one,
else prints `no import cycles between top-level modules (N modules)` and
exits 0. `--list` first prints each edge with the first place it is made;
`--dot` prints the graph in Graphviz form (the verdict goes to stderr).
"""

import argparse
import re
import sys
from pathlib import Path

# Parts of src/ that are not modules of the library's module tree.
SKIPPED_DIRS = {"agent", "bin"}
SKIPPED_FILES = {"main.rs", "lib.rs"}
# The agent is a module, but it is built without the harness feature and so
# cannot name the harness's modules: a node others point at, never from.
LEAF_MODULES = {"agent"}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CRATE_PATH = re.compile(r"(?<![A-Za-z0-9_])crate::(" + IDENT + r"|\{)")
SUPER_PATH = re.compile(r"(?<![A-Za-z0-9_])((?:super::)+)(" + IDENT + r"|\{)")
CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
INNER_CFG_TEST = re.compile(r"#!\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
RAW_STRING = re.compile(r"b?r(#*)\"")
CHAR_LITERAL = re.compile(r"'(?:\\(?:u\{[0-9A-Fa-f]+\}|x[0-9A-Fa-f]{2}|.)|[^\\'\n])'")


def blank(text, start, end):
    """`text` with [start, end) replaced by spaces, newlines kept so that
    line numbers still point at the original file."""
    middle = "".join(c if c == "\n" else " " for c in text[start:end])
    return text[:start] + middle + text[end:]


def strip_comments_and_literals(text):
    """Blanks comments (line, nested block, doc), string literals (plain,
    byte, raw) and char literals, keeping every newline and every other
    character in place. Brace matching and path search then see only code."""
    out = list(text)
    i, n = 0, len(text)

    def wipe(a, b):
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            wipe(i, end)
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            wipe(i, j)
            i = j
        elif c in "br" and (m := RAW_STRING.match(text, i)) and not _ident_char(text, i - 1):
            closing = '"' + m.group(1)
            end = text.find(closing, m.end())
            end = n if end < 0 else end + len(closing)
            wipe(i, end)
            i = end
        elif c == '"' or (c == "b" and text.startswith('b"', i) and not _ident_char(text, i - 1)):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}'), not a lifetime ('a).
            m = CHAR_LITERAL.match(text, i)
            if m:
                wipe(i, m.end())
                i = m.end()
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def _ident_char(text, i):
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def item_end(code, start):
    """End of the item that begins at `start`: just past its first `;` or
    past the `}` matching its first `{`, whichever comes first."""
    depth = 0
    for j in range(start, len(code)):
        ch = code[j]
        if ch == ";" and depth == 0:
            return j + 1
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def strip_test_items(code):
    """Blanks every item under `#[cfg(test)]` (a `mod tests { .. }`, a
    `mod tests;`, a test-only helper or `use`)."""
    while m := CFG_TEST.search(code):
        code = blank(code, m.start(), item_end(code, m.end()))
    return code


def group_heads(code, brace):
    """First path segment of each element of the `{ .. }` group opening at
    index `brace` (`crate::{a, b::c}` names `a` and `b`)."""
    depth, j, element = 0, brace, ""
    heads = []
    while j < len(code):
        ch = code[j]
        if ch == "{":
            depth += 1
            if depth == 1:
                j += 1
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                heads.append(element)
                break
        if depth == 1 and ch == ",":
            heads.append(element)
            element = ""
        elif depth == 1:
            element += ch
        j += 1
    names = []
    for element in heads:
        m = re.match(r"\s*(" + IDENT + ")", element)
        if m and m.group(1) not in ("self", "super", "crate"):
            names.append(m.group(1))
    return names


def module_of(path, src):
    """(top-level module, depth in the module tree) of a file under `src`:
    src/foo.rs and src/foo/mod.rs are `foo` at depth 1, src/foo/bar.rs is at
    depth 2. None for files outside the library's module tree."""
    parts = path.relative_to(src).parts
    if parts[0] in SKIPPED_DIRS or (len(parts) == 1 and parts[0] in SKIPPED_FILES):
        return None
    if path.name == "tests.rs":
        return None
    depth = len(parts) - (1 if path.name == "mod.rs" else 0)
    return Path(parts[0]).stem, depth


def references(code, depth):
    """(top-level module, offset) for each path in `code` that starts at the
    crate root."""
    found = []
    for m in CRATE_PATH.finditer(code):
        heads = group_heads(code, m.start(1)) if m.group(1) == "{" else [m.group(1)]
        found += [(h, m.start()) for h in heads]
    for m in SUPER_PATH.finditer(code):
        if m.group(1).count("super::") < depth:
            continue  # still inside the file's own top-level module
        heads = group_heads(code, m.start(2)) if m.group(2) == "{" else [m.group(2)]
        found += [(h, m.start()) for h in heads]
    return found


def build_graph(src):
    """Edges {module: {other: "file:line"}} and the set of modules."""
    modules = {}
    for path in sorted(src.rglob("*.rs")):
        placed = module_of(path, src)
        if placed:
            modules.setdefault(placed[0], []).append((path, placed[1]))
    edges = {name: {} for name in [*modules, *LEAF_MODULES]}
    for name, files in modules.items():
        for path, depth in files:
            text = path.read_text(encoding="utf-8")
            code = strip_comments_and_literals(text)
            if INNER_CFG_TEST.search(code):
                continue
            code = strip_test_items(code)
            for other, offset in references(code, depth):
                # Names that are not top-level modules (a macro, `crate::main`)
                # and references to oneself are not edges.
                if other in edges and other != name and other not in edges[name]:
                    line = code.count("\n", 0, offset) + 1
                    edges[name][other] = f"{path.relative_to(src.parent)}:{line}"
    return edges


def elementary_cycles(edges):
    """Every elementary cycle, each started at its smallest module name so
    that it is listed once (a simple form of Johnson's search: from each
    start, only through larger names)."""
    cycles = []
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges[node], reverse=True):
                if nxt == start:
                    cycles.append(path + [start])
                elif nxt > start and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return sorted(cycles, key=lambda c: (len(c), c))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    show = parser.add_mutually_exclusive_group()
    show.add_argument("--list", action="store_true", help="print every edge and where it is made")
    show.add_argument("--dot", action="store_true", help="print the graph as Graphviz dot")
    default_src = Path(__file__).resolve().parent.parent / "src"
    parser.add_argument("src", nargs="?", type=Path, default=default_src, help="the crate's src directory")
    args = parser.parse_args()
    if not args.src.is_dir():
        parser.error(f"{args.src} is not a directory")

    edges = build_graph(args.src)
    verdict = sys.stdout
    if args.list:
        for a in sorted(edges):
            for b, where in sorted(edges[a].items()):
                print(f"{a} -> {b}\t{where}")
    elif args.dot:
        print("digraph modules {")
        for a in sorted(edges):
            print(f'  "{a}";')
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
        verdict = sys.stderr

    cycles = elementary_cycles(edges)
    if not cycles:
        print(f"no import cycles between top-level modules ({len(edges)} modules)", file=verdict)
        return 0
    print(f"{len(cycles)} import cycle(s) between top-level modules:", file=verdict)
    for cycle in cycles:
        print(" -> ".join(cycle), file=verdict)
    return 1


if __name__ == "__main__":
    sys.exit(main())
