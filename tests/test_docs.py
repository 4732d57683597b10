"""The docs match the tree: the README's layout lists every room, citations of docs/MODEL.md name
sections that exist, and nothing cites a file outside the repository."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("rramjax", "scripts", "configs", "tests", "docs")


def _texts():
  for folder in SOURCES:
    for path in sorted((ROOT / folder).rglob("*")):
      if path.suffix in (".py", ".md") and "__pycache__" not in path.parts:
        yield path, path.read_text()
  yield ROOT / "README.md", (ROOT / "README.md").read_text()


def _layout() -> str:
  readme = (ROOT / "README.md").read_text()
  section = readme[readme.index("## Layout"):]
  return section[:section.index("```", section.index("```") + 3)]


def test_readme_layout_lists_every_module():
  listed = set(re.findall(r"^(\S+\.py)\s", _layout(), re.MULTILINE))
  modules = {str(p.relative_to(ROOT)) for folder in ("rramjax", "scripts")
             for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts}
  # A subpackage's __init__ only re-exports its rooms; the top-level one is the public API.
  rooms = {m for m in modules if not m.endswith("/__init__.py") or m.count("/") == 1}
  missing = sorted(rooms - listed)
  assert not missing, f"README.md's Layout has no line for {missing}"


def test_model_md_citations_name_existing_sections():
  sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "MODEL.md").read_text(), re.MULTILINE))
  assert len(sections) >= 9
  cited = []
  for path, text in _texts():
    # "docs/MODEL.md section 3", "docs/MODEL.md (sections 4 to 6: ...", "sections 4 (counts) and 6"
    for match in re.finditer(r"MODEL\.md[\s(),]*sections?\s+([^.;:`]*)", text):
      for number in re.findall(r"\b\d+\b", match.group(1)):
        cited.append((path.name, number))
  assert cited
  unknown = [(name, number) for name, number in cited if number not in sections]
  assert not unknown, f"citations of missing docs/MODEL.md sections: {unknown}"


def test_no_reference_outside_the_repository():
  outside = ("DESIGN" + ".md", "STYLE" + ".md", "../" + "shared", "/work/" + "shared")
  found = [(path.name, word) for path, text in _texts() for word in outside if word in text]
  assert not found, found
