"""The setup in words, as a lab report states it before its results: the data and its preprocessing,
the network's sizes, activations, initial weights and output, the optimizer and its settings, and
how the seeds pair the comparisons. Only what held for this run; the full table is the appendix."""

from __future__ import annotations

from typing import Any

from actlab.config import KEYS
from actlab.convnets import flat_features
from actlab.data import validation_size
from actlab.datasets import dataset_info
from actlab.errors import ActlabError
from actlab.measured import same_start
from actlab.render import Block, Code, Heading, Paragraph, Text, joined
from actlab.report.context import Context

PIXELS = ("none", "symmetric", "global", "per_pixel")


def blocks(c: Context) -> list[Block]:
    config, w = c.results.config, c.w
    if not c.results.runs:
        return []
    try:
        info = dataset_info(str(config.get("dataset", "mnist")))
        inputs, classes, train_size, test_size = 784, len(info.classes), info.train_size, info.test_size
        title = info.title
    except ActlabError:
        return []
    val = validation_size(config.get("val_split") or 0, train_size)
    train = min(config.get("train_subset") or train_size - val, train_size - val)
    test = config.get("test_subset") or test_size
    normalize = config.get("normalize", "none")
    data = w("setup.data", dataset=title, train=f"{train:,}", test=f"{test:,}",
             val=w("setup.val", n=f"{val:,}") if val else "",
             pixels=w(f"setup.pixels_{normalize if normalize in PIXELS else 'none'}"))
    sentences = [data, _network(c, inputs, classes), _training(config, w),
                 w("setup.seeds" if same_start(c.results) else "setup.seeds_differ",
                   seeds=Code(_seed_text(c.analysis["seeds"])), n=len(c.analysis["seeds"]),
                   val=w("setup.seeds_val") if val else "")]
    return [Heading(2, w("setup.heading")), Paragraph(joined(sentences, w.plain("list.sentence")))]


def _network(c: Context, inputs: int, classes: int) -> Text:
    config, w = c.results.config, c.w
    hidden = config.get("hidden", [])
    hidden = hidden if isinstance(hidden, list) else [hidden]
    sizes = " → ".join(str(n) for n in [inputs, *hidden, classes])
    init = config.get("init", "default")
    inits = w("setup.init_default") if init == "default" else \
        Code(", ".join(f"{k}={v}" for k, v in init.items()) if isinstance(init, dict) else str(init))
    cnn = config.get("model", "mlp") == "cnn"
    dropout = w("setup.dropout_cnn" if cnn else "setup.dropout", p=f"{config['dropout']:g}") \
        if config.get("dropout") else ""
    runs = c.results.runs
    compared = c.results.labels if len({r.loss for r in runs}) < 2 else list(dict.fromkeys(r.activation for r in runs))
    activations = joined([Code(label) for label in compared], c.w.plain("list.comma"))
    if cnn:
        conv = config.get("conv", KEYS["conv"].default)
        kernel = config.get("kernel", KEYS["kernel"].default)
        sizes = " → ".join(str(n) for n in [flat_features(tuple(conv), kernel), *hidden, classes])
        return w("setup.network_cnn", convs=len(conv), channels=joined([str(n) for n in conv], w.plain("list.comma")),
                 kernel=kernel, pool=w(f"setup.pool_{config.get('pool', 'max')}"), sizes=sizes,
                 activations=activations, batch_norm=w("setup.batch_norm") if config.get("batch_norm") else "",
                 init=inits, dropout=dropout, output=_output(config, w))
    return w("setup.network", sizes=sizes, layers=w.count("hidden_layer", len(hidden)), activations=activations,
             init=inits, dropout=dropout, output=_output(config, w))


def _output(config: dict[str, Any], w) -> Text:
    """The output head and the loss it trains with, or the losses compared."""
    outputs, losses = config.get("output", "logits"), config.get("loss", "cross_entropy")
    one_loss = losses if isinstance(losses, str) else None
    if outputs == "logits" and one_loss in ("mse", "hinge"):
        return w("setup.output_raw", loss=w(f"setup.loss_{one_loss}"))
    head = Code(", ".join(outputs) if isinstance(outputs, list) else str(outputs))
    if one_loss in ("mse", "hinge"):
        return w("setup.output_head_loss", output=head, loss=w(f"setup.loss_{one_loss}"))
    if one_loss:
        return w("setup.output_logits") if outputs == "logits" else w("setup.output_other", output=head)
    return w("setup.losses", output=head, losses=Code(", ".join(losses)))


def _training(config: dict[str, Any], w) -> Text:
    momentum = w("setup.momentum", m=f"{config['momentum']:g}") if config.get("momentum") else ""
    schedule = w("setup.schedule", schedule=Code(str(config["schedule"]))) \
        if config.get("schedule", "none") != "none" else ""
    decay = w("setup.weight_decay", wd=f"{config['weight_decay']:g}") if config.get("weight_decay") else ""
    return w("setup.training", optimizer=Code(str(config.get("optimizer", "?"))), lr=f"{config.get('lr', 0):g}",
             momentum=momentum, decay=decay, batch=config.get("batch_size", "?"), epochs=config.get("epochs", "?"),
             schedule=schedule)


def _seed_text(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))
