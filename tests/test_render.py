"""The report's document model: data rendered literally, never as Markdown or HTML markup."""

from __future__ import annotations

import pytest

from actlab.render import Bullets, Code, Heading, Image, Paragraph, Strong, Table, fill, to_html, to_markdown


def html_body(blocks, tmp_path) -> str:
    page = to_html(blocks, tmp_path, "title")
    return page[page.index("<body>") + len("<body>\n"):page.index("\n</body>")]


def test_prose_markup_characters_are_escaped_in_markdown():
    text = "a *b* _c_ `d` [e](f) <script>x</script> & &amp; ~~g~~ \\ #h, 2 < 3 > 1"
    assert to_markdown([Paragraph(text)]) == (
        r"a \*b\* \_c\_ \`d\` \[e\](f) \<script>x\</script> & \&amp; \~\~g\~\~ \\ \#h, 2 < 3 > 1" + "\n")


def test_what_would_start_a_list_quote_or_heading_is_escaped_at_the_start_of_a_block():
    blocks = [Paragraph("1. one"), Paragraph("- two"), Paragraph("> three"), Bullets(["+ four", "# five"])]
    assert to_markdown(blocks) == "1\\. one\n\n\\- two\n\n\\> three\n\n- \\+ four\n- \\# five\n"


def test_prose_is_escaped_in_html(tmp_path):
    body = html_body([Paragraph("<script>alert('x')</script> *b* & `c`")], tmp_path)
    assert body == "<p>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; *b* &amp; `c`</p>"


def test_a_pipe_in_a_table_cell_stays_in_its_cell():
    table = Table(["name", Code("a|b")], [["x|y", Code("p|q")]])
    assert to_markdown([table]) == "| name | `a\\|b` |\n|---|---|\n| x\\|y | `p\\|q` |\n"


@pytest.mark.parametrize("value, markdown", [
    ("expr:x**2", "`expr:x**2`"),
    ("a`b", "``a`b``"),
    ("a``b`", "``` a``b` ```"),
    ("`x`", "`` `x` ``"),
    ("*_[<#>]_*", "`*_[<#>]_*`"),
])
def test_code_is_a_code_span_longer_than_any_backtick_run_inside(value, markdown, tmp_path):
    assert to_markdown([Paragraph(Code(value))]) == markdown + "\n"
    escaped = value.replace("<", "&lt;").replace(">", "&gt;")
    assert html_body([Paragraph(Code(value))], tmp_path) == f"<p><code>{escaped}</code></p>"


def test_fill_keeps_each_value_what_it_is(tmp_path):
    parts = fill("{best} is ahead of {other} by {diff}, {{braces}}", best=Code("x**2"), other=Strong("tanh"),
                 diff="0.4 *points*")
    assert parts == (Code("x**2"), " is ahead of ", Strong("tanh"), " by 0.4 *points*, {braces}")
    assert to_markdown([Paragraph(parts)]) == "`x**2` is ahead of **tanh** by 0.4 \\*points\\*, {braces}\n"
    assert html_body([Heading(2, parts)], tmp_path) == \
        "<h2><code>x**2</code> is ahead of <strong>tanh</strong> by 0.4 *points*, {braces}</h2>"


def test_fill_refuses_a_missing_or_unused_value_and_format_specs():
    with pytest.raises(KeyError, match="no value for it"):
        fill("{a} and {b}", a="x")
    with pytest.raises(KeyError, match="no placeholder for c"):
        fill("{a}", a="x", c="y")
    with pytest.raises(ValueError, match="format the value"):
        fill("{a:.2f}", a="1")
    with pytest.raises(TypeError, match="format 0.5"):
        fill("{a}", a=0.5)


def test_html_page_is_self_contained_in_the_given_language(tmp_path):
    (tmp_path / "plot.png").write_bytes(b"\x89PNG fake")
    page = to_html([Image("plot.png", "a <plot>")], tmp_path, "report <1>", lang="de")
    assert page.startswith("<!DOCTYPE html><html lang='de'>") and "<title>report &lt;1&gt;</title>" in page
    assert "<img src='data:image/png;base64,iVBORyBmYWtl' alt='a &lt;plot&gt;'>" in page
    assert to_markdown([Image("plot.png", "a [plot]")]) == "![a \\[plot\\]](plot.png)\n"
