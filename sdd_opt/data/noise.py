"""Label corruption: the noisy labels that make sparse double descent appear.

All randomness comes from the explicit ``generator`` so that a run's noise is fixed by its seed.
"""

from __future__ import annotations

import torch

NOISE_KINDS = ("symmetric", "uniform", "pairflip", "asymmetric")

# Patrini et al. (2017) CIFAR-10 map of visually similar classes: truck->automobile, bird->airplane,
# deer->horse, cat<->dog.
CIFAR10_ASYMMETRIC = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def corrupt_labels(labels: torch.Tensor, num_classes: int, rate: float, kind: str,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(noisy_labels, changed_mask)``; ``changed_mask`` marks labels that really differ."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1) (got {rate})")
    if kind == "asymmetric" and num_classes != 10:
        raise ValueError(f"asymmetric noise is the CIFAR-10 class map and needs 10 classes (got {num_classes})")
    clean = labels.cpu().long()
    noisy = clean.clone()
    n = len(clean)
    if kind in ("symmetric", "pairflip"):
        # An exact count, so the realised rate is the configured one even on small sets.
        idx = torch.randperm(n, generator=generator)[: int(rate * n)]
        if kind == "symmetric":
            shift = torch.randint(1, num_classes, (len(idx),), generator=generator)  # never 0: another class
        else:
            shift = torch.ones(len(idx), dtype=torch.long)
        noisy[idx] = (clean[idx] + shift) % num_classes
    elif kind == "uniform":
        hit = torch.rand(n, generator=generator) < rate
        noisy[hit] = torch.randint(0, num_classes, (int(hit.sum()),), generator=generator)
    else:
        target = torch.arange(num_classes)
        for src, dst in CIFAR10_ASYMMETRIC.items():
            target[src] = dst
        hit = torch.rand(n, generator=generator) < rate
        noisy[hit] = target[clean[hit]]
    return noisy.to(labels.device), (noisy != clean).to(labels.device)
