"""Loss terms against hand computations on fixed small tensors (float64)."""

import math

import pytest
import torch
import torch.nn.functional as F

from read_clip.losses import AlignmentLoss, NegClipLoss, ReconstructionLoss
from read_clip.models.decoder import IGNORE_INDEX, build_decoder, make_bridge, make_t5_config, shift_right

TOLERANCE = 1e-6


def unit_rows(values):
    return F.normalize(torch.tensor(values, dtype=torch.float64), dim=-1)


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def cross_entropy_by_hand(logits_row, target):
    """-log softmax(logits_row)[target] with plain math."""
    top = max(logits_row)
    log_sum = top + math.log(sum(math.exp(v - top) for v in logits_row))
    return log_sum - logits_row[target]


@pytest.fixture
def features():
    # B = 2 images, k = 3 negatives per caption, D = 4.
    images = unit_rows([[1.0, 0.2, -0.3, 0.5], [-0.4, 1.0, 0.1, 0.0]])
    positives = unit_rows([[0.9, 0.1, -0.2, 0.4], [-0.3, 0.8, 0.3, 0.1]])
    negatives = unit_rows([
        [0.5, 0.5, 0.0, 0.1], [0.0, 0.2, 1.0, 0.0], [1.0, -1.0, 0.0, 0.3],  # image 0's
        [0.2, 0.9, -0.5, 0.0], [-1.0, 0.0, 0.2, 0.7], [0.3, 0.3, 0.3, 0.3],  # image 1's
    ])
    return images, positives, negatives


def test_negclip_matches_hand(features):
    images, positives, negatives = features
    scale = 14.285
    texts = torch.cat([positives, negatives]).tolist()
    image_rows = images.tolist()
    image_to_text = [cross_entropy_by_hand([scale * dot(image, t) for t in texts], i)
                     for i, image in enumerate(image_rows)]
    text_to_image = [cross_entropy_by_hand([scale * dot(text, image) for image in image_rows], i)
                     for i, text in enumerate(positives.tolist())]
    expected = (sum(image_to_text) / 2 + sum(text_to_image) / 2) / 2

    terms = NegClipLoss()(images, positives, negatives, torch.tensor(scale, dtype=torch.float64))
    assert set(terms) == {"neg_loss"}
    assert abs(terms["neg_loss"].item() - expected) < TOLERANCE


def test_negclip_ignores_negatives_for_texts(features):
    # Text -> image uses positives only, so making a negative equal to image 1 changes only the
    # image -> text side: the loss changes by the mean change of that side over 2.
    images, positives, negatives = features
    scale = torch.tensor(10.0, dtype=torch.float64)
    base = NegClipLoss()(images, positives, negatives, scale)["neg_loss"].item()
    harder = negatives.clone()
    harder[3] = images[1]
    changed = NegClipLoss()(images, positives, harder, scale)["neg_loss"].item()

    texts_before = torch.cat([positives, negatives]).tolist()
    texts_after = torch.cat([positives, harder]).tolist()
    image_to_text_change = 0.0
    for i, row in enumerate(images.tolist()):
        before = cross_entropy_by_hand([10.0 * dot(row, t) for t in texts_before], i)
        after = cross_entropy_by_hand([10.0 * dot(row, t) for t in texts_after], i)
        image_to_text_change += (after - before) / 2
    assert abs((changed - base) - image_to_text_change / 2) < TOLERANCE


def test_alignment_matches_hand():
    paraphrases = unit_rows([[1.0, 0.0, 0.2], [0.1, 1.0, 0.0], [0.3, 0.3, 1.0]])
    anchors = unit_rows([[0.9, 0.1, 0.0], [0.0, 0.8, 0.4], [0.5, 0.0, 0.9]])
    scale = 20.0
    rows = [[scale * dot(p, a) for a in anchors.tolist()] for p in paraphrases.tolist()]
    expected = sum(cross_entropy_by_hand(row, i) for i, row in enumerate(rows)) / 3

    terms = AlignmentLoss()(paraphrases, anchors, torch.tensor(scale, dtype=torch.float64))
    assert set(terms) == {"align_loss"}
    assert abs(terms["align_loss"].item() - expected) < TOLERANCE


def test_alignment_is_one_directional():
    # Swapping the roles of paraphrases and anchors transposes the logits, a different loss.
    paraphrases = unit_rows([[1.0, 0.0, 0.2], [0.1, 1.0, 0.0], [0.3, 0.3, 1.0]])
    anchors = unit_rows([[0.9, 0.1, 0.0], [0.0, 0.8, 0.4], [0.5, 0.0, 0.9]])
    scale = torch.tensor(20.0, dtype=torch.float64)
    forward = AlignmentLoss()(paraphrases, anchors, scale)["align_loss"].item()
    backward = AlignmentLoss()(anchors, paraphrases, scale)["align_loss"].item()
    assert abs(forward - backward) > 1e-3


@pytest.fixture
def tiny_decoder():
    torch.manual_seed(0)
    config = make_t5_config({"d_model": 16, "d_ff": 32, "num_heads": 2, "d_kv": 8,
                             "num_decoder_layers": 2}, vocab_size=12)
    decoder = build_decoder(config).double().freeze()
    bridge = make_bridge(6, 16).double()
    return decoder, bridge


def test_shift_right_values():
    labels = torch.tensor([[5, 6, 1, IGNORE_INDEX], [7, 8, 9, 1]])
    expected = torch.tensor([[0, 5, 6, 1], [0, 7, 8, 9]])
    assert torch.equal(shift_right(labels), expected)


def test_reconstruction_matches_hand(tiny_decoder):
    decoder, bridge = tiny_decoder
    pooled = torch.linspace(-1, 1, 12, dtype=torch.float64).view(2, 6)
    labels = torch.tensor([[5, 6, 1, IGNORE_INDEX], [7, 8, 9, 1]])

    # Teacher forcing by hand: start id 0, then the labels; the padded slot is fed pad 0.
    inputs = torch.tensor([[0, 5, 6, 1], [0, 7, 8, 9]])
    encoder_states = (pooled @ bridge.weight.T).view(2, 1, 16)
    logits = decoder(encoder_states, inputs)
    token_losses = [
        cross_entropy_by_hand(logits[row, position].tolist(), int(labels[row, position]))
        for row in range(2) for position in range(4) if labels[row, position] != IGNORE_INDEX
    ]
    expected = sum(token_losses) / len(token_losses)

    terms = ReconstructionLoss(decoder, bridge)(pooled, labels)
    assert set(terms) == {"rec_loss"}
    assert len(token_losses) == 7
    assert abs(terms["rec_loss"].item() - expected) < TOLERANCE


def test_reconstruction_ignores_padding(tiny_decoder):
    decoder, bridge = tiny_decoder
    pooled = torch.linspace(-1, 1, 12, dtype=torch.float64).view(2, 6)
    labels = torch.tensor([[5, 6, 1, IGNORE_INDEX], [7, 8, 9, 1]])
    longer = torch.cat([labels, torch.full((2, 3), IGNORE_INDEX)], dim=1)
    loss = ReconstructionLoss(decoder, bridge)
    assert abs(loss(pooled, labels)["rec_loss"].item() - loss(pooled, longer)["rec_loss"].item()) < TOLERANCE


def test_reconstruction_grads_reach_bridge_only(tiny_decoder):
    decoder, bridge = tiny_decoder
    pooled = torch.linspace(-1, 1, 12, dtype=torch.float64).view(2, 6).requires_grad_(True)
    labels = torch.tensor([[5, 6, 1, IGNORE_INDEX], [7, 8, 9, 1]])
    ReconstructionLoss(decoder, bridge)(pooled, labels)["rec_loss"].backward()
    assert bridge.weight.grad is not None
    assert pooled.grad is not None
    assert all(p.grad is None for p in decoder.parameters())
