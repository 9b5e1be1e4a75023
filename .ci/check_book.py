#!/usr/bin/env python3
"""Checks the book (docs/) after `mdbook build docs`.

    python3 .ci/check_book.py [--book-dir docs] [--report-only CHAPTER.md ...]

* Every internal link of every chapter (inline links, images, reference definitions
  and HTML `href`/`src`) points to a file that the build produced, and its `#anchor` to
  an id in that page (read from the built HTML, so the ids are mdBook's own). A link
  outside the book's `src` is an error too: mdBook does not copy it into the site.
* Every line that a code block shows is at most MAX_CODE_LINE characters, so that no
  snippet scrolls sideways (hidden `# ` lines of Rust blocks do not count). Chapters
  given with --report-only have their long lines counted, not failed.
* The repository's READMEs link to files that exist.
* Every example (`[[example]]` in examples/Cargo.toml) has a row in the examples tables
  of getting-started.md and of the README.

Exits 1 on any error, and prints each as `file:line: message`.
"""

import argparse
import html
import os
import re
import sys

MAX_CODE_LINE = 100

SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](dest "title") and ![alt](dest); the text may hold brackets one level deep.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(].*?[\"')])?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ATTR = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""")
HTML_ID = re.compile(r"""\bid\s*=\s*["']([^"']+)["']""")


def strip_inline_code(line):
    """Blanks inline code spans (keeping the length), so that their text is no link."""
    return INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)


def is_hidden(line, lang):
    """Whether mdBook hides this line of a code block (a Rust `# ` line)."""
    if lang != "rust":
        return False
    s = line.lstrip()
    return s == "#" or (s.startswith("# ") or s.startswith("#\t"))


def code_lang(info):
    words = re.split(r"[\s,]+", info.strip())
    first = words[0] if words and words[0] else ""
    # Rust is mdBook's and rustdoc's default for attribute-only info strings.
    if first in ("", "ignore", "no_run", "should_panic", "compile_fail", "edition2021",
                 "edition2024") or first.startswith("edition"):
        return "rust"
    return first


def scan(path):
    """Yields (line number, kind, value) for a Markdown file: ('link', dest) for each link
    outside code, ('code', (line, lang)) for each line inside a code block."""
    fence = None
    lang = ""
    with open(path, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            m = FENCE.match(line)
            if fence is None and m:
                fence, lang = m.group(1), code_lang(m.group(2))
                continue
            if fence is not None:
                if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                        and not m.group(2).strip():
                    fence = None
                else:
                    yield no, "code", (line, lang)
                continue
            text = strip_inline_code(line)
            m = REF_DEF.match(text)
            if m:
                yield no, "link", m.group(1)
                continue
            for m in INLINE_LINK.finditer(text):
                yield no, "link", m.group(1)
            for m in HTML_ATTR.finditer(text):
                yield no, "html", html.unescape(m.group(1))


def html_ids(path, cache={}):
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            cache[path] = {html.unescape(i) for i in HTML_ID.findall(f.read())}
    return cache[path]


def check_book(book_dir, report_only):
    src = os.path.join(book_dir, "src")
    out = os.path.join(book_dir, "book")
    errors = []
    long_reported = {}
    chapters = sorted(
        os.path.relpath(os.path.join(d, n), src)
        for d, _, names in os.walk(src)
        for n in names
        if n.endswith(".md")
    )
    for chapter in chapters:
        path = os.path.join(src, chapter)
        shown = os.path.join(book_dir, "src", chapter)
        for no, kind, value in scan(path):
            where = f"{shown}:{no}"
            if kind == "code":
                line, lang = value
                if len(line) > MAX_CODE_LINE and not is_hidden(line, lang):
                    if chapter in report_only:
                        long_reported[chapter] = long_reported.get(chapter, 0) + 1
                    else:
                        errors.append(f"{where}: a code line of {len(line)} characters "
                                      f"(at most {MAX_CODE_LINE}, or it scrolls)")
                continue
            dest = value
            if not dest or SCHEME.match(dest):
                continue
            target, _, anchor = dest.partition("#")
            if target:
                resolved = os.path.normpath(os.path.join(os.path.dirname(chapter), target))
            else:
                resolved = chapter
            if resolved.startswith(".."):
                errors.append(f"{where}: `{dest}` is outside the book (docs/src): the "
                              "built book does not have it; link its address instead")
                continue
            if resolved.endswith(".md") and kind == "link":
                built = os.path.join(out, resolved[:-3] + ".html")
                if not os.path.isfile(os.path.join(src, resolved)):
                    errors.append(f"{where}: `{dest}`: no chapter {resolved}")
                    continue
                if not os.path.isfile(built):
                    errors.append(f"{where}: `{dest}`: {resolved} is not in SUMMARY.md, so "
                                  "the book has no page for it")
                    continue
            else:
                # Raw HTML keeps its address as written (mdBook turns only Markdown
                # links to `.md` files into links to their pages).
                built = os.path.join(out, resolved)
                if not os.path.exists(built):
                    hint = " (in HTML, link the page: .html)" if resolved.endswith(".md") else ""
                    errors.append(f"{where}: `{dest}`: the built book has no {resolved}{hint}")
                    continue
            if anchor:
                if not built.endswith(".html"):
                    errors.append(f"{where}: `{dest}`: an anchor into a file that is no page")
                elif anchor not in html_ids(built):
                    errors.append(f"{where}: `{dest}`: {os.path.basename(built)} has no "
                                  f"`#{anchor}` (no heading or element with that id)")
    return errors, long_reported, len(chapters)


def check_readmes(root):
    """Relative links of the READMEs (GitHub's and crates.io's pages) name files that exist."""
    errors = []
    readmes = ["README.md"] + sorted(
        os.path.relpath(os.path.join(d, "README.md"), root)
        for d, dirs, names in os.walk(root)
        if "README.md" in names and d != root
        and not any(p in ("target", ".git", "book", "node_modules")
                    for p in os.path.relpath(d, root).split(os.sep))
    )
    for readme in readmes:
        path = os.path.join(root, readme)
        for no, kind, dest in scan(path):
            if kind == "code" or not dest or SCHEME.match(dest) or dest.startswith("#"):
                continue
            target = dest.partition("#")[0]
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
            if not os.path.exists(resolved):
                errors.append(f"{readme}:{no}: `{dest}`: no such file")
    return errors, len(readmes)


def check_examples(root, book_dir):
    """Every example is listed where a reader looks for them."""
    with open(os.path.join(root, "examples", "Cargo.toml"), encoding="utf-8") as f:
        names = re.findall(r'^\[\[example\]\]\s*\nname\s*=\s*"([^"]+)"', f.read(), re.M)
    errors = []
    for doc in (os.path.join(book_dir, "src", "getting-started.md"), "README.md"):
        with open(os.path.join(root, doc), encoding="utf-8") as f:
            rows = [line for line in f if line.startswith("|")]
        for name in names:
            if not any(re.match(rf"\|\s*\[?`{re.escape(name)}`", row) for row in rows):
                errors.append(f"{doc}: the example `{name}` has no row in its table of "
                              "examples")
    return errors, len(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book-dir", default="docs")
    parser.add_argument("--report-only", nargs="*", default=[],
                        help="chapters (relative to src) whose long code lines are only counted")
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    book_dir = os.path.relpath(os.path.join(root, args.book_dir))
    if not os.path.isdir(os.path.join(book_dir, "book")):
        print(f"error: {book_dir}/book is missing: run `mdbook build {book_dir}` first")
        return 1
    errors, long_reported, chapters = check_book(book_dir, set(args.report_only))
    readme_errors, readmes = check_readmes(os.path.relpath(root))
    errors += readme_errors
    example_errors, examples = check_examples(os.path.relpath(root), book_dir)
    errors += example_errors
    for e in errors:
        print(f"error: {e}")
    for chapter, n in sorted(long_reported.items()):
        print(f"note: {chapter} has {n} code line(s) over {MAX_CODE_LINE} characters "
              "(reported, not failed)")
    print(f"checked {chapters} chapters, {readmes} READMEs and the tables of {examples} "
          f"examples: {len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
