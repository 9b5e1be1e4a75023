#!/usr/bin/env python3
"""The book, the READMEs, the changelog and the code's comments speak to users.

Fails, naming file and line, on words that tell how the work was organised rather than
what the code does: issue numbers ("issue 44"), who decides ("the lead"), rounds of work
("the fifth round"), benchmark sketches, lettered designs ("design D2"), and commits
named as history ("at commit 1a2b3c4"). How a design was chosen belongs in commit
messages, not in what a user reads (the design notes' section 10).

Looks at every Markdown file (docs/, the READMEs, CHANGELOG.md), every Rust file and
every Cargo.toml of the repository, whole lines (doc comments, comments, strings).

Usage: python3 .ci/check_words.py [PATH...]   (default: the whole repository)
"""

import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SKIP_DIRS = {"target", ".git", "book", "node_modules"}
SUFFIXES = {".md", ".rs", ".toml"}

ORDINAL = r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d+(?:st|nd|rd|th))"
WORDS = [
    (re.compile(r"\bissues?\s*#?\d", re.I), "an issue number"),
    (re.compile(r"\bthe lead\b|\blead's\b|\blead engineer", re.I), "who decides"),
    (re.compile(rf"\b{ORDINAL} round\b|\brounds? \d", re.I), "a round of work"),
    (re.compile(r"\bsketch(?:es|ed|ing)?\b|_sketch\b", re.I), "a sketch"),
    (re.compile(r"\bdesigns? D\d|\bD\d+ (?:design|sketch)", re.I), "a lettered design"),
    (re.compile(r"\bcommit `?[0-9a-f]{7,40}\b", re.I), "a commit as history"),
]


def files(paths):
    for path in paths:
        if path.is_file():
            yield path
            continue
        for top, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(names):
                if pathlib.Path(name).suffix in SUFFIXES:
                    yield pathlib.Path(top) / name


def main(argv):
    paths = [pathlib.Path(a).resolve() for a in argv] or [ROOT]
    found = 0
    for path in files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for pattern, what in WORDS:
                m = pattern.search(line)
                if m:
                    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                    print(f"{rel}:{number}: {what} ({m.group(0)!r}): {line.strip()}")
                    found += 1
                    break
    if found:
        print(
            f"\n{found} line(s) tell how the work was organised; what a user reads says what "
            "the code does, what it costs and guarantees (history goes into commit messages)",
            file=sys.stderr,
        )
        return 1
    print("the book, the READMEs, the changelog and the comments speak to users")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
