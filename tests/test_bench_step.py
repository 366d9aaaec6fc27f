"""``nnopt bench``'s variants: every row of the optimizer table can be timed, each variant
built from the very same call and stepping the same math (checked here on small tensors, not
timed), and the ratios say "-" where there is nothing to compare with."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nnopt.bench import step
from nnopt.optim import table


@pytest.mark.parametrize("name", step.OPTIMIZERS)
def test_every_variant_steps_the_same_math(name: str) -> None:
    variants = step._variants(name)
    assert {"nnopt", "nnopt flat=True"} <= variants.keys()
    assert ("torch for-loop" in variants) == (table.row(name).twin is not None)
    values, grads = step.shaped(name, step.draw(3, 16)[0]), step.shaped(name, step.draw(3, 16)[1])
    ends = {}
    for variant, build in variants.items():
        params = [torch.nn.Parameter(v.clone()) for v in values]
        opt = build(params)
        for _ in range(3):
            # Fresh gradients each step: torch's foreach SGD with Nesterov adds the momentum
            # into p.grad in place (torch 2.13), so a kept gradient would drift.
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone().to(p.dtype)  # (bfloat16 for the compact variant)
            opt.step()
        ends[variant] = torch.stack([p.detach().float() for p in params])
    for variant, end in ends.items():
        # the compact variant: bfloat16 weights (2^-8 relative) moved by 8-bit moments
        tol = (
            {"rtol": 2e-2, "atol": 2e-2}
            if variant == step.COMPACT
            else {"rtol": 1e-5, "atol": 1e-6}
        )
        torch.testing.assert_close(end, ends["nnopt"], **tol, msg=variant)


def test_a_reference_class_is_timed_when_installed(monkeypatch) -> None:
    row = table.row("momentum")
    with_reference = dataclasses.replace(row, reference="nnopt.optim.sgd:SGD")
    monkeypatch.setitem(table.BY_NAME, "momentum", with_reference)
    assert "reference" in step._variants("momentum")
    missing = dataclasses.replace(row, reference="not_a_package_here:SGD")
    monkeypatch.setitem(table.BY_NAME, "momentum", missing)
    assert "reference" not in step._variants("momentum")


def test_ratios_without_anything_to_compare_are_dashes() -> None:
    alone = step.StepResult("lion", "2000x1000", 10, floor=0.5, times={"nnopt": 1.0})
    assert alone.fastest_other is None and alone.vs_other is None
    assert alone.vs_floor == 2.0
    assert (
        step.markdown([alone]).splitlines()[-1].endswith("| 500.00 | - | 2.00x | - | - | - | - |")
    )


def test_the_compact_variant_reports_its_bytes_and_floor() -> None:
    result = step.StepResult(
        "adam", "8x2.5M", 10, floor=1.0, times={"nnopt": 4.0, step.COMPACT: 3.0}
    )
    result.held = {"nnopt": 16.0, step.COMPACT: 7.03}
    result.compact_floor = 2.0
    assert result.compact_vs_floor == 1.5
    assert step.markdown([result]).splitlines()[-1].endswith("| 16.00 | 7.03 | 1.50x | 0.75x |")
    # (an optimizer that reads whole weights has no compact variant)
    assert step.COMPACT not in step._variants("muon_torch")
    assert step.COMPACT in step._variants("adam")
    paired = step.StepResult("sgd", "2000x1000", 10, 0.5, {"nnopt": 1.0, "torch fused": 4.0})
    assert paired.vs_other == 0.25


def test_an_optimizer_of_matrices_gets_matrices() -> None:
    rows = torch.zeros(3, 1000)
    assert step.shaped("muon_torch", rows).shape == (3, 25, 40)
    assert step.shaped("adam", rows).shape == (3, 1000)
