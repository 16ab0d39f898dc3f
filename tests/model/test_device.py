"""Device and dtype defaults."""

from __future__ import annotations

import pytest
import torch

from model import dtype_name, resolve_device, resolve_dtype


def test_auto_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    for name in (None, "", "auto"):
        assert resolve_device(name).type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_dtypes() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_dtype("fp16", cpu) == torch.float16 and resolve_dtype("float32", cpu) == torch.float32
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        resolve_dtype("int8", cpu)
    assert dtype_name(torch.bfloat16) == "bfloat16"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_auto_dtype_on_cuda_is_half_precision() -> None:
    assert resolve_dtype(None, torch.device("cuda")) in (torch.bfloat16, torch.float16)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_prepacked_linears_give_the_same_outputs(activation: str) -> None:
    from model import PRESETS, Transformer
    from model.cpu import can_prepack, prepack_linears

    torch.manual_seed(0)
    cfg = PRESETS["tiny"].replace(d_model=512, d_ff=512, n_heads=8, activation=activation)
    model = Transformer(cfg).eval()
    x = torch.randint(0, 512, (2, 9))
    with torch.inference_mode():
        before = model.logits(model(x).hidden)
        assert can_prepack(model)
        prepack_linears(model)
        assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
        assert model.blocks[0].mlp.fc_in.attr != "none"  # the activation runs inside the matmul
        after = model.logits(model(x).hidden)
    assert torch.allclose(before, after, atol=1e-5)
