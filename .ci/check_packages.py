#!/usr/bin/env python3
"""Checks what `cargo publish` would upload, beyond what its dry run checks.

    python3 .ci/check_packages.py
    python3 .ci/check_packages.py --names   # only prints the publishable crates' names

For every workspace package that can be published (no `publish = false`):

* its manifest has the metadata crates.io and docs.rs show: description, license,
  repository, homepage, documentation (its docs.rs page), readme, rust-version (the
  workspace's, or its own in OWN_RUST_VERSION), 1 to 5 keywords in crates.io's form, and 1 to 5 categories among
  crates.io's slugs; `[package.metadata.docs.rs]` documents every feature with
  `--cfg docsrs`, so that feature-gated items are marked with their feature;
* its package (`cargo package --list`) holds its README and both licence files.

Prints the publishable crates, one a line, then each problem; exits 1 on any.
"""

import json
import os
import re
import subprocess
import sys

# crates.io's category slugs (https://crates.io/category_slugs). Add one only if it is
# listed there: crates.io drops an unknown category with a mere warning.
CATEGORIES = {
    "accessibility", "algorithms", "api-bindings", "asynchronous", "authentication",
    "caching", "command-line-interface", "command-line-utilities", "compilers",
    "compression", "concurrency", "config", "cryptography", "data-structures", "database",
    "database-implementations", "date-and-time", "development-tools",
    "development-tools::build-utils", "development-tools::cargo-plugins",
    "development-tools::debugging", "development-tools::ffi",
    "development-tools::procedural-macro-helpers", "development-tools::profiling",
    "development-tools::testing", "embedded", "encoding", "filesystem", "memory-management",
    "network-programming", "no-std", "os", "parser-implementations", "parsing",
    "rust-patterns", "simulation", "text-processing", "value-formatting", "wasm",
    "web-programming", "web-programming::http-client", "web-programming::http-server",
    "web-programming::websocket",
}
# crates.io's rule for a keyword.
KEYWORD = re.compile(r"^[a-zA-Z][a-zA-Z0-9_+-]{0,19}$")
PACKAGED = ("README.md", "LICENSE-MIT", "LICENSE-APACHE")
# Crates whose dependencies need a newer Rust than the workspace's: the version each
# declares instead (.ci/run's msrv step leaves them out too). compio 0.12 uses
# `cfg_select!`, stable since Rust 1.95.
OWN_RUST_VERSION = {"hatchery-compio": "1.95"}


def cargo(*args):
    return subprocess.run(["cargo", *args], check=True, capture_output=True, text=True).stdout


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    meta = json.loads(cargo("metadata", "--no-deps", "--format-version", "1", "--locked"))
    members = set(meta["workspace_members"])
    packages = [p for p in meta["packages"] if p["id"] in members and p["publish"] != []]
    if sys.argv[1:] == ["--names"]:
        for p in sorted(packages, key=lambda p: p["name"]):
            print(p["name"])
        return 0
    with open("Cargo.toml", encoding="utf-8") as f:
        msrv = re.search(r'^rust-version = "(.*)"', f.read(), re.M).group(1)
    problems = []
    for p in sorted(packages, key=lambda p: p["name"]):
        name = p["name"]
        print(name)

        def need(ok, what):
            if not ok:
                problems.append(f"{name}: {what}")

        for field in ("description", "license", "repository", "homepage", "readme"):
            need(p.get(field), f"no `{field}` in its Cargo.toml")
        need(p.get("documentation") == f"https://docs.rs/{name}",
             f"`documentation` is {p.get('documentation')!r}, not its docs.rs page "
             f"\"https://docs.rs/{name}\"")
        own = OWN_RUST_VERSION.get(name)
        need(p.get("rust_version") == (own or msrv),
             f"`rust-version` is {p.get('rust_version')!r}, not "
             + (f"{own!r} (OWN_RUST_VERSION)" if own else
                f"the workspace's {msrv!r} (rust-version.workspace = true)"))
        keywords = p.get("keywords") or []
        need(1 <= len(keywords) <= 5, f"{len(keywords)} keywords (crates.io takes 1 to 5)")
        for k in keywords:
            need(KEYWORD.match(k), f"keyword {k!r}: crates.io takes at most 20 ASCII "
                 "letters, digits, `_`, `-` or `+`, starting with a letter")
        categories = p.get("categories") or []
        need(1 <= len(categories) <= 5, f"{len(categories)} categories (1 to 5)")
        for c in categories:
            need(c in CATEGORIES, f"category {c!r} is not one of crates.io's slugs")
        docs_rs = ((p.get("metadata") or {}).get("docs") or {}).get("rs") or {}
        need(docs_rs.get("all-features") is True,
             "[package.metadata.docs.rs] lacks `all-features = true`")
        need("docsrs" in " ".join(docs_rs.get("rustdoc-args", [])),
             '[package.metadata.docs.rs] lacks `rustdoc-args = ["--cfg", "docsrs"]`')
        listed = set(cargo("package", "--list", "--allow-dirty", "-p", name).split())
        for f in PACKAGED:
            need(f in listed, f"its package has no {f} (see `cargo package --list -p {name}`)")
        readme = p.get("readme")
        if readme:
            need(os.path.basename(readme) in listed, f"its package has no readme {readme}")
    if not packages:
        problems.append("no publishable package found")
    for problem in problems:
        print(f"error: {problem}")
    print(f"{len(packages)} publishable crate(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
