"""References a reader can follow: the tracked text files point only at papers, official repositories and files of
this repository, never at notes outside it, a developer's machine or an issue tracker's bare numbers.

The scan reads every tracked ``.py``, ``.md``, ``.yaml``, ``.yml``, ``.sh``, ``.json``, ``.txt``, ``.ini`` and
``.toml`` file (``git ls-files``) and reports, per file and line:

- a machine path (a home, workspace or mount folder of one computer);
- a research-notes file or folder outside the repository (the notes' file names, ``research/``, ``shared/``);
- a section sign with nothing a reader can open before it on its line: an in-repository file that exists, a paper
  (arXiv id, or authors with "et al." and a venue) or an official repository (``owner/name``);
- an issue number on its own (``#18``, ``issue 24``): an upstream issue is written ``owner/name#NN``.
"""
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".json", ".txt", ".ini", ".toml"}

# This file spells the patterns it looks for, so it is the one file left out of the scan.
ALLOWED_FILES = {"tests/test_references.py"}

MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|Users|root|mnt|scratch)/|\b[A-Z]:\\\\?Users")
NOTES = re.compile(r"\b(?:shared|research)/|codebase_anchors|lamm_nemesis\.md|restore_aple\.md|research notes",
                   re.IGNORECASE)
ISSUE_NUMBER = re.compile(r"\bissues? #?\d+|#\d+\b", re.IGNORECASE)
UPSTREAM_ISSUE = re.compile(r"\b[\w.-]+/[\w.-]+#\d+\b")
SECTION_TARGET = re.compile(r"arXiv[ :]\d{4}\.\d{4,5}|et al\.|\b[\w.-]+/[\w.-]+\b|[\w./-]+\.(?:md|py|yaml|sh)\b")


def tracked_text_files() -> list:
    """Repository-relative paths of the tracked text files the scan reads."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    names = [n for n in out.decode().split("\0") if n]
    return [n for n in names if Path(n).suffix in SUFFIXES and n not in ALLOWED_FILES
            and (REPO_ROOT / n).is_file()]


def section_has_target(before: str) -> bool:
    """Whether the text before a section sign names something a reader can open (see the module docstring)."""
    for m in SECTION_TARGET.finditer(before):
        token = m.group(0)
        if token.startswith("arXiv") or token == "et al.":
            return True
        if re.search(r"\.(?:md|py|yaml|sh)$", token):
            if (REPO_ROOT / token).is_file():
                return True
        elif "/" in token and not token.startswith(("/", ".")):
            return True
    return False


def unfollowable(line: str) -> list:
    """The reasons one line of text holds a reference a reader cannot follow (empty when it holds none)."""
    reasons = []
    if MACHINE_PATH.search(line):
        reasons.append("machine path")
    if NOTES.search(line):
        reasons.append("notes outside the repository")
    bare = UPSTREAM_ISSUE.sub("", line)
    if ISSUE_NUMBER.search(bare):
        reasons.append("issue number")
    for m in re.finditer("§", line):
        if not section_has_target(line[:m.start()]):
            reasons.append("section sign without a target")
            break
    return reasons


@pytest.mark.parametrize("line, reasons", [
    ("Official names: /work/shared/golden/name_map.json", ["machine path", "notes outside the repository"]),
    ("(research notes lamm_nemesis.md §1.7)", ["notes outside the repository", "section sign without a target"]),
    ("SGD momentum 0.9 (codebase_anchors §1.3)", ["notes outside the repository", "section sign without a target"]),
    ("the draft code's filter (issue 14)", ["issue number"]),
    ("## The base-to-new trade-off: lab notebook (#18)", ["issue number"]),
    ("blocked where you are (CoOp#29)", ["issue number"]),
    ("blocked where you are (KaiyangZhou/CoOp#29)", []),
    ("Fu et al., ICLR 2024, §3", []),
    ("arXiv 2403.06136 §3.2", []),
    ("see docs/TOY.md §2", []),
    ("see docs/NO_SUCH_PAGE.md §2", ["section sign without a target"]),
    ("color '#1f77b4', python -m tools.pretrain_toyclip --out /tmp/toyclip.pt", []),
])
def test_scanner_tells_followable_from_not(line, reasons):
    assert unfollowable(line) == reasons


def test_tracked_text_files_hold_only_followable_references():
    files = tracked_text_files()
    assert "README.md" in files and "train.py" in files, "the scan reads the repository's own files"
    found = []
    for name in files:
        text = (REPO_ROOT / name).read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for reason in unfollowable(line):
                found.append(f"{name}:{lineno}: {reason}: {line.strip()[:120]}")
    assert not found, f"{len(found)} references a reader cannot follow:\n" + "\n".join(found)
