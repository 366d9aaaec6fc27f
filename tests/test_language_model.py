"""The language-model task: char-LM data over local text, the transformer, next-token loss."""

from __future__ import annotations

import math

import pytest
import torch

from nnopt.data import load_dataset
from nnopt.recipe import Recipe
from nnopt.training import train
from nnopt.training.build import NextTokenLoss
from nnopt.transformer import Transformer

RECIPE = """
name = "lm"
seed = 0
[data]
name = "charlm"
val_fraction = 0.2
[data.options]
context = 16
max_chars = 20000
[model]
kind = "transformer"
width = 32
layers = 1
heads = 2
[optimizer]
name = "adam"
lr = 0.01
[train]
steps = 60
batch_size = 16
eval_every = 20
"""


def test_next_token_loss_is_the_hand_computed_cross_entropy():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], [[0.0, 1.0, 0.0], [3.0, 0.0, 0.0]]])
    targets = torch.tensor([[0, 2], [1, 0]])
    by_hand = 0.0
    for b in range(2):
        for t in range(2):
            row = logits[b, t].tolist()
            log_sum = math.log(sum(math.exp(v) for v in row))
            by_hand += log_sum - row[targets[b, t]]
    assert NextTokenLoss()(logits, targets).item() == pytest.approx(by_hand / 4, rel=1e-6)


def test_the_transformer_is_causal_and_its_head_is_tied():
    torch.manual_seed(0)
    model = Transformer(vocab=11, context=8, width=16, layers=2, heads=4).eval()
    ids = torch.randint(0, 11, (2, 8))
    changed = ids.clone()
    changed[:, 5] = (ids[:, 5] + 1) % 11
    a, b = model(ids), model(changed)
    assert a.shape == (2, 8, 11)
    assert torch.equal(a[:, :5], b[:, :5])  # positions before 5 never see token 5
    assert not torch.allclose(a[:, 5:], b[:, 5:])
    names = [name for name, _ in model.named_parameters()]
    assert "tokens.weight" in names and not any("head" in n for n in names)


def test_charlm_reads_local_text_and_cuts_it_once(tmp_path):
    text = "".join(chr(97 + (i * 7) % 26) for i in range(2000))
    path = tmp_path / "text.txt"
    path.write_text(text)
    data = load_dataset("charlm", val_fraction=0.25, path=str(path), context=9)
    assert data.task == "language_model" and data.output_dim == 26
    assert data.x_train.shape[1] == 9 and data.x_train.dtype == torch.int64
    assert torch.equal(data.x_train[:, 1:], data.y_train[:, :-1])  # y is x shifted by one
    decoded = "".join(data.classes[i] for i in data.x_train[0].tolist())
    assert decoded == text[:9]
    held = "".join(data.classes[i] for i in data.x_test[0].tolist())
    assert held == text[1500:1509]  # the held-out part is the text's last quarter
    default = load_dataset("charlm", max_chars=5000, context=16)  # Python's own sources
    assert len(default.x_train) == (4000 - 1) // 16  # 80% of 5,000 characters


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_char_lm_learns_reports_perplexity_and_resumes_bitwise(tmp_path, dtype):
    # (bfloat16: the token ids are fed as they are, the weights and activations bf16)
    recipe = Recipe.loads(RECIPE).with_overrides([f"model.dtype={dtype}"])
    whole = train(recipe, tmp_path / "whole")
    rows = whole.history
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] < math.log(whole.model.tokens.num_embeddings)
    assert rows[-1]["val_perplexity"] == pytest.approx(math.exp(rows[-1]["val_loss"]))
    assert whole.summary["metric"] == "val_loss"
    assert {p.dtype for p in whole.model.parameters()} == {getattr(torch, dtype)}
    train(recipe, tmp_path / "cut", stop_after=25)
    resumed = train(recipe, tmp_path / "cut", resume=True)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_transformer_needs_sequence_data_and_says_so(tmp_path):
    bad = RECIPE.replace('name = "charlm"', 'name = "digits"').replace("[data.options]", "[x]")
    with pytest.raises(Exception, match="model.kind 'transformer' is the language model"):
        train(Recipe.loads(bad.replace("[x]\ncontext = 16\nmax_chars = 20000\n", "")))
