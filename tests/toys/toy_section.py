"""A toy report section: one sentence counting the run's models, after the findings."""

from actlab.render import Block, Heading, Paragraph, authored
from actlab.report.context import Context
from actlab.report.sections import Section


def blocks(c: Context) -> list[Block]:
    return [Heading(2, authored("Toy section")), Paragraph(authored(f"The toy counted {len(c.results.runs)} models."))]


TOY_SECTION = Section("toy", blocks)
