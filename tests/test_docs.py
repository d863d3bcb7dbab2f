"""The README and docs/: every relative link (Markdown links and images) resolves to a file
that exists and, where it names a `#fragment`, to a heading of that file by GitHub's anchor
rules; the README stays a front door. No server is needed."""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

README_MAX_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HTML = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose(text: str) -> Iterator[tuple[int, str]]:
    """Each line outside fenced code blocks, with its number, inline code removed."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, INLINE_CODE.sub("", line)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading's text: its rendered words lowercased, punctuation
    removed (letters, digits, '_', '-' and spaces stay), spaces turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)  # emphasis, not snake_case
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file's headings; a repeated one gets -1, -2, ..."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = anchor(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> Iterator[tuple[int, str]]:
    """Each link or image target of a page that is not an absolute URL, with its line."""
    for number, line in prose(path.read_text()):
        targets = [m.group(1) for m in LINK.finditer(line)]
        targets += [m.group(1) for m in HTML.finditer(line)]
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        for target in targets:
            if not SCHEME.match(target) and not target.startswith("//"):
                yield number, target


def broken(page: Path, target: str) -> str | None:
    """Why a relative link of a page does not resolve, or None when it does."""
    file_part, _, fragment = target.partition("#")
    linked = (page.parent / unquote(file_part)).resolve() if file_part else page
    if not linked.exists():
        return f"{file_part} does not exist"
    if fragment:
        if linked.suffix != ".md" or not linked.is_file():
            return f"{file_part} has no headings to link to"
        if unquote(fragment).lower() not in anchors(linked):
            return f"{linked.relative_to(ROOT)} has no heading #{fragment}"
    return None


def test_the_anchors_follow_githubs_rules() -> None:
    assert anchor("Nothing lowers a goal's bar") == "nothing-lowers-a-goals-bar"
    assert anchor("Costs, feedback and suggestions") == "costs-feedback-and-suggestions"
    assert anchor("The HTTP API and dashboard") == "the-http-api-and-dashboard"
    assert anchor("Agents' PostgreSQL logins") == "agents-postgresql-logins"
    assert anchor("`make bench` figures") == "make-bench-figures"
    assert anchor("GOALKEEPER_API_OPEN_READS") == "goalkeeper_api_open_reads"


def test_there_are_pages_and_links_to_check() -> None:
    assert README in PAGES and len(DOCS) > 1
    assert sum(1 for page in PAGES for _ in relative_links(page)) > 20


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    problems = [
        f"{page.relative_to(ROOT)}:{number}: ({target}) {why}"
        for number, target in relative_links(page)
        if (why := broken(page, target)) is not None
    ]
    assert not problems, "\n".join(problems)


def test_the_readme_links_every_page_of_docs() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve() for _, target in relative_links(README)
    }
    assert not [page.name for page in DOCS if page.resolve() not in linked]


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text().count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"
