"""Discretisation error vs precision error of one FNO block across resolutions.

The experiment of App. A.2 of "Guaranteed Approximation Bounds for Mixed-Precision Neural
Operators" (ICLR 2024): one Fourier block (SpectralConv with fixed random weights and fixed modes,
a fixed 1x1 skip, GELU) is applied to a fixed smooth random field defined analytically, so it can
be sampled at any resolution n (points i / n on the periodic unit square).

* discretisation error(n) = ||block_n(f) - block_1024(f)|| / ||block_1024(f)||, the float64 block
  at resolution n against the float64 reference at 1024 taken at the same points;
* precision error(n) = ||block_n,half(f) - block_n,full(f)|| / ||block_n,full(f)||: true float16
  (FFT, contraction, inverse FFT) on CUDA; on CPU the reduced-precision CPU path (float32 FFTs,
  bfloat16 contraction) -- the device is printed with the table.

The field is a fixed random trigonometric polynomial with all frequencies |k_z|, |k_x| < 512 and
Gaussian coefficients of amplitude (1 + |k|^2)^-1.25 (a Matern-like random field, so smooth but
not band-limited at the tested resolutions), evaluated exactly at any resolution. Writes
docs/figures/discretisation_vs_precision.{png,csv}.

    .venv/bin/python bench/discretisation_vs_precision.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ccs_fno.nn import SpectralConv  # noqa: E402

RESOLUTIONS = (16, 32, 64, 128, 256)
REFERENCE = 1024
CHANNELS, MODES = 4, (8, 8)
K_GRID, SMOOTHNESS = 1024, 2.5  # coefficients for |k| < 512; amplitude (1 + |k|^2)^-1.25


def field(n: int, seed: int = 0) -> torch.Tensor:
    """[1, CHANNELS, n, n] float64 values of the fixed random trigonometric polynomial at
    (i / n, j / n), exact for any n: each coefficient is folded onto the n-point DFT bin it
    aliases to, then one inverse FFT evaluates the sum."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(K_GRID, 1 / K_GRID)
    kz, kx = np.meshgrid(k, k, indexing="ij")
    amplitude = (1 + kz**2 + kx**2) ** (-SMOOTHNESS / 2) * (np.abs(kz) < K_GRID // 2)
    amplitude *= np.abs(kx) < K_GRID // 2  # no Nyquist line: |k| < 512 in both dims
    shape = (CHANNELS, K_GRID, K_GRID)
    coeffs = amplitude * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    folded = np.zeros((CHANNELS, n, n), complex)
    iz, ix = np.meshgrid(np.arange(K_GRID) % n, np.arange(K_GRID) % n, indexing="ij")
    for c in range(CHANNELS):
        np.add.at(folded[c], (iz, ix), coeffs[c])
    values = np.fft.ifft2(folded).real * n * n
    rms = np.sqrt((np.abs(coeffs) ** 2).sum(axis=(1, 2)) / 2)  # Parseval: unit variance
    return torch.from_numpy(values[None] / rms[None, :, None, None])


class Block(torch.nn.Module):
    """GELU(SpectralConv(x) + 1x1 conv(x)) with fixed random weights."""

    def __init__(self, precision: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.spectral = SpectralConv(CHANNELS, CHANNELS, MODES, precision, tanh_preactivation=False)
        self.skip = torch.nn.Conv2d(CHANNELS, CHANNELS, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(self.spectral(x) + self.skip(x))


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@torch.no_grad()
def run(device: str) -> list[dict[str, float]]:
    exact = Block("full").double()
    full, half = Block("full").to(device), Block("half").to(device)
    reference = exact(field(REFERENCE))
    rows = []
    for n in RESOLUTIONS:
        x = field(n)
        stride = REFERENCE // n
        target = reference[..., ::stride, ::stride]
        x32 = x.float().to(device)
        rows.append(
            {
                "resolution": n,
                "discretisation_error": relative_l2(exact(x), target),
                "precision_error": relative_l2(half(x32).cpu(), full(x32).cpu()),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out-dir", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    rows = run(args.device)
    kind = "float16 FFT+contraction (CUDA)" if args.device == "cuda" else "bfloat16 contraction (CPU)"
    print(f"half = {kind}; block: SpectralConv({CHANNELS}, {CHANNELS}, modes={MODES}) + skip, GELU")
    print(f"{'n':>5} {'discretisation':>15} {'precision':>10}")
    for row in rows:
        print(f"{row['resolution']:>5} {row['discretisation_error']:15.2e} {row['precision_error']:10.2e}")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open(args.out_dir / "discretisation_vs_precision.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    n = [r["resolution"] for r in rows]
    ax.loglog(n, [r["discretisation_error"] for r in rows], "o-", label="discretisation (vs 1024)")
    ax.loglog(n, [r["precision_error"] for r in rows], "s-", label=f"precision: {kind}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("resolution n (n x n grid)")
    ax.set_ylabel("relative L2 error")
    ax.set_title("One FNO block: discretisation vs precision error")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out_dir / "discretisation_vs_precision.png", dpi=150)
    print(f"wrote {args.out_dir}/discretisation_vs_precision.png and .csv")


if __name__ == "__main__":
    main()
