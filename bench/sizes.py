"""The shape of the code: lines per workflow module and the longest functions.

    python bench/sizes.py [--top 15] [PATH ...]      # PATHs default to the packages

Prints each workflow module's line count, then the longest functions and methods of the
given packages with their length in lines, longest first: the figures a change that
reshapes modules is measured by.
"""

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("goalkeeper", "workflows", "activities", "store", "monitoring", "interfaces")


def functions(path: Path) -> list[tuple[int, str]]:
    """(lines, `file:name`) of every function and method defined in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            length = node.end_lineno - node.lineno + 1
            found.append((length, f"{path.relative_to(ROOT)}:{node.name}"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=PACKAGES)
    parser.add_argument("--top", type=int, default=15, help="functions to list (15)")
    args = parser.parse_args()
    print("lines  workflow module")
    for path in sorted((ROOT / "workflows").rglob("*.py")):
        print(f"{len(path.read_text().splitlines()):5}  {path.relative_to(ROOT)}")
    files = [p for name in args.paths for p in sorted((ROOT / name).rglob("*.py"))]
    longest = sorted((f for path in files for f in functions(path)), reverse=True)
    print(f"\nlines  longest functions of {', '.join(args.paths)}")
    for length, name in longest[: args.top]:
        print(f"{length:5}  {name}")


if __name__ == "__main__":
    main()
