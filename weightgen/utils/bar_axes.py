"""One look for the studies' bar charts of zero-shot PSNR per configuration."""

from __future__ import annotations


def style_psnr_bars(ax, names: list[str], low: float) -> None:
    """Configuration names under the bars, the PSNR axis from ``low`` (never below 0 dB), the
    legend and a light grid."""
    ax.set_xticks(list(range(len(names))), names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("zero-shot GAN PSNR (dB)")
    ax.set_ylim(bottom=max(0.0, low))
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
