#!/usr/bin/env python3
"""Writes audit/dependencies.md, the dependency inventory, from Cargo.lock and `cargo metadata`;
checks every crate against the licence, source and ban policy in deny.toml.

    python3 audit/inventory.py           rewrite audit/dependencies.md, then check the policy
    python3 audit/inventory.py --check   fail if audit/dependencies.md is stale or the policy fails

For every package in Cargo.lock: version, licence, checksum, source, what it is for the build
(linked into the binary, build time only, tests only, or another platform only), which direct
dependency pulls it in, and one line on why. The "why" of a direct dependency comes from the WHY
table below, written by hand: a new direct dependency fails the check until it has a line there
(the design asks for a reason an auditor would accept). Transitive crates get "pulled in by X
through Y" plus their own description.

The policy check is the licence/sources/bans subset of cargo-deny, read from the same deny.toml,
so that it runs offline with nothing but Python 3.11 (tomllib) and cargo. Offline, run it with
the vendored sources configured (audit/README.md) and CARGO_NET_OFFLINE=true.
"""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "audit" / "dependencies.md"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
# The platforms the project ships or checks: the release images and the local static check.
PLATFORMS = [
    "x86_64-unknown-linux-gnu",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
]

# Why each direct dependency is here, in this project's terms.
WHY = {
    "base64": "base64url without padding: JWT payloads (`exp`, account id, plan) and the PKCE challenge",
    "crossbeam-channel": "tests only: channels between the fake backends' threads (the proxy's worker queue is std only, `src/job_queue.rs`, because it wakes the most recently idle worker first)",
    "getrandom": "OS randomness for the PKCE verifier and state, temporary file names and retry jitter (ids come from std's OS-seeded hasher keys, `src/ids.rs`)",
    "log": "the logging facade the proxy and its dependencies write to",
    "memchr": "SIMD search for SSE line ends (the largest single cost of reading an event stream with std's portable search); already linked through serde_json and ureq, so no new code",
    "ring": "SHA-256 (PKCE challenge, hashed refresh tokens in the state sidecar); also rustls's crypto provider, so no second crypto library",
    "rustls": "the TLS library under ureq (the same copy, on ring): named to tell callers which certificate problem ended a handshake; the tests' loopback TLS server uses it too",
    "serde": "typed request/response fields with `#[serde(flatten)]` for the rest",
    "serde_json": "JSON in and out: requests, SSE event payloads, the credentials file; its `raw_value` feature (no extra crate) keeps finished items and the terminal response as the text the backend sent",
    "tiny_http": "the HTTP/1.1 server: a small synchronous server; built from the patched copy in audit/patched-crates",
    "ureq": "the blocking HTTP client for the Codex backend and the OAuth issuer, with rustls and built-in webpki roots",
}


def cargo_metadata(*extra):
    command = ["cargo", "metadata", "--format-version", "1", "--locked", *extra]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"inventory: {' '.join(command)} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def one_line(text):
    text = re.sub(r"\s+", " ", (text or "").strip())
    return text.replace("|", "\\|")


def spoken_list(names):
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def relative_source(package):
    source = package["source"]
    if source == CRATES_IO:
        return "crates.io"
    if source is None:
        manifest = Path(package["manifest_path"]).parent
        try:
            return "path: " + str(manifest.relative_to(ROOT)).replace(os.sep, "/")
        except ValueError:
            return f"path outside the repository: {manifest}"
    return source


def closure(start, edges):
    seen = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(edges.get(node, ()))
    return seen


def cargo_tree(edges, target):
    """`cargo tree` with the real feature resolver: a list of (depth, (name, version))."""
    command = [
        "cargo", "tree", "--locked", "--edges", edges, "--target", target,
        "--prefix", "depth", "--format", "{p}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"inventory: {' '.join(command)} failed:\n{result.stderr}")
    lines = []
    for line in result.stdout.splitlines():
        match = re.match(r"^(\d+)(\S+) v(\S+)", line)
        if match:
            lines.append((int(match.group(1)), (match.group(2), match.group(3))))
    return lines


def compiled(edges):
    """The (name, version) pairs `cargo tree --edges edges` reaches for any of PLATFORMS."""
    return {key for target in PLATFORMS for _, key in cargo_tree(edges, target)}


def classify(meta):
    """Returns ({key: role}, {key: direct dependency names}, {key: parent names}, direct keys),
    keys being (name, version).

    Roles come from `cargo tree`, not from `cargo metadata`: metadata's resolve ignores which
    optional features are on (it lists ureq's cookie_store, say, which is never compiled), and
    Cargo.lock records every optional dependency whatever the features."""
    packages = {p["id"]: p for p in meta["packages"]}
    key_of = {pid: (p["name"], p["version"]) for pid, p in packages.items()}
    root = key_of[meta["resolve"]["root"]]
    linked = compiled("normal,no-proc-macro")
    built = compiled("normal,build")
    tested = compiled("normal,build,dev")
    full_tree = cargo_tree("normal,build,dev", "all")
    anywhere = {key for _, key in full_tree}

    role = {}
    for key in key_of.values():
        if key == root:
            role[key] = "the project"
        elif key in linked:
            role[key] = "linked"
        elif key in built:
            role[key] = "build time"
        elif key in tested:
            role[key] = "tests only"
        elif key in anywhere:
            role[key] = "other platforms only"
        else:
            role[key] = "never compiled"

    # Who pulls what in: the compiled graph from cargo tree, and for crates that are never
    # compiled, the lock-level graph from cargo metadata (the optional dependency's owner).
    edges, parents = {}, {}
    stack = []
    for depth, key in full_tree:
        del stack[depth:]
        if stack:
            edges.setdefault(stack[-1], set()).add(key)
            parents.setdefault(key, set()).add(stack[-1][0])
        stack.append(key)
    for node in meta["resolve"]["nodes"]:
        for dep in node["deps"]:
            child, parent = key_of[dep["pkg"]], key_of[node["id"]]
            if role[child] == "never compiled":
                edges.setdefault(parent, set()).add(child)
                parents.setdefault(child, set()).add(parent[0])
    direct_keys = set(edges.get(root, ()))
    direct = {}
    for dep in direct_keys:
        for key in closure([dep], edges):
            direct.setdefault(key, set()).add(dep[0])
    return role, direct, parents, direct_keys, root


def lock_entries():
    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    return {(p["name"], p["version"]): p for p in lock["package"]}


def build_inventory():
    meta = cargo_metadata()
    role, direct, parents, direct_keys, root = classify(meta)
    lock = lock_entries()
    packages = sorted(meta["packages"], key=lambda p: (p["name"], p["version"]))
    problems = []

    in_metadata = {(p["name"], p["version"]) for p in packages}
    for missing in sorted(set(lock) - in_metadata):
        problems.append(f"{missing[0]} {missing[1]} is in Cargo.lock but not in cargo metadata")
    for extra in sorted(in_metadata - set(lock)):
        problems.append(f"{extra[0]} {extra[1]} is in cargo metadata but not in Cargo.lock")

    rows = []
    for p in packages:
        key = (p["name"], p["version"])
        entry = lock.get(key, {})
        if key == root:
            why = "this project"
            via = "-"
        elif key in direct_keys:
            why = WHY.get(p["name"])
            if why is None:
                problems.append(
                    f"direct dependency {p['name']} has no line in WHY (audit/inventory.py): "
                    "write down why the project needs it"
                )
                why = "(no reason written down)"
            via = "direct"
        else:
            names = sorted(direct.get(key, ()))
            through = sorted(parents.get(key, ()) - set(names))
            via = ", ".join(names) or "-"
            why = "pulled in by " + (spoken_list(names) or "nothing")
            if through:
                why += " through " + spoken_list(through)
            if role[key] == "never compiled":
                why = "optional, not enabled; " + why
            if p.get("description"):
                why += ": " + p["description"]
            if p["source"] is None:
                why += "; built from the patched copy in audit/patched-crates"
        rows.append(
            {
                "name": p["name"],
                "version": p["version"],
                "license": p.get("license") or (f"file: {p['license_file']}" if p.get("license_file") else ""),
                "checksum": entry.get("checksum", ""),
                "source": relative_source(p),
                "role": role[key],
                "via": via,
                "why": one_line(why),
            }
        )
    return rows, problems


def render(rows):
    counts = {}
    for row in rows:
        counts[row["role"]] = counts.get(row["role"], 0) + 1
    order = ["the project", "linked", "build time", "tests only", "other platforms only", "never compiled"]
    summary = ", ".join(f"{counts[r]} {r}" for r in order if r in counts)
    lines = [
        "# Dependency inventory",
        "",
        "Generated by `python3 audit/inventory.py` from `Cargo.lock` and `cargo metadata`; do not edit.",
        "`python3 audit/inventory.py --check` (run by CI) fails when this file no longer matches",
        "`Cargo.lock`, and when a crate breaks the licence, source or ban policy in `deny.toml`.",
        "",
        f"{len(rows)} packages: {summary}.",
        "",
        "- **role** (from `cargo tree` for the targets in `deny.toml`): `linked` is compiled into the",
        "  `codex-sub-proxy` binary on Linux (x86_64 and aarch64); `build time` runs only while",
        "  compiling (proc-macros, build scripts and what they use); `tests only` is a",
        "  dev-dependency; `other platforms only` is compiled only for targets this project does not",
        "  build (Windows, WASI, …); `never compiled` is an optional dependency whose feature is off:",
        "  `Cargo.lock` records every optional dependency, whatever the features.",
        "- **checksum**: the SHA-256 of the `.crate` file as recorded in `Cargo.lock`; cargo verifies",
        "  it on download and against vendored sources. Path packages have none: their source is in",
        "  this repository.",
        "- **via**: the project's direct dependencies that pull the crate in.",
        "",
        "| crate | version | licence | role | via | source | checksum (sha256) | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        checksum = f"`{row['checksum']}`" if row["checksum"] else "-"
        lines.append(
            f"| {row['name']} | {row['version']} | {one_line(row['license'])} | {row['role']} "
            f"| {row['via']} | {row['source']} | {checksum} | {row['why']} |"
        )
    return "\n".join(lines) + "\n"


# --- policy (deny.toml) ---------------------------------------------------------------------

def spdx_tokens(expression):
    # The old "/" separator means OR; parentheses are tokens of their own.
    expression = expression.replace("/", " OR ").replace("(", " ( ").replace(")", " ) ")
    return expression.split()


def spdx_allowed(expression, allowed):
    """Whether an SPDX expression can be satisfied using only `allowed` licences."""
    tokens = spdx_tokens(expression)
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else None

    def take():
        nonlocal position
        token = peek()
        position += 1
        return token

    def primary():
        token = take()
        if token is None:
            raise ValueError("unexpected end")
        if token == "(":
            value = disjunction()
            if take() != ")":
                raise ValueError("missing )")
            return value
        if token in ("AND", "OR", "WITH", ")"):
            raise ValueError(f"unexpected {token}")
        if peek() == "WITH":
            take()
            take()  # the exception only adds permissions
        return token.rstrip("+") in allowed or token in allowed

    def conjunction():
        value = primary()
        while peek() == "AND":
            take()
            value = primary() and value
        return value

    def disjunction():
        value = conjunction()
        while peek() == "OR":
            take()
            value = conjunction() or value
        return value

    result = disjunction()
    if peek() is not None:
        raise ValueError(f"unexpected {peek()}")
    return result


def check_policy(rows):
    policy = tomllib.loads((ROOT / "deny.toml").read_text())
    licenses = policy.get("licenses", {})
    allowed = set(licenses.get("allow", []))
    exceptions = {
        e["name"]: set(e.get("allow", [])) for e in licenses.get("exceptions", [])
    }
    sources = policy.get("sources", {})
    registries = set(sources.get("allow-registry", []))
    git_allowed = sources.get("allow-git", [])
    banned = {
        (b.get("crate") or b.get("name")) if isinstance(b, dict) else b
        for b in policy.get("bans", {}).get("deny", [])
    }
    problems = []
    for row in rows:
        if row["role"] == "other platforms only":
            continue
        name = f"{row['name']} {row['version']}"
        expression = row["license"]
        if not expression or expression.startswith("file:"):
            problems.append(f"{name}: no SPDX licence expression ({expression or 'none'})")
        else:
            try:
                ok = spdx_allowed(expression, allowed | exceptions.get(row["name"], set()))
            except ValueError as error:
                problems.append(f"{name}: cannot read licence {expression!r}: {error}")
                ok = True
            if not ok:
                problems.append(f"{name}: licence {expression!r} is not allowed by deny.toml")
        source = row["source"]
        if source.startswith("path: "):
            pass
        elif source == "crates.io":
            if registries and "https://github.com/rust-lang/crates.io-index" not in registries:
                problems.append(f"{name}: crates.io is not an allowed registry")
        elif source.startswith("git+"):
            if not any(source.startswith("git+" + url) for url in git_allowed):
                problems.append(f"{name}: git source {source} is not allowed")
        else:
            problems.append(f"{name}: source {source} is not allowed")
        if row["name"] in banned:
            problems.append(f"{name}: banned by deny.toml")
    return problems


def main(argv):
    check = "--check" in argv[1:]
    unknown = [a for a in argv[1:] if a != "--check"]
    if unknown:
        sys.exit(f"usage: python3 audit/inventory.py [--check]  (unknown: {' '.join(unknown)})")
    rows, problems = build_inventory()
    problems += check_policy(rows)
    text = render(rows)
    if check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            problems.append(
                "audit/dependencies.md does not match Cargo.lock: run `python3 audit/inventory.py`"
                " and commit the result"
            )
    else:
        OUTPUT.write_text(text)
        print(f"inventory: wrote {OUTPUT.relative_to(ROOT)} ({len(rows)} packages)")
    for problem in problems:
        print(f"inventory: {problem}", file=sys.stderr)
    if problems:
        return 1
    linked = sum(1 for r in rows if r["role"] == "linked")
    print(
        f"inventory: {len(rows)} packages ({linked} linked into the binary) match Cargo.lock;"
        " licences, sources and bans follow deny.toml"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
