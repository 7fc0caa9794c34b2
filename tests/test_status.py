"""A model's status: typed in code, the same text in every file it is written to."""

from __future__ import annotations

import copy
import json
import pickle
from dataclasses import asdict

import pytest

from actlab.results import ModelRun
from actlab.status import Status


@pytest.mark.parametrize("text", ["ok", "failed_to_learn", "diverged@epoch 3", "interrupted@epoch 12", "lost",
                                  "pending"])
def test_the_text_of_every_status_reads_back_as_itself(text):
    status = Status.parse(text)
    assert status == text and str(status) == text and json.dumps(status) == json.dumps(text)
    for copied in (copy.deepcopy(status), pickle.loads(pickle.dumps(status))):
        assert copied == text and copied.kind == status.kind and copied.epoch == status.epoch


def test_what_a_status_says():
    diverged = Status("diverged", 4)
    assert diverged == "diverged@epoch 4" and diverged.epoch == 4 and diverged.diverged and diverged.failed
    assert diverged.counts and not diverged.ok
    assert Status("ok").counts and not Status("lost").counts and not Status("interrupted", 2).counts
    assert Status("failed_to_learn").failed and not Status("failed_to_learn").diverged


@pytest.mark.parametrize("text", ["okay", "diverged", "diverged@epoch x", "ok@epoch 2", ""])
def test_text_that_is_no_status_is_a_value_error(text):
    with pytest.raises(ValueError, match="not a model status"):
        Status.parse(text)


def test_a_record_holds_its_status_typed_however_it_is_set():
    run = ModelRun("relu", "relu", "logits", 0)
    assert run.status == "pending" and isinstance(run.status, Status)
    run.status = "diverged@epoch 2"
    assert run.status.epoch == 2 and asdict(run)["status"] == "diverged@epoch 2"
    back = ModelRun.from_json(json.loads(json.dumps(run.to_json())))
    assert back.status.diverged and back.status.epoch == 2
    with pytest.raises(ValueError, match=r"run 'relu' seed 0: not a model status"):
        ModelRun.from_json({**run.to_json(), "status": "finished"})
