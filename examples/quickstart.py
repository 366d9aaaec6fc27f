"""Quickstart: one small network on scikit-learn's digits, trained with each seed optimizer.

Run with `.venv/bin/python examples/quickstart.py` (after `make setup`). Mini-batch gradient
descent, He initialization, 30 epochs; prints the final training loss and the accuracy on a
held-out 20% test split for each optimizer.
"""

from __future__ import annotations

import time

import torch
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import nnopt

OPTIMIZERS = {
    "SGD": lambda ps: nnopt.SGD(ps, lr=0.1),
    "SGD + momentum": lambda ps: nnopt.SGD(ps, lr=0.05, momentum=0.9),
    "SGD + Nesterov": lambda ps: nnopt.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "AdaGrad": lambda ps: nnopt.AdaGrad(ps, lr=0.05),
    "RMSProp": lambda ps: nnopt.RMSProp(ps, lr=1e-3),
    "Adam": lambda ps: nnopt.Adam(ps, lr=1e-3),
    "AdamW": lambda ps: nnopt.AdamW(ps, lr=1e-3, weight_decay=1e-2),
}


def load() -> tuple[torch.Tensor, ...]:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1e-8  # fitted on the training split only
    as_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test)


def train(make_optimizer, data, epochs: int = 30, batch_size: int = 64, seed: int = 0):
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    for layer in (model[0], model[2]):
        nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    opt = make_optimizer(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        # Mini-batches are slices of a shuffled index, not a per-sample DataLoader.
        for idx in torch.randperm(len(x_train), generator=order).split(batch_size):
            opt.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
    with torch.no_grad():
        train_loss = loss_fn(model(x_train), y_train).item()
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return train_loss, accuracy


def main() -> None:
    data = load()
    table = Table(title="digits, MLP 64-128-10, 30 epochs of mini-batch (64)")
    for column in ("optimizer", "train loss", "test accuracy", "time (s)"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for name, make in OPTIMIZERS.items():
        start = time.perf_counter()
        loss, acc = train(make, data)
        table.add_row(name, f"{loss:.4f}", f"{acc:.2%}", f"{time.perf_counter() - start:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
