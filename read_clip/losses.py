"""The three loss terms of READ-CLIP. Each `forward` returns a dict of named terms.

Shapes: B images per step, k hard negatives per caption, D the joint embedding width.
Features passed in are L2-normalised; `logit_scale` is CLIP's learned scale already
exponentiated (a scalar tensor, about 100 for OpenAI's ViT-B/32).

Under data-parallel training each rank passes its own rows. The contrastive and alignment losses
gather every rank's rows (with gradient), and the reconstruction loss divides by the global token
count. So every rank returns the loss of the whole global batch (see read_clip.train.distributed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from read_clip.models.decoder import IGNORE_INDEX, TextDecoder, bridge_states, shift_right
from read_clip.train.distributed import gather_rows, global_token_mean


class NegClipLoss(nn.Module):
    """NegCLIP contrastive loss with k hard negative captions per image.

    image -> text: cross-entropy over the B positives followed by the B*k negatives, target the
    image's own positive. text -> image: cross-entropy over the B images, positives only.
    `neg_loss` is the mean of the two directions.
    """

    def forward(self, image_features: torch.Tensor, positive_features: torch.Tensor,
                negative_features: torch.Tensor, logit_scale: torch.Tensor) -> dict[str, torch.Tensor]:
        """image_features, positive_features: (B, D); negative_features: (B*k, D).

        With several ranks, B is the rank's share and the loss runs over the gathered batch.
        """
        image_features = gather_rows(image_features)
        positive_features = gather_rows(positive_features)
        negative_features = gather_rows(negative_features)
        texts = torch.cat([positive_features, negative_features])  # ((1+k)B, D)
        logits_per_image = logit_scale * image_features @ texts.T  # (B, (1+k)B)
        logits_per_text = logits_per_image[:, : image_features.shape[0]].T  # (B, B), positives only

        targets = torch.arange(image_features.shape[0], device=image_features.device)
        image_to_text = F.cross_entropy(logits_per_image, targets)
        text_to_image = F.cross_entropy(logits_per_text, targets)
        return {"neg_loss": (image_to_text + text_to_image) / 2}


class AlignmentLoss(nn.Module):
    """One-directional InfoNCE from each paraphrase to its anchor caption.

    Logits are `logit_scale * paraphrase @ anchor.T` (B, B); the target of row i is anchor i.
    Hard negatives take no part.
    """

    def forward(self, paraphrase_features: torch.Tensor, anchor_features: torch.Tensor,
                logit_scale: torch.Tensor) -> dict[str, torch.Tensor]:
        """paraphrase_features, anchor_features: (B, D), row i of each from the same image."""
        paraphrase_features = gather_rows(paraphrase_features)
        anchor_features = gather_rows(anchor_features)
        logits = logit_scale * paraphrase_features @ anchor_features.T
        targets = torch.arange(logits.shape[0], device=logits.device)
        return {"align_loss": F.cross_entropy(logits, targets)}


class ReconstructionLoss(nn.Module):
    """Token-level cross-entropy of a target caption, decoded from one caption's pooled state.

    The bridge maps each pooled state (B, width) to a one-token encoder output (B, 1, d_model).
    The decoder is teacher-forced with the labels shifted right (start id 0). The loss is the
    mean over the target tokens that are not IGNORE_INDEX, so padding does not count.
    Gradients reach the bridge and the pooled state; a frozen decoder takes none itself.
    """

    def __init__(self, decoder: TextDecoder, bridge: nn.Linear):
        super().__init__()
        self.decoder = decoder
        self.bridge = bridge

    def forward(self, pooled: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """pooled: (B, width); labels: (B, T) int64 target ids, IGNORE_INDEX at padding."""
        logits = self.decoder(bridge_states(self.bridge, pooled), shift_right(labels))  # (B, T, V)
        token_losses = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                                       ignore_index=IGNORE_INDEX, reduction="sum")
        tokens = int((labels != IGNORE_INDEX).sum())
        return {"rec_loss": global_token_mean(token_losses, tokens)}
