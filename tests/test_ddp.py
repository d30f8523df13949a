"""Data-parallel training: two gloo processes on the CPU match one process on the same global batch."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_train import dataset, finetune_args, finetune_settings  # noqa: F401 (dataset is a fixture)

from read_clip.train.data import Batch
from read_clip.train.distributed import World, current_world, should_relaunch, torchrun_command
from read_clip.train.finetune import build_run, run_batches, wrap_for_world
from read_clip.train.loop import train_step

WORLD_SIZE = 2
TOLERANCE = 1e-5


def one_step(dataset_paths, out, world):  # noqa: F811
    """Build the read_clip run, take one optimiser step; return its terms and the gradients.

    Gradients, not updated weights, are compared: AdamW's first update is about lr * sign(grad),
    which rounding flips for gradients near zero.
    """
    run = build_run(finetune_settings(), finetune_args(dataset_paths, out), "cpu", world)
    batch = next(run_batches(run, 0))
    terms = train_step(wrap_for_world(run), run.optimizer, batch, run.loop, run.precision, 1)
    state = {name: parameter.grad.clone() for name, parameter in run.objective.named_parameters()
             if parameter.grad is not None}
    return {name: float(value.detach()) for name, value in terms.items()}, state


def ddp_worker(rank, dataset_paths, out, init_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        terms, state = one_step(dataset_paths, out / f"rank{rank}", current_world())
        torch.save({"terms": terms, "state": state}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def single_and_ddp(dataset, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("ddp")
    single = one_step(dataset, out / "single", World())
    mp.spawn(ddp_worker, args=(dataset, out, out / "init"), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]
    return single, ranks


@pytest.mark.parametrize("term", ["neg_loss", "rec_loss", "align_loss", "loss"])
def test_ddp_loss_equals_single(single_and_ddp, term):
    (single_terms, _), ranks = single_and_ddp
    for rank in ranks:
        assert abs(rank["terms"][term] - single_terms[term]) < TOLERANCE


def test_ddp_gradients_equal_single(single_and_ddp):
    (_, single_state), ranks = single_and_ddp
    for rank in ranks:
        assert rank["state"].keys() == single_state.keys()
        worst = max(float((rank["state"][name] - value).abs().max()) for name, value in single_state.items())
        assert worst < TOLERANCE


def sample_batch():
    # 4 images, k = 1; texts: anchors a0..a3, negatives shared between images 0 and 3.
    texts = ["a0", "a1", "a2", "a3", "n0", "n1", "n2"]
    return Batch(images=torch.arange(4).view(4, 1).float(), text_tokens=torch.arange(7).view(7, 1),
                 texts=texts, anchor_index=torch.tensor([0, 1, 2, 3]),
                 negative_index=torch.tensor([4, 5, 6, 4]), paraphrase_index=torch.tensor([1, 0, 3, 2]),
                 target_labels=torch.tensor([[5, 1, -100], [5, 6, 1], [7, 1, -100], [8, 1, -100]]),
                 image_ids=torch.tensor([10, 11, 12, 13]))


def test_shard_keeps_rank_texts():
    shard = sample_batch().shard(1, 2)
    assert shard.texts == ["a2", "a3", "n0", "n2"]
    assert [shard.texts[i] for i in shard.anchor_index] == ["a2", "a3"]
    assert [shard.texts[i] for i in shard.negative_index] == ["n2", "n0"]
    assert [shard.texts[i] for i in shard.paraphrase_index] == ["a3", "a2"]
    assert shard.image_ids.tolist() == [12, 13]


def test_shard_trims_target_padding():
    assert sample_batch().shard(1, 2).target_labels.shape == (2, 2)


def test_shard_rejects_uneven_split():
    with pytest.raises(ValueError, match="does not split over 3"):
        sample_batch().shard(0, 3)


def test_torchrun_command_standalone():
    command = torchrun_command(["finetune", "--gpus", "4"], 4)
    assert command[-7:] == ["--standalone", "--nproc_per_node=4", "-m", "read_clip.cli", "finetune", "--gpus", "4"]


def test_relaunch_only_outside_torchrun(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert should_relaunch(2)
    assert not should_relaunch(1)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not should_relaunch(2)
