"""TensorBoard for a run (`--tensorboard`): one folder per model under <run>/tensorboard/, its metrics
per epoch as grouped scalars (`loss/train`, `acc/test`, ...), its layers as histograms, and its
hyper-parameters with its final results, so the HParams tab compares the run's activations and seeds.
`actlab run` writes it; a sweep's or tuning's runs do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from actlab.device_data import DeviceData
from actlab.diagnostics import DIAGNOSTIC_EXAMPLES, layer_histograms
from actlab.errors import ActlabError
from actlab.results import ModelRun, safe_name

if TYPE_CHECKING:  # the configuration is passed down; this module never builds one
    from actlab.config import Config

TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "test_loss": "loss/test", "train_acc": "acc/train",
        "val_acc": "acc/val", "test_acc": "acc/test", "seconds": "time/epoch_seconds"}


def summary_writer_class():
    """torch's SummaryWriter, or one line saying how to install what it needs (checked before a run
    makes its folder)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
    except ImportError:
        raise ActlabError("--tensorboard needs the tensorboard package: pip install tensorboard "
                          "(or pip install -e '.[tensorboard]')") from None
    return SummaryWriter


def hyperparameters(record: ModelRun, config: Config) -> dict[str, str | float | int]:
    """What distinguishes one model in the HParams tab: its activation, seed and training recipe."""
    m, o, d = config.model, config.optim, config.data
    return {"activation": record.label, "output": record.output, "seed": record.seed, "model": m.family,
            "hidden": ",".join(map(str, m.hidden)) or "none", "init": m.init_for(record.activation),
            "dropout": m.dropout, "optimizer": o.optimizer, "lr": o.lr, "weight_decay": o.weight_decay,
            "batch_size": o.batch_size, "epochs": o.epochs, "dataset": d.dataset}


def tensorboard_writer(folder: Path, record: ModelRun, config: Config):
    """A per-epoch writer for one model; `write(None)` adds its hyper-parameters and results, then
    closes the files."""
    writer = summary_writer_class()(log_dir=str(folder / (safe_name(record.label) + f"-seed{record.seed}")))

    def write(model: nn.Module | None, row: dict | None = None, loss=None, data: DeviceData | None = None) -> None:
        if model is None:
            results = {"hparam/final_test_acc": record.final_test_acc, "hparam/final_test_loss": record.final_test_loss,
                       "hparam/best_val_acc": record.best_val_acc}
            writer.add_hparams(hyperparameters(record, config), {k: v for k, v in results.items() if v is not None},
                               run_name=".")
            writer.close()
            return
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key in TAGS and value is not None:
                writer.add_scalar(TAGS[key], value, epoch)
        x, y = data.x_test[:DIAGNOSTIC_EXAMPLES], data.y_test[:DIAGNOSTIC_EXAMPLES]
        for tag, values in layer_histograms(model, x, y, loss).items():
            writer.add_histogram(tag, values, epoch)
        writer.flush()
    return write
