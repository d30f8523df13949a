"""Checkpoints: an interrupted run resumes to the same weights; non-finite losses stop the run."""

import json

import pytest
import torch
from safetensors.torch import load_file
from test_train import dataset, finetune_argv, finetune_settings  # noqa: F401 (dataset is a fixture)
from torch import nn

from read_clip import cli
from read_clip.train.checkpoint import FILENAME
from read_clip.train.data import Batch
from read_clip.train.loop import (STOP_AFTER_STEP_VARIABLE, LoopSettings, NonFiniteLoss, SimulatedInterruption,
                                  run_training)

# 6 images in batches of 2: 3 steps per epoch, 6 steps in all; checkpoints after steps 2 and 4.
RESUME_TRAIN = {"batch_size": 2, "epochs": 2, "checkpoint_every": 2}


def weights(out):
    return load_file(str(out / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("uninterrupted")
    assert cli.main(finetune_argv(dataset, out, finetune_settings(**RESUME_TRAIN))) == 0
    return out


def test_resume_gives_same_weights(dataset, uninterrupted, tmp_path, monkeypatch):  # noqa: F811
    argv = finetune_argv(dataset, tmp_path, finetune_settings(**RESUME_TRAIN))
    monkeypatch.setenv(STOP_AFTER_STEP_VARIABLE, "3")
    with pytest.raises(SimulatedInterruption):
        cli.main(argv)
    assert (tmp_path / "checkpoints" / FILENAME).is_file()
    assert not (tmp_path / "model.safetensors").exists()

    monkeypatch.delenv(STOP_AFTER_STEP_VARIABLE)
    assert cli.main(argv) == 0
    expected, resumed = weights(uninterrupted), weights(tmp_path)
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)


def test_resume_keeps_metrics(dataset, tmp_path, monkeypatch):  # noqa: F811
    argv = finetune_argv(dataset, tmp_path, finetune_settings(**RESUME_TRAIN))
    monkeypatch.setenv(STOP_AFTER_STEP_VARIABLE, "5")
    with pytest.raises(SimulatedInterruption):
        cli.main(argv)
    monkeypatch.delenv(STOP_AFTER_STEP_VARIABLE)
    assert cli.main(argv) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_finished_run_deletes_checkpoints(uninterrupted):
    assert not (uninterrupted / "checkpoints").exists()


def test_other_settings_ignore_checkpoint(dataset, uninterrupted, tmp_path, monkeypatch):  # noqa: F811
    # Interrupted with lr 1e-3, rerun with lr 2e-3: the checkpoint must not be used.
    monkeypatch.setenv(STOP_AFTER_STEP_VARIABLE, "3")
    with pytest.raises(SimulatedInterruption):
        cli.main(finetune_argv(dataset, tmp_path, finetune_settings(**RESUME_TRAIN, lr=2e-3)))
    monkeypatch.delenv(STOP_AFTER_STEP_VARIABLE)
    assert cli.main(finetune_argv(dataset, tmp_path, finetune_settings(**RESUME_TRAIN))) == 0
    expected, rerun = weights(uninterrupted), weights(tmp_path)
    assert all(torch.equal(expected[name], rerun[name]) for name in expected)


class NanAtStep(nn.Module):
    """An objective whose loss is finite until call `bad_call`, then NaN."""

    def __init__(self, bad_call):
        super().__init__()
        self.clip = nn.Module()
        self.clip.logit_scale = nn.Parameter(torch.tensor(1.0))
        self.calls = 0
        self.bad_call = bad_call

    def forward(self, batch):
        self.calls += 1
        loss = self.clip.logit_scale * (float("nan") if self.calls == self.bad_call else 1.0)
        return {"loss": loss}


def batch_of(image_ids):
    size = len(image_ids)
    return Batch(images=None, text_tokens=torch.zeros(size, 4, dtype=torch.int64), texts=[""] * size,
                 anchor_index=torch.arange(size), negative_index=None, paraphrase_index=None,
                 target_labels=None, image_ids=torch.tensor(image_ids))


def test_nan_names_step_and_images(tmp_path):
    objective = NanAtStep(bad_call=2)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    saved_after = []
    loop = LoopSettings(total_steps=3, steps_per_epoch=3, log_every=1, grad_clip_norm=None)
    batches = iter([batch_of([1, 2]), batch_of([31, 42]), batch_of([5, 6])])
    with pytest.raises(NonFiniteLoss, match=r"step 2: .*\[31, 42\]"):
        run_training(objective, optimizer, scheduler, batches, loop, tmp_path / "metrics.jsonl",
                     after_step=lambda step, records, fallbacks: saved_after.append(step))
    assert saved_after == [1]
