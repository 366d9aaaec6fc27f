"""Lightning (issue 10, point 5, case 1): nnopt inside ``lightning.Trainer``.

Each test fits the same LightningModule twice, ``configure_optimizers`` returning
``torch.optim.X(...)`` in one run and ``nnopt.X(...)`` in the other, and compares the final
parameters (and, where the repro is about state, the resumed numbers).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from tests.clients.helpers import NAMES, make_optimizer, tensors_of

L = pytest.importorskip("lightning")

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*GPU available but not used.*")


def _data(n: int = 64, seed: int = 1) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = (x[:, :4] * 2 - x[:, 4:8]).tanh()
    return torch.utils.data.TensorDataset(x, y)


class Net(L.LightningModule):
    def __init__(self, lib: str, name: str, scheduler: bool = False, **opt_kwargs) -> None:
        super().__init__()
        self.lib, self.name, self.scheduler, self.opt_kwargs = lib, name, scheduler, opt_kwargs
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh())
        self.head = nn.Linear(32, 4)
        self.extra = nn.Linear(32, 4)  # trained only once a callback adds it (case g)
        self.extra.requires_grad_(False)
        self.use_extra = False
        self.losses: list[float] = []

    def forward(self, x):
        h = self.body(x)
        out = self.head(h)
        return out + self.extra(h) if self.use_extra else out

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x).float(), y.to(torch.float32))
        self.losses.append(loss.item())
        return loss

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_data(), batch_size=8, shuffle=False)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = make_optimizer(self.lib, self.name, params, **self.opt_kwargs)
        if not self.scheduler:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _trainer(**kwargs) -> L.Trainer:
    base = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    return L.Trainer(**{**base, **kwargs})


def _fit(lib: str, name: str, *, module_kwargs=None, **trainer_kwargs) -> Net:
    L.seed_everything(0, verbose=False)
    model = Net(lib, name, **(module_kwargs or {}))
    _trainer(**trainer_kwargs).fit(model)
    return model


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_and_lr_scheduler(name, record):
    """Repro 1a: configure_optimizers returns optimizer + a torch LR scheduler (StepLR)."""
    ref = _fit("torch", name, module_kwargs=dict(scheduler=True))
    got = _fit("nnopt", name, module_kwargs=dict(scheduler=True))
    record.close("final params", ref, got)
    record.close("losses", ref.losses, got.losses)
    lr_ref = ref.trainer.optimizers[0].param_groups[0]["lr"]
    lr_got = got.trainer.optimizers[0].param_groups[0]["lr"]
    assert lr_got == lr_ref


def test_bf16_true_sgd(record):
    """Repro 1b: precision="bf16-true" with SGD; today nnopt leaves most bf16 elements as they
    were after a step. Both runs update bfloat16 parameters, so the tolerance is bf16's: 1 ulp
    (2^-8) relative to the tensor's largest element; and after one step the share of elements
    that moved must match torch's."""
    kwargs = dict(module_kwargs=dict(lr=0.05, momentum=0.0, weight_decay=0.0))
    torch.manual_seed(0)
    start = {
        k: v for k, v in tensors_of(Net("torch", "SGD").bfloat16()).items() if "extra" not in k
    }
    moved = {}
    for lib in ("torch", "nnopt"):
        one = _fit(lib, "SGD", precision="bf16-true", max_steps=1, **kwargs)
        after = tensors_of(one)
        changed = sum(int((after[k] != start[k]).sum()) for k in start)
        moved[lib] = changed / sum(t.numel() for t in start.values())
    record.note("share moved by step 1", f"torch {moved['torch']:.3f} nnopt {moved['nnopt']:.3f}")
    assert moved["nnopt"] >= moved["torch"] - 0.01, moved
    ref = _fit("torch", "SGD", precision="bf16-true", max_epochs=1, **kwargs)
    got = _fit("nnopt", "SGD", precision="bf16-true", max_epochs=1, **kwargs)
    assert all(p.dtype == torch.bfloat16 for p in got.parameters())
    record.close("final params (bf16, 8 steps)", ref, got, rtol=2**-8)


def test_bf16_mixed(record):
    """Repro 1c: precision="bf16-mixed" (fp32 params, bf16 autocast), Adam. The bf16 forward
    rounds away differences below 2^-8, so equal optimizers give equal numbers here."""
    ref = _fit("torch", "Adam", precision="bf16-mixed")
    got = _fit("nnopt", "Adam", precision="bf16-mixed")
    assert all(p.dtype == torch.float32 for p in got.parameters())
    record.close("final params", ref, got, rtol=1e-3)
    record.close("losses", ref.losses, got.losses, rtol=1e-3)


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_gradient_clip_val(name, record):
    """Repro 1d: Trainer(gradient_clip_val=0.05), norm clipping before every step."""
    ref = _fit("torch", name, gradient_clip_val=0.05)
    got = _fit("nnopt", name, gradient_clip_val=0.05)
    record.close("final params", ref, got)


@pytest.mark.parametrize("name", ["SGD", "AdamW"])
def test_accumulate_grad_batches(name, record):
    """Repro 1e: Trainer(accumulate_grad_batches=3): gradients summed over three backwards
    (with a partial window at the epoch end) before each step."""
    ref = _fit("torch", name, accumulate_grad_batches=3)
    got = _fit("nnopt", name, accumulate_grad_batches=3)
    record.close("final params", ref, got)


@pytest.mark.parametrize("name", ["Adam"])
def test_checkpoint_then_resume(name, record, tmp_path):
    """Repro 1f: ModelCheckpoint after epoch 1, then a new Trainer resumes from the .ckpt to
    epoch 2; the optimizer and scheduler states come back from the checkpoint. The resumed
    run must equal the torch run resumed the same way, and (bitwise) its own uninterrupted
    2-epoch run."""
    results = {}
    for lib in ("torch", "nnopt"):
        ckpt_dir = tmp_path / lib
        callback = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True)
        _fit(
            lib,
            name,
            module_kwargs=dict(scheduler=True),
            max_epochs=1,
            enable_checkpointing=True,
            callbacks=[callback],
        )
        L.seed_everything(0, verbose=False)
        resumed = Net(lib, name, scheduler=True)
        _trainer(max_epochs=2, enable_checkpointing=True, default_root_dir=tmp_path).fit(
            resumed, ckpt_path=str(ckpt_dir / "last.ckpt")
        )
        whole = _fit(lib, name, module_kwargs=dict(scheduler=True), max_epochs=2)
        results[lib] = (resumed, whole)
        assert resumed.trainer.global_step == whole.trainer.global_step == 16
    record.bitwise("torch: resumed vs uninterrupted", results["torch"][1], results["torch"][0])
    record.bitwise("nnopt: resumed vs uninterrupted", results["nnopt"][1], results["nnopt"][0])
    record.close("resumed final params", results["torch"][0], results["nnopt"][0])
    record.close("resumed losses", results["torch"][0].losses, results["nnopt"][0].losses)


class AddGroup(L.Callback):
    """At the start of epoch 1, unfreeze ``extra`` and hand it to the optimizer."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            pl_module.extra.requires_grad_(True)
            pl_module.use_extra = True
            trainer.optimizers[0].add_param_group(
                {"params": list(pl_module.extra.parameters()), "lr": 0.02}
            )


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_add_param_group_mid_training(name, record):
    """Repro 1g: a callback calls opt.add_param_group mid-fit (at epoch 1 of 2)."""
    ref = _fit("torch", name, callbacks=[AddGroup()])
    got = _fit("nnopt", name, callbacks=[AddGroup()])
    assert len(got.trainer.optimizers[0].param_groups) == 2
    record.close("final params (extra included)", ref, got)
    assert not torch.equal(ref.extra.weight, Net("torch", name).extra.weight)


COMPACT = dict(state_dtype="int8", min_8bit_size=1, param_update="kahan")


def test_bf16_true_with_8bit_state_resumes_bit_for_bit_and_learns(record, tmp_path):
    """Issue 26 through Lightning: precision="bf16-true" (bfloat16 weights), nnopt's AdamW
    with 8-bit state in every tensor and a Kahan residual. Lightning's checkpoint holds the
    compact state as nnopt gives it; resuming from it equals the uninterrupted run bit for bit;
    and it learns as torch's float32 AdamW does (final loss within 10% of it)."""
    callback = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    kwargs = dict(module_kwargs=COMPACT, precision="bf16-true")
    _fit("nnopt", "AdamW", max_epochs=1, enable_checkpointing=True, callbacks=[callback], **kwargs)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    first = saved["optimizer_states"][0]["state"][0]
    assert first["exp_avg"].dtype == torch.int8 and first["kahan_comp"].dtype == torch.int8
    L.seed_everything(0, verbose=False)
    resumed = Net("nnopt", "AdamW", **COMPACT)
    again = _trainer(
        max_epochs=2, precision="bf16-true", enable_checkpointing=True, default_root_dir=tmp_path
    )
    again.fit(resumed, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    whole = _fit("nnopt", "AdamW", max_epochs=2, **kwargs)
    assert all(p.dtype == torch.bfloat16 for p in whole.parameters())
    record.bitwise("resumed vs uninterrupted", whole, resumed)
    fp32 = _fit("torch", "AdamW", max_epochs=2)
    final = sum(whole.losses[-4:]) / 4
    reference = sum(fp32.losses[-4:]) / 4
    record.note(
        "final loss (mean of last 4)", f"torch fp32 {reference:.4f} nnopt bf16+int8 {final:.4f}"
    )
    assert abs(final - reference) <= 0.1 * reference
