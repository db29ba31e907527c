"""No file of the repository cites the developers' notes that users do not have: the science
and the contracts are cited as docs/ (or the papers). Every tracked or new, not ignored, text
file is read; the two file names are assembled here so that this file does not match itself."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["REFER" + "ENCE", "DES" + "IGN"]
PATTERN = re.compile(r"\b(" + "|".join(NAMES) + r")(\.md)?\b")


def repository_files():
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, text=True, check=True)
    return [ROOT / p for p in out.stdout.splitlines() if (ROOT / p).is_file()]


def test_no_file_mentions_the_developer_notes():
    files = repository_files()
    assert len(files) > 50
    hits = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # PNGs and other binaries
            continue
        hits += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(text.splitlines(), 1)
                 if PATTERN.search(line)]
    assert not hits, hits


def test_docs_exist_and_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in ("docs/theory.md", "docs/tolerances.md"):
        assert (ROOT / name).exists() and name in readme, name
