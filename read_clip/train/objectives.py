"""The objectives of the training commands: modules that map a Batch to named loss terms.

Every objective keeps the CLIP model as `clip` and returns its terms plus their weighted sum
under "loss", which `read_clip.train.loop` logs and minimises.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from open_clip.loss import ClipLoss
from torch import nn

from read_clip.losses import AlignmentLoss, NegClipLoss, ReconstructionLoss
from read_clip.models.decoder import TextDecoder
from read_clip.models.text import encode_text_states
from read_clip.train.data import Batch


@dataclass(frozen=True)
class LossWeights:
    """L = neg * L_neg + rec * L_rec + align * L_align; a zero weight skips the term entirely."""

    neg: float
    rec: float
    align: float

    def __post_init__(self):
        values = {"neg": self.neg, "rec": self.rec, "align": self.align}
        if any(v < 0 for v in values.values()) or not any(v > 0 for v in values.values()):
            raise ValueError(f"loss weights must be >= 0 with at least one > 0, got {values}")


class FinetuneObjective(nn.Module):
    """READ-CLIP's loss on a CLIP model; the decoder and bridge exist only when rec > 0.

    One text-tower pass encodes every distinct text of the batch (anchors, negatives and
    paraphrases); each term then indexes the rows it needs.
    """

    def __init__(self, clip: nn.Module, weights: LossWeights, decoder: TextDecoder | None = None,
                 bridge: nn.Linear | None = None):
        super().__init__()
        if weights.rec > 0 and (decoder is None or bridge is None):
            raise ValueError("a reconstruction weight > 0 needs a decoder and a bridge")
        self.clip = clip
        self.weights = weights
        self.negclip = NegClipLoss()
        self.alignment = AlignmentLoss()
        self.reconstruction = ReconstructionLoss(decoder, bridge) if weights.rec > 0 else None

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        logit_scale = self.clip.logit_scale.exp()
        text = encode_text_states(self.clip, batch.text_tokens)
        text_features = text.normalized()  # (U, D)
        anchors = text_features[batch.anchor_index]  # (B, D)
        terms: dict[str, torch.Tensor] = {}

        if self.weights.neg > 0:
            image_features = self.clip.encode_image(batch.images, normalize=True)  # (B, D)
            negatives = text_features[batch.negative_index]  # (B*k, D)
            terms.update(self.negclip(image_features, anchors, negatives, logit_scale))

        if self.weights.rec > 0:
            pooled = text.pooled[batch.anchor_index]  # (B, width)
            terms.update(self.reconstruction(pooled, batch.target_labels))

        if self.weights.align > 0:
            paraphrases = text_features[batch.paraphrase_index]  # (B, D)
            terms.update(self.alignment(paraphrases, anchors, logit_scale))

        weight_of = {"neg_loss": self.weights.neg, "rec_loss": self.weights.rec,
                     "align_loss": self.weights.align}
        terms["loss"] = sum(weight_of[name] * value for name, value in terms.items())
        return terms


class ClipPretrainObjective(nn.Module):
    """The plain CLIP contrastive loss (open_clip's ClipLoss) on (image, anchor caption) pairs."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip
        self.contrastive = ClipLoss()

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        image_features = self.clip.encode_image(batch.images, normalize=True)
        text_features = encode_text_states(self.clip, batch.text_tokens).normalized()
        loss = self.contrastive(image_features, text_features[batch.anchor_index], self.clip.logit_scale.exp())
        return {"contrastive_loss": loss, "loss": loss}


class DecoderPretrainObjective(nn.Module):
    """Reconstruction of the target captions from the pooled states of a frozen CLIP.

    Only the decoder and the bridge train; the CLIP text tower runs without gradients.
    """

    def __init__(self, clip: nn.Module, decoder: TextDecoder, bridge: nn.Linear):
        super().__init__()
        self.clip = clip.requires_grad_(False).eval()
        self.reconstruction = ReconstructionLoss(decoder, bridge)

    def train(self, mode: bool = True) -> DecoderPretrainObjective:
        super().train(mode)
        self.clip.eval()
        return self

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            pooled = encode_text_states(self.clip, batch.text_tokens).pooled[batch.anchor_index]
        terms = self.reconstruction(pooled, batch.target_labels)
        return {**terms, "loss": terms["rec_loss"]}
