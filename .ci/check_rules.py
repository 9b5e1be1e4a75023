#!/usr/bin/env python3
"""Every rule of the semantics chapter is tested by name.

Reads every rule of docs/src/semantics.md (a heading `### X9 Title {#x9}`) and fails,
naming them, if some rule has no test whose name carries its id: the id in lowercase
at the start of the name (`x9_...`) or between underscores inside it (`..._x9_...`).

Only tests count (a helper whose name carries an id does not): a `fn` under a test
attribute (`#[test]`, `#[hatchery::test]`, `#[tokio::test]`, ...) in tests/ (the
conformance suite, crate hatchery-tests) and in core/src/ (unit tests), a scenario that
`each_kind!(name, ..)` makes a test of (tests/support/each_kind.rs), and a scenario of
the conformance kit that its list names (`__with_scenarios!` in
core/conformance/src/lib.rs: the adapters run each as a test).

Usage: python3 .ci/check_rules.py [--list]   (--list prints each rule's tests)
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "docs" / "src" / "semantics.md"
# Where a fn under a test attribute counts; the scenarios `each_kind!` runs; the kit's.
TEST_FN = [ROOT / "tests", ROOT / "core" / "src"]
EACH_KIND = re.compile(r"\beach_kind!\(\s*([A-Za-z_][A-Za-z0-9_]*)")
KIT = ROOT / "core" / "conformance" / "src" / "lib.rs"
KIT_LIST = re.compile(r"^\s*([a-z][a-z0-9_]*)(?:<kinds>)?\s*:\s*(?:Virtual|Real)\b", re.M)

RULE = re.compile(r"^### ([A-Z]+[0-9]+) (.*?)\s*\{#([a-z]+[0-9]+)\}\s*$")
FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+([A-Za-z_][A-Za-z0-9_]*)")
TEST_ATTR = re.compile(r"^\s*#\[(?:[A-Za-z_][A-Za-z0-9_]*::)*test\b")
ATTR_OR_DOC = re.compile(r"^\s*(#\[|///|//)")


def rules():
    found = []
    for line in CHAPTER.read_text(encoding="utf-8").splitlines():
        m = RULE.match(line)
        if m:
            rule, title, anchor = m.groups()
            if anchor != rule.lower():
                sys.exit(f"{CHAPTER.relative_to(ROOT)}: rule {rule}'s anchor is #{anchor}, not #{rule.lower()}")
            found.append((rule, title))
    return found


def test_names():
    """(name, file) of every test where tests are looked for."""
    names = []
    for root in TEST_FN:
        for path in sorted(root.rglob("*.rs")):
            if "target" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            rel = path.relative_to(ROOT)
            names += [(m.group(1), rel) for m in EACH_KIND.finditer(text)]
            under_test = False
            for line in text.splitlines():
                if TEST_ATTR.match(line):
                    under_test = True
                    continue
                m = FN.match(line)
                if m:
                    if under_test:
                        names.append((m.group(1), rel))
                    under_test = False
                elif not ATTR_OR_DOC.match(line):
                    under_test = False
    kit = KIT.read_text(encoding="utf-8")
    names += [(m.group(1), KIT.relative_to(ROOT)) for m in KIT_LIST.finditer(kit)]
    return names


def carries(name, rule_id):
    name = name.lower()
    return name.startswith(rule_id + "_") or f"_{rule_id}_" in name


def main():
    listing = "--list" in sys.argv[1:]
    all_rules = rules()
    if not all_rules:
        sys.exit(f"no rules found in {CHAPTER.relative_to(ROOT)} (headings `### X9 Title {{#x9}}`)")
    names = test_names()
    missing = []
    for rule, title in all_rules:
        tests = [(n, f) for n, f in names if carries(n, rule.lower())]
        if listing:
            print(f"{rule:4} {len(tests):4}  {title}")
            for n, f in tests:
                print(f"           {f}: {n}")
        if not tests:
            missing.append((rule, title))
    if missing:
        print(f"error: {len(missing)} of the {len(all_rules)} rules of docs/src/semantics.md "
              "are named by no test:")
        for rule, title in missing:
            print(f"    {rule}  {title}")
        print("Name a test that checks each one `{id}_...` (or `..._{id}_...`), in tests/, in "
              "core/conformance/ or as a unit test in core/src/, and list it in the chapter's "
              "index of test names.".replace("{id}", "x9"))
        return 1
    print(f"every one of the {len(all_rules)} rules of docs/src/semantics.md is named by a test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
