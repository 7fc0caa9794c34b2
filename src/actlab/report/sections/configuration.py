"""The configuration as an appendix: the keys declared `shown` (actlab.config), with their values."""

from __future__ import annotations

from actlab.config import keys_where
from actlab.render import Block, Code, Heading, Table
from actlab.report.context import Context


def blocks(c: Context) -> list[Block]:
    config = c.results.config
    rows = [[Code(k), Code(str(config[k]))] for k in keys_where("shown") if k in config]
    return [Heading(2, c.w("report.configuration")), Table([c.w("table.key"), c.w("table.value")], rows)]
