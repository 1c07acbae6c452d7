"""`make cli-help`: every csm command's --help, saved as text in docs/cli/.

    python3 tools/docs/cli_help.py [--csm .build/release/csm] [--out docs/cli] [--check]

Finds the commands in `csm --experimental-dump-help` (ArgumentParser's description of the
command tree) and writes `csm <command> --help` for each as OUT/csm-<command>.txt, with the
words of a nested command joined by '-' (csm.txt, csm-generate.txt, csm-attribute-index.txt).
The help is rendered 100 columns wide: csm wraps its help to $COLUMNS when that is set (to
the terminal's width, else 80, when not), so the files do not depend on the terminal.
csm*.txt files in OUT that name no command are removed.

With --check nothing is written: the exit status is 1, and the files that differ, are
missing or name no command are listed, when OUT does not hold exactly what would be written.
Tests/CSMCLITests/CLIHelpTests.swift checks the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

COLUMNS = "100"


def commands(csm: str) -> list[list[str]]:
    """The argument lists of every command below csm (csm itself is []), in tree order."""
    tree = json.loads(subprocess.run([csm, "--experimental-dump-help"], check=True,
                                     capture_output=True, text=True).stdout)
    found: list[list[str]] = []

    def walk(command: dict, path: list[str]) -> None:
        found.append(path)
        for sub in command.get("subcommands", []):
            if sub["commandName"] != "help":  # ArgumentParser's own `csm help <command>`
                walk(sub, path + [sub["commandName"]])

    walk(tree["command"], [])
    return found


def help_text(csm: str, arguments: list[str]) -> str:
    environment = dict(os.environ, COLUMNS=COLUMNS)
    return subprocess.run([csm, *arguments, "--help"], check=True, capture_output=True, text=True,
                          env=environment).stdout


def file_name(arguments: list[str]) -> str:
    return "-".join(["csm", *arguments]) + ".txt"


def main() -> int:
    parser = argparse.ArgumentParser(description="Save every csm command's --help in docs/cli.")
    parser.add_argument("--csm", default=".build/release/csm", help="the csm binary")
    parser.add_argument("--out", default="docs/cli", help="the folder of help files")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming the files that are not up to date")
    args = parser.parse_args()

    wanted = {file_name(arguments): help_text(args.csm, arguments) for arguments in commands(args.csm)}
    present = sorted(name for name in os.listdir(args.out)
                     if name.startswith("csm") and name.endswith(".txt")) if os.path.isdir(args.out) else []
    stale = [name for name in present if name not in wanted]

    if args.check:
        problems = []
        for name, text in wanted.items():
            path = os.path.join(args.out, name)
            if not os.path.exists(path):
                problems.append(f"{path}: missing")
            elif open(path, encoding="utf-8").read() != text:
                problems.append(f"{path}: differs from the help csm prints")
        problems += [f"{os.path.join(args.out, name)}: names no csm command" for name in stale]
        for problem in problems:
            print(problem)
        if problems:
            print("run `make cli-help` to regenerate docs/cli")
            return 1
        print(f"{len(wanted)} help files in {args.out} are up to date")
        return 0

    os.makedirs(args.out, exist_ok=True)
    for name, text in wanted.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as file:
            file.write(text)
    for name in stale:
        os.remove(os.path.join(args.out, name))
    print(f"wrote {len(wanted)} help files in {args.out}" + (f", removed {', '.join(stale)}" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
