"""The report as a Word document: python-docx opens it and finds the headings, the results table
and the figures, in the report's language."""

from __future__ import annotations

import re

import docx

from actlab.cli import main
from actlab.report import build_report
from test_sections import four


def test_the_docx_holds_the_headings_the_results_table_and_every_figure(tmp_path):
    results = four(tmp_path)
    md = build_report(results, docx=True)[0].read_text()
    document = docx.Document(str(results.run_dir / "report.docx"))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert headings[1:4] == ["Conclusion", "Setup", "Results"]
    level2 = [p.text for p in document.paragraphs if p.style.name == "Heading 2"]
    assert level2 == [h.removeprefix("## ") for h in md.splitlines() if h.startswith("## ")]  # same sections, order
    results_table = document.tables[0]
    assert [c.text for c in results_table.rows[0].cells][:2] == ["activation", "runs finished"]
    assert [row.cells[0].text for row in results_table.rows[1:]] == ["relu", "elu", "selu", "leaky_relu:0.01"]
    assert len(document.inline_shapes) == len(re.findall(r"!\[", md)) >= 6
    assert any(p.text.startswith("Figure 1.") for p in document.paragraphs)


def test_actlab_report_docx_writes_the_chinese_document_of_a_run(tmp_path, capsys):
    results = four(tmp_path)
    build_report(results)
    from actlab.results import write_results

    write_results(results)
    assert main(["report", str(results.run_dir), "--lang", "zh", "--docx"]) == 0
    assert "report.zh.docx" in capsys.readouterr().out
    document = docx.Document(str(results.run_dir / "report.zh.docx"))
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert headings[1:3] == ["结论", "实验设置"] and "可能原因分析" in headings
    assert any(p.text.startswith("图 1.") for p in document.paragraphs)
