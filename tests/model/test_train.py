"""The trainer and evaluator through their command lines, and their pieces as functions."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from model import Tokenizer, generate, load_checkpoint
from model.train import Schedule, evaluate_text, split_text

from .helpers import make_model

ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def train(data: Path, out: Path, steps: int, *extra: str) -> subprocess.CompletedProcess[str]:
    # --warmup 10 > steps: the learning rate then does not depend on --steps, so a resumed run can
    # be compared with an uninterrupted one.
    return run_module("model.train", "--data", data, "--out", out, "--preset", "tiny", "--steps", str(steps),
                      "--eval-interval", "2", "--eval-batches", "1", "--batch-size", "2", "--seq-len", "32",
                      "--warmup", "10", "--no-bf16", "--threads", "1", *extra)


@pytest.fixture(scope="module")
def trained(corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny"
    result = train(corpus_file, out, 4)
    assert "val loss" in result.stderr  # periodic validation is logged
    return out


def test_training_writes_a_loadable_folder(trained: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (trained / name).is_file(), name
    assert (trained / "last" / "trainer_state.pt").is_file()
    config = json.loads((trained / "config.json").read_text())
    assert config["model_type"] == "attnserve" and config["step"] in (2, 4)  # the best validation step
    assert math.isfinite(config["val_loss"])
    loaded = load_checkpoint(trained)
    cfg = loaded.model.cfg
    assert (cfg.d_model, cfg.n_layers, cfg.max_seq_len, cfg.dropout) == (64, 2, 32, 0.0)
    assert cfg.vocab_size == loaded.tokenizer.vocab_size <= 512
    eos = loaded.tokenizer.eos_token_id
    assert eos is not None and loaded.tokenizer.is_special(eos) and cfg.eos_token_id == eos
    ids = loaded.tokenizer.encode("First Citizen:").ids
    assert len(generate(loaded.model, ids, 5)) >= 1


def test_resume_continues_exactly(trained: Path, corpus_file: Path, tmp_path: Path) -> None:
    run = shutil.copytree(trained, tmp_path / "resumed")
    assert torch.load(run / "last" / "trainer_state.pt", weights_only=True)["step"] == 4
    before = load_file(str(run / "last" / "model.safetensors"))
    result = train(corpus_file, run, 6, "--resume")
    assert "step 6" in result.stderr
    assert torch.load(run / "last" / "trainer_state.pt", weights_only=True)["step"] == 6
    resumed = load_file(str(run / "last" / "model.safetensors"))
    assert not torch.equal(resumed["tok_emb.weight"], before["tok_emb.weight"])  # it trained on
    # The same 6 steps without a break: same data order, optimizer state and schedule.
    train(corpus_file, tmp_path / "straight", 6)
    straight = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], atol=1e-6, rtol=1e-5, msg=key)


def test_evaluate_prints_json(trained: Path, corpus_file: Path) -> None:
    result = run_module("model.evaluate", "--model", trained, "--data", corpus_file, "--tail", "0.05",
                        "--threads", "1")
    report = json.loads(result.stdout)
    assert report["model"] == str(trained)
    assert 0 < report["nats_per_char"] < report["nats_per_token"] < math.log(512) + 1
    per_char = report["nats_per_token"] * report["tokens"] / report["chars"]
    assert report["nats_per_char"] == pytest.approx(per_char)
    text = corpus_file.read_text(encoding="utf-8")
    assert report["chars"] == len(text) - int(len(text) * 0.95)


def test_schedule_warms_up_then_decays() -> None:
    s = Schedule(lr=1e-3, min_lr=1e-4, warmup=10, steps=110)
    assert s.at(0) == pytest.approx(1e-4) and s.at(9) == pytest.approx(1e-3)  # linear warmup
    assert s.at(10) == pytest.approx(1e-3)
    assert s.at(60) == pytest.approx((1e-3 + 1e-4) / 2)  # half way through the cosine
    assert s.at(110) == pytest.approx(1e-4) and s.at(500) == pytest.approx(1e-4)
    lrs = [s.at(i) for i in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_split_keeps_the_tail_for_validation() -> None:
    train_text, val_text = split_text("abcdefghij", 0.2)
    assert (train_text, val_text) == ("abcdefgh", "ij")


def test_evaluate_text_is_the_mean_next_token_loss(bpe_dir: Path) -> None:
    tok = Tokenizer.from_dir(bpe_dir)
    model = make_model(make_model().cfg.replace(vocab_size=512, max_seq_len=32))
    short = "Before we proceed any further, hear me speak."
    ids = tok.encode(short, add_special_tokens=False).ids
    assert len(ids) <= 32
    with torch.no_grad():
        logits = model.logits(model(torch.tensor([ids[:-1]])).hidden)[0]
    nll = float(F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum"))
    result = evaluate_text(model, tok, short, torch.device("cpu"))
    assert result["tokens"] == len(ids) - 1
    assert result["nats_per_token"] == pytest.approx(nll / (len(ids) - 1), rel=1e-5)
    assert result["nats_per_char"] == pytest.approx(nll / len(short), rel=1e-5)


def test_evaluate_text_scores_every_token_once(bpe_dir: Path, corpus_text: str) -> None:
    tok = Tokenizer.from_dir(bpe_dir)
    model = make_model(make_model().cfg.replace(vocab_size=512, max_seq_len=16))
    text = corpus_text[:600]
    n = len(tok.encode(text, add_special_tokens=False).ids)
    assert n > 3 * 16  # several overlapping windows
    assert evaluate_text(model, tok, text, torch.device("cpu"))["tokens"] == n - 1


def test_export_casts_the_weights(trained: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    from model import load_checkpoint

    run_module("model.export", trained, tmp_path / "bf16", "--dtype", "bfloat16")
    with safe_open(str(tmp_path / "bf16" / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # noqa: SIM118
    original, exported = load_checkpoint(trained), load_checkpoint(tmp_path / "bf16")
    ids = torch.tensor([original.tokenizer.encode("To be").ids])
    with torch.no_grad():
        a = original.model.logits(original.model(ids).hidden)
        b = exported.model.logits(exported.model(ids).hidden)
    assert torch.allclose(a, b, atol=0.1) and not torch.equal(a, b)
