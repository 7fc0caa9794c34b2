"""The report as an editable Word document (`report.docx`, `report.zh.docx`): the same blocks as
report.md and report.html, for students who hand in a .docx. Headings keep their levels, tables
their header row, figures their width on the page and their numbered captions; values shown as code
keep a monospace font, and a Chinese report sets an East Asian font for its text.

python-docx is an optional extra (`pip install -e ".[docx]"`); `require_docx` says how to install
it, before a run makes its folder.
"""

from __future__ import annotations

from pathlib import Path

from actlab.errors import ActlabError
from actlab.render import Block, Bullets, Code, Heading, Image, Paragraph, Strong, Table, Text, parts

EAST_ASIAN_FONT = {"zh": "SimSun"}  # Word's usual Chinese body font, substituted where it is missing
CODE_FONT = "Consolas"


def require_docx():
    """The python-docx module, or one line saying how to install it."""
    try:
        import docx
    except ImportError:
        raise ActlabError("--docx needs the python-docx package: pip install python-docx "
                          "(or pip install -e '.[docx]')") from None
    return docx


def to_docx(blocks: list[Block], run_dir: Path, path: Path, lang: str = "en") -> Path:
    """Write `blocks` as a .docx at `path` (figures read from `run_dir`); returns the path."""
    docx = require_docx()
    from docx.oxml.ns import qn
    from docx.shared import Inches

    document = docx.Document()
    normal = document.styles["Normal"]
    if lang in EAST_ASIAN_FONT:
        normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), EAST_ASIAN_FONT[lang])
    for block in blocks:
        if isinstance(block, Heading):
            _inline(document.add_heading(level=min(block.level, 9)), block.text)
        elif isinstance(block, Paragraph):
            _inline(document.add_paragraph(), block.text)
        elif isinstance(block, Bullets):
            for item in block.items:
                _inline(document.add_paragraph(style="List Bullet"), item)
        elif isinstance(block, Table):
            _table(document, block)
        elif isinstance(block, Image):
            document.add_picture(str(run_dir / block.path), width=Inches(6.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    document.save(str(temporary))
    temporary.replace(path)  # whole or absent, like every file of a run folder
    return path


def _inline(paragraph, text: Text, bold: bool = False) -> None:
    for part in parts(text):
        if isinstance(part, Strong):
            _inline(paragraph, part.text, bold=True)
            continue
        run = paragraph.add_run(part.text if isinstance(part, Code) else part)
        run.bold = bold or None
        if isinstance(part, Code):
            run.font.name = CODE_FONT


def _table(document, block: Table) -> None:
    table = document.add_table(rows=1 + len(block.rows), cols=len(block.header))
    table.style = "Table Grid"
    for j, cell in enumerate(block.header):
        _inline(table.rows[0].cells[j].paragraphs[0], cell, bold=True)
    for i, row in enumerate(block.rows, start=1):
        for j, cell in enumerate(row):
            _inline(table.rows[i].cells[j].paragraphs[0], cell if not isinstance(cell, int) else str(cell))
