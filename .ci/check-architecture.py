#!/usr/bin/env python3
"""Architecture invariants that `cargo tree` and a one-line grep cannot express. Used by .ci/run.

  cycles   the modules of crates/store/src import each other in no cycle, direct or longer: a
           module depends on another when its code (comments and strings stripped) names
           `crate::other`, `super::other` from a top-level file, or a name that lib.rs
           re-exports from `other` (`pub use other::Name`).
  relay    nothing wakes the outbox relay by hand: outside the unit of work
           (Work::commit, in crates/store/src/commit.rs, wakes it) and the relay itself
           (crates/worker/src/relay.rs), no code under crates/*/src says `wake_relay` or calls
           `notify_one`/`notify_waiters` on the relay's `Notify` (a receiver whose name says
           relay or wake, or any such call in a file that holds a `Notify` next to the relay).
  codemap  ARCHITECTURE.md's code map agrees with the code: every file module of every crate
           (each `mod NAME;`, public or not, reached from src/lib.rs or src/main.rs) is named in
           the crate's "### `crates/<name>`" section, in backticks, as `NAME`, `NAME.rs`,
           `NAME/`, a path ending in one of them or a Rust path through it; and every `*.rs`
           file the section names exists in that crate's src.

Usage: check-architecture.py [--self-test] [--only cycles|relay|codemap ...]
Exits 1 with what is wrong on any failure. --self-test runs the parsers and the cycle finder
on planted inputs, so a check that finds nothing is known to be able to find something.
"""

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
STORE = "crates/store/src"
RELAY_ALLOWED = {
    "crates/store/src/commit.rs": "the unit of work: its commit (Work::commit) wakes the relay",
    "crates/worker/src/relay.rs": "the relay itself",
}
MAX_CYCLES_SHOWN = 25

# --------------------------------------------------------------------------------------------
# Rust source: comments and string literals blanked, newlines kept (so line numbers hold)

_CHAR_LITERAL = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.)|[^\\'\n])'")
_RAW_STRING = re.compile(r'b?r(#*)"')


def _blank(text):
    return "".join("\n" if c == "\n" else " " for c in text)


def strip_rust(src):
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            end = src.find("\n", i)
            end = n if end == -1 else end
            out.append(_blank(src[i:end]))
            i = end
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(_blank(src[i:j]))
            i = j
        elif c in "rb" and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")) and _RAW_STRING.match(src, i):
            m = _RAW_STRING.match(src, i)
            close = '"' + m.group(1)
            end = src.find(close, m.end())
            end = n if end == -1 else end + len(close)
            out.append(_blank(src[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            out.append('"' + _blank(src[i + 1 : j - 1]) + '"')
            i = j
        elif c == "'":
            m = _CHAR_LITERAL.match(src, i)
            if m:
                out.append(_blank(m.group(0)))
                i = m.end()
            else:  # a lifetime or a label
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


# --------------------------------------------------------------------------------------------
# module trees

_MOD_DECL = re.compile(r"^[ \t]*(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", re.M)
_CFG_TEST = re.compile(r"#\[cfg\(test\)\]\s*$")


def mod_decls(stripped):
    """The file modules a source declares (`mod x;`, any visibility), test-only ones left out."""
    names = []
    for m in _MOD_DECL.finditer(stripped):
        if _CFG_TEST.search(stripped[: m.start()]):
            continue
        names.append((m.group(1), line_of(stripped, m.start())))
    return names


def module_file(src_dir, parent_file, name):
    """Where `mod name;` in parent_file lives: beside it for lib.rs/main.rs/mod.rs, else in a
    folder named after the parent."""
    base = parent_file.parent if parent_file.name in ("lib.rs", "main.rs", "mod.rs") else parent_file.with_suffix("")
    for candidate in (base / f"{name}.rs", base / name / "mod.rs"):
        if candidate.is_file():
            return candidate
    return None


def module_tree(src_dir):
    """[(path tuple, file)] for every file module reachable from the crate roots."""
    found, seen = [], set()
    stack = [((), root) for root in (src_dir / "lib.rs", src_dir / "main.rs") if root.is_file()]
    while stack:
        path, file = stack.pop()
        if file in seen:
            continue
        seen.add(file)
        for name, _ in mod_decls(strip_rust(file.read_text())):
            child = module_file(src_dir, file, name)
            found.append((path + (name,), child))
            if child is not None:
                stack.append((path + (name,), child))
    return sorted(found, key=lambda x: x[0])


# --------------------------------------------------------------------------------------------
# check: no import cycle between store modules

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def _brace_group(text, start):
    """The text inside the braces that open at text[start], nested braces included."""
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : j]
    return text[start + 1 :]


def _split_top(group):
    parts, depth, cur = [], 0, []
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def crate_references(stripped, top_level=False):
    """[(first segment after the crate root, line)] for every path from the crate root:
    `crate::a::b`, `crate::{a, b::c, d::{e}}`, and `super::a` when the file is a top-level
    module (whose parent is the root)."""
    refs = []
    roots = r"crate" + (r"|super" if top_level else "")
    for m in re.finditer(rf"(?<![A-Za-z0-9_:])(?:{roots})\s*::\s*", stripped):
        line = line_of(stripped, m.start())
        rest = stripped[m.end() :]
        if rest.startswith("{"):
            for part in _split_top(_brace_group(rest, 0)):
                first = re.match(_IDENT, part)
                if first and first.group(0) != "self":
                    refs.append((first.group(0), line))
        else:
            first = re.match(_IDENT, rest)
            if first:
                refs.append((first.group(0), line))
    return refs


def root_reexports(lib_stripped, modules):
    """{name: module} for lib.rs's `pub use module::Name` / `pub use module::{A, B as C}`."""
    names = {}
    for m in re.finditer(rf"\bpub(?:\s*\([^)]*\))?\s+use\s+(?:crate\s*::\s*)?({_IDENT})\s*::\s*([^;]*);", lib_stripped):
        module, tail = m.group(1), m.group(2)
        if module not in modules:
            continue
        tail = tail.strip()
        items = _split_top(_brace_group(tail, 0)) if tail.startswith("{") else [tail]
        for item in items:
            alias = re.search(rf"\bas\s+({_IDENT})\s*$", item)
            last = alias.group(1) if alias else re.split(r"\s*::\s*", item)[-1]
            if re.fullmatch(_IDENT, last or ""):
                names[last] = module
    return names


def store_graph(src_dir):
    """({module: {dependency: (file, line)}}, modules) for the top-level modules of a crate."""
    lib = src_dir / "lib.rs"
    lib_stripped = strip_rust(lib.read_text())
    modules = [name for name, _ in mod_decls(lib_stripped)]
    reexports = root_reexports(lib_stripped, set(modules))
    graph = {m: {} for m in modules}
    for module in modules:
        top = module_file(src_dir, lib, module)
        files = [top] if top else []
        folder = src_dir / module
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("*.rs") if p != top)
        for file in files:
            stripped = strip_rust(file.read_text())
            for name, line in crate_references(stripped, top_level=(file == top and file.name != "mod.rs")):
                target = name if name in graph else reexports.get(name)
                if target and target != module and target not in graph[module]:
                    graph[module][target] = (file, line)
    return graph, modules


def find_cycles(graph, limit=MAX_CYCLES_SHOWN):
    """Elementary cycles, each as [a, b, …, a], shortest first; each cycle is reported once,
    starting from its smallest node."""
    nodes = sorted(graph)
    cycles = []

    for start in nodes:
        # only nodes >= start, so each cycle is found from its smallest member only
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ()), reverse=True):
                if nxt == start:
                    cycles.append(path + [start])
                elif nxt > start and nxt not in path:
                    stack.append((nxt, path + [nxt]))
            if len(cycles) > 10 * limit:
                break
    cycles.sort(key=lambda c: (len(c), c))
    return cycles


def check_cycles(problems):
    src = ROOT / STORE
    graph, modules = store_graph(src)
    if not modules:
        problems.append(f"cycles: no modules found in {STORE}/lib.rs (is the parser broken?)")
        return
    cycles = find_cycles(graph)
    if not cycles:
        return
    lines = [f"cycles: the modules of {STORE} import each other in a cycle ({len(cycles)} found):"]
    for cycle in cycles[:MAX_CYCLES_SHOWN]:
        lines.append("  " + " -> ".join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            file, line = graph[a][b]
            lines.append(f"      {a} -> {b}: {file.relative_to(ROOT)}:{line}")
    if len(cycles) > MAX_CYCLES_SHOWN:
        lines.append(f"  … and {len(cycles) - MAX_CYCLES_SHOWN} more")
    problems.append("\n".join(lines))


# --------------------------------------------------------------------------------------------
# check: only the unit of work (and the relay) wakes the relay

_WAKE = re.compile(r"\bwake_relay\b")
_NOTIFY = re.compile(r"\.\s*(notify_one|notify_waiters)\s*\(")
_RECEIVER = re.compile(r"[A-Za-z0-9_.:()&*?!\s]*$")


def relay_wakes(stripped):
    """[(line, what)] for every hand wake of the relay in a stripped source."""
    found = []
    for m in _WAKE.finditer(stripped):
        found.append((line_of(stripped, m.start()), "names `wake_relay`"))
    holds_relay_notify = bool(re.search(r"\bNotify\b", stripped)) and bool(re.search(r"relay", stripped, re.I))
    for m in _NOTIFY.finditer(stripped):
        start = stripped.rfind("\n", 0, m.start()) + 1
        receiver = _RECEIVER.search(stripped[start : m.start()]).group(0).strip()
        if re.search(r"relay|wake", receiver, re.I) or holds_relay_notify:
            found.append((line_of(stripped, m.start()), f"calls `{receiver}.{m.group(1)}()` on the relay's waker"))
    return found


def check_relay(problems):
    hits = []
    for file in sorted((ROOT / "crates").glob("*/src/**/*.rs")):
        rel = file.relative_to(ROOT).as_posix()
        if rel in RELAY_ALLOWED:
            continue
        for line, what in relay_wakes(strip_rust(file.read_text())):
            hits.append(f"  {rel}:{line}: {what}")
    if hits:
        problems.append(
            "relay: the outbox relay is woken by hand outside the unit of work "
            "(only store::Work::commit, crates/store/src/commit.rs, may wake it):\n" + "\n".join(hits)
        )


# --------------------------------------------------------------------------------------------
# check: the code map names every module, and every file it names exists

_SPAN = re.compile(r"`([^`\n]+)`")


def code_map_sections(markdown):
    """{crate: section text} for each "### `crates/<crate>`" under "## Code map"."""
    m = re.search(r"^## Code map[ \t]*$(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    if not m:
        return None
    sections = {}
    parts = re.split(r"^### (.*)$", m.group(1), flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2]):
        crate = re.fullmatch(r"\s*`crates/([A-Za-z0-9_-]+)/?`\s*", heading)
        if crate:
            sections[crate.group(1)] = body
    return sections


def names_module(spans, path, crate=None):
    """Whether one of the spans names the module at `path` (a tuple such as ('stigg', 'views'))
    of `crate`. A span with folders must agree with the module's parents as far as it goes
    (`sequence/views.rs` does not name `stigg::views`); a Rust path must go through the module
    from its parent, the crate or `crate` (`domain::task::TaskView` names no module of api)."""
    name = path[-1]
    parent = path[-2] if len(path) > 1 else None
    for span in spans:
        s = span.strip()
        if "::" in s:
            segments = [p.strip() for p in s.split("::")]
            for i, segment in enumerate(segments[:-1] if len(segments) > 1 else segments):
                if segment != name:
                    continue
                before = segments[i - 1] if i else None
                if before is None or before == parent or (parent is None and before in (crate, "crate", "self")):
                    return True
            continue
        if s.startswith("/") or not re.fullmatch(r"[A-Za-z0-9_./-]+", s):
            continue  # a URL path or prose, not a module
        s = s.rstrip("/")
        if s.endswith(".rs"):
            s = s[:-3]
        if s.endswith("/mod"):
            s = s[:-4]
        segments = tuple(s.split("/"))
        k = min(len(segments), len(path))
        if segments[-1] == name and segments[-k:] == tuple(path[-k:]):
            return True
    return False


def rs_files_named(spans):
    return sorted({s.strip() for s in spans if re.fullmatch(r"[A-Za-z0-9_./-]+\.rs", s.strip())})


def file_exists_in(src_dir, named):
    named = named.lstrip("./")
    if "/" in named:
        return any(p.as_posix().endswith("/" + named) for p in src_dir.rglob("*.rs"))
    return any(p.name == named for p in src_dir.rglob("*.rs"))


def check_codemap(problems):
    doc = ROOT / "ARCHITECTURE.md"
    sections = code_map_sections(doc.read_text())
    if sections is None:
        problems.append("codemap: ARCHITECTURE.md has no `## Code map` section")
        return
    missing = []
    crates = sorted(p.parent.name for p in (ROOT / "crates").glob("*/Cargo.toml"))
    if not crates:
        problems.append("codemap: no crates found under crates/ (is the parser broken?)")
        return
    for crate in crates:
        src = ROOT / "crates" / crate / "src"
        if crate not in sections:
            missing.append(f"  crates/{crate}: no \"### `crates/{crate}`\" section in the code map")
            continue
        spans = _SPAN.findall(sections[crate])
        for path, file in module_tree(src):
            where = file.relative_to(ROOT).as_posix() if file else "(no file found)"
            if not names_module(spans, path, crate):
                missing.append(f"  crates/{crate}: module `{'::'.join(path)}` ({where}) is not named in its code map section")
        for named in rs_files_named(spans):
            if not file_exists_in(src, named):
                missing.append(f"  crates/{crate}: the code map names `{named}`, which is no file in crates/{crate}/src")
    if missing:
        problems.append("codemap: ARCHITECTURE.md's code map disagrees with the code:\n" + "\n".join(missing))


# --------------------------------------------------------------------------------------------
# self-test: every parser and the cycle finder on planted inputs


def self_test():
    failures = []

    def expect(condition, what):
        if not condition:
            failures.append(what)

    # the cycle finder
    expect(find_cycles({"a": {"b": 1}, "b": {"a": 1}}) == [["a", "b", "a"]], "a direct cycle is found")
    longer = find_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}})
    expect(longer == [["a", "b", "c", "a"]], f"a longer cycle is found once: {longer}")
    both = find_cycles({"t": {"w": 1}, "w": {"t": 1, "r": 1}, "r": {"t": 1}, "p": {"w": 1}})
    expect(["t", "w", "t"] in both and ["r", "t", "w", "r"] in both, f"overlapping cycles are found: {both}")
    expect(find_cycles({"a": {"b": 1, "c": 1}, "b": {"c": 1}, "c": {}, "d": {"a": 1}}) == [], "a DAG has no cycle")
    expect(find_cycles({}) == [], "an empty graph has no cycle")

    # comment and string stripping
    src = (
        "// use crate::commented;\n"
        "/* crate::blocked /* nested crate::deeper */ still */\n"
        'let s = "crate::in_string // not a comment";\n'
        'let r = r#"crate::in_raw "quoted" "#;\n'
        "let c = '\"'; fn f<'a>(x: &'a str) {}\n"
        "use crate::{tasks, webhooks::{self, Event}, outbox::write as w};\n"
        "use crate::{\n    events::{\n        Timeline,\n    },\n    Result,\n};\n"
        "let x = crate::rollouts::start(); let y = super::plans::find();\n"
        "let z = notcrate::nope;\n"
    )
    stripped = strip_rust(src)
    expect(stripped.count("\n") == src.count("\n"), "stripping keeps line numbers")
    found = {name for name, _ in crate_references(stripped, top_level=True)}
    expect(found == {"tasks", "webhooks", "outbox", "events", "Result", "rollouts", "plans"}, f"crate references: {found}")
    nested = {name for name, _ in crate_references(stripped, top_level=False)}
    expect("plans" not in nested, "super:: is only the crate root in a top-level module")
    expect(
        root_reexports("pub use tasks::Task;\npub use outbox::{Outbox, write as put};\npub use sqlx::PgPool as Pool;", {"tasks", "outbox"})
        == {"Task": "tasks", "Outbox": "outbox", "put": "outbox"},
        "lib.rs re-exports map names to modules",
    )
    decls = [n for n, _ in mod_decls(strip_rust("pub mod a;\nmod b;\npub(crate) mod c;\n#[cfg(test)]\nmod tests;\nmod inline {\n}\n// mod d;\n"))]
    expect(decls == ["a", "b", "c"], f"mod declarations: {decls}")

    # the relay scan
    wakes = relay_wakes(strip_rust("fn h(state: S) {\n    state.wake_relay();\n}\n"))
    expect([line for line, _ in wakes] == [2], f"wake_relay is found: {wakes}")
    wakes = relay_wakes(strip_rust("fn h(relay: Option<Arc<Notify>>) {\n if let Some(r) = &relay { r.notify_one(); }\n}\n"))
    expect(len(wakes) == 1, f"notify_one on the relay's Notify is found: {wakes}")
    wakes = relay_wakes(strip_rust("fn h(c: &Ctx) { c.relay_waker.notify_waiters() }"))
    expect(len(wakes) == 1, f"notify_waiters on a relay waker is found: {wakes}")
    wakes = relay_wakes(strip_rust("// state.wake_relay();\nlet done = Notify::new(); done.notify_one();\nlet s = \"wake_relay\";\n"))
    expect(wakes == [], f"comments, strings and unrelated Notifys are left alone: {wakes}")

    # the code map
    markdown = (
        "# A\n\n## Code map\n\nIntro `crates/<name>`.\n\n### `crates/api`\n\n"
        "`router` and `stigg/` (`views.rs`, `/api/v1/plans`), `tasks.rs`, `handlers::publish::run`, `gone.rs`.\n\n"
        "### `migrations/`\n\nschema\n\n## Next\n\n### `crates/other`\n"
    )
    sections = code_map_sections(markdown)
    expect(sections is not None and set(sections) == {"api"}, f"code map sections: {sections and set(sections)}")
    spans = _SPAN.findall(sections["api"]) if sections else []
    expect(names_module(spans, ("stigg",)), "`stigg/` names stigg")
    expect(names_module(spans, ("stigg", "views")), "`views.rs` names stigg::views")
    expect(names_module(spans, ("tasks",)), "`tasks.rs` names tasks")
    expect(names_module(spans, ("handlers", "publish")), "a Rust path names the modules it goes through")
    expect(not names_module(spans, ("other", "publish")), "a Rust path must reach a nested module from its parent")
    expect(names_module(["`api::tasks::x`".strip("`")], ("tasks",), "api"), "a Rust path from the crate names its module")
    expect(not names_module(["domain::task::TaskView"], ("task",), "api"), "another crate's path names no module")
    expect(not names_module(["sequence/views.rs"], ("stigg", "views"), "api"), "a file in another folder names no module")
    expect(names_module(["crates/api/src/stigg/views.rs"], ("stigg", "views"), "api"), "a full path names its module")
    expect(not names_module(spans, ("plans",)), "a URL path names no module")
    expect(not names_module(spans, ("run",)), "the last segment of a Rust path is an item, not a module")
    expect(not names_module(spans, ("health",)), "an absent module is reported")
    expect(rs_files_named(spans) == ["gone.rs", "tasks.rs", "views.rs"], f"files named: {rs_files_named(spans)}")

    if failures:
        print("check-architecture self-test FAILED:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print("check-architecture self-test: ok")
    return 0


CHECKS = {"cycles": check_cycles, "relay": check_relay, "codemap": check_codemap}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true", help="test the checker itself on planted inputs")
    parser.add_argument("--only", action="append", choices=sorted(CHECKS), help="run only this check (repeatable)")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    problems = []
    for name in args.only or list(CHECKS):
        CHECKS[name](problems)
    if problems:
        for p in problems:
            print(f"invariant broken: {p}", file=sys.stderr)
        return 1
    print(f"architecture invariants: ok ({', '.join(args.only or CHECKS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
