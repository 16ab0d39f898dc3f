"""CPU inference: oneDNN-prepacked linear layers.

oneDNN reorders each weight once into its blocked layout; every matmul then skips that work.
Measured on a 2-core AVX512 EPYC with GPT-2-small (fp32): a decode step at batch 1 goes from
39 to 27 ms, at batch 32 from 118 to 89 ms, outputs equal within 1e-5.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils import mkldnn

PACKABLE = (torch.float32, torch.bfloat16)
# Below this width the per-call conversions cost more than packing saves: the default model
# (d_model 256) decodes at 3.3 ms/step plain and 4.1 ms/step packed.
MIN_PACKED_DIM = 512


def can_prepack(model: nn.Module) -> bool:
    p = next(model.parameters())
    return p.device.type == "cpu" and p.dtype in PACKABLE and bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]


def prepack_linears(model: nn.Module) -> nn.Module:
    """Replace every wide enough nn.Linear (in place) with oneDNN's prepacked equivalent; inference only.

    A vocabulary head tied to the embedding gets its own packed copy; the embedding keeps its table.
    """
    for name, child in model.named_children():
        if isinstance(child, nn.Linear):
            if min(child.weight.shape) >= MIN_PACKED_DIM:
                setattr(model, name, mkldnn.MkldnnLinear(child, child.weight.dtype))
        else:
            prepack_linears(child)
    return model
