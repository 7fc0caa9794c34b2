"""How one model's training ended, as one typed value rather than text parsed back where it is read.

A `Status` is still the text the run folder's files have always held (`ok`, `failed_to_learn`,
`diverged@epoch 3`, `interrupted@epoch 2`, `lost`, `pending`: docs/run-folder.md), so results.json,
summary.csv and a sweep's store read and write it unchanged; in code it is asked what it is
(`status.diverged`, `status.epoch`) instead of compared with strings.
"""

from __future__ import annotations

KINDS = ("ok", "failed_to_learn", "diverged", "interrupted", "lost", "pending")
WITH_EPOCH = ("diverged", "interrupted")  # these name the epoch in which they happened


class Status(str):
    """One model's status: `kind` (one of KINDS) and, for diverged and interrupted models, `epoch`."""

    kind: str
    epoch: int | None

    def __new__(cls, kind: str, epoch: int | None = None) -> Status:
        if kind not in KINDS or (epoch is None) == (kind in WITH_EPOCH):
            raise ValueError(f"not a model status: {kind!r} with epoch {epoch!r}")
        self = super().__new__(cls, f"{kind}@epoch {epoch}" if epoch is not None else kind)
        self.kind, self.epoch = kind, epoch
        return self

    @classmethod
    def parse(cls, text: str) -> Status:
        """The status a file holds as text; a ValueError names text that is none."""
        if isinstance(text, Status):
            return text
        kind, at, epoch = str(text).partition("@epoch ")
        if at and not epoch.isdigit():
            raise ValueError(f"not a model status: {text!r}")
        return cls(kind, int(epoch) if at else None)

    def __reduce__(self):  # copies and pickles (worker processes, asdict) rebuild it from its text
        return Status.parse, (str(self),)

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def diverged(self) -> bool:
        return self.kind == "diverged"

    @property
    def failed(self) -> bool:
        """It trained to its end but failed: it never learned, or its loss blew up."""
        return self.kind in ("failed_to_learn", "diverged")

    @property
    def counts(self) -> bool:
        """It belongs in comparisons: it finished, or failed (failures are part of an activation's result)."""
        return self.ok or self.failed


OK, PENDING, LOST, FAILED_TO_LEARN = Status("ok"), Status("pending"), Status("lost"), Status("failed_to_learn")
