"""What do themes do? Variations within a theme against pieces across themes.

    python bench/themes.py [--model NAME|PATH] [--tunes ../shared/corpora/cre/MIDI]

Six themes, four pieces of 8 bars from each. For the rhythm (onset histogram) and the
pitch classes (duration-weighted histogram), the mean L1 distance between pieces of one
theme, against pieces of different themes (`musegan.metrics.theme_consistency`); a ratio
under 1 means a theme gives variations on one idea. Themes come two ways: encoded from six
real tunes (`Sampler.encode_theme`), and sampled by the theme GAN. Also prints how spread
out sampled themes are against encoded real ones (mean distance to their centroid).
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` (which numpy imports)
# for any script run from this folder: drop the folder from sys.path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from musegan.metrics import theme_consistency  # noqa: E402
from musegan.sampling import Sampler  # noqa: E402

DEFAULT_TUNES = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "cre" / "MIDI"


def spread(themes: torch.Tensor) -> float:
    return float((themes - themes.mean(0)).norm(dim=1).mean() / themes.size(1) ** 0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--tunes", default=str(DEFAULT_TUNES), help="a folder of real MIDI tunes")
    args = parser.parse_args()
    sampler = Sampler.from_pretrained(args.model)
    tunes = sorted(Path(args.tunes).glob("*.mid"))
    if len(tunes) < 6:
        print(f"need at least 6 MIDI tunes in {args.tunes}")
        return 1
    chosen = tunes[:: max(1, len(tunes) // 6)][:6]
    encoded = torch.cat([sampler.encode_theme(t) for t in chosen])
    sampled = sampler.sample_theme(6, seed=0)
    print(f"model {sampler.name}; 6 themes x 4 pieces x 8 bars; ratio = within / across\n")
    print(f"{'themes':10s}{'rhythm within/across':>26s}{'ratio':>8s}"
          f"{'pitch within/across':>26s}{'ratio':>8s}")
    for name, themes in (("encoded", encoded), ("sampled", sampled)):
        groups = [sampler.generate(n=4, bars=8, theme=theme, seed=i)
                  for i, theme in enumerate(themes)]
        result = theme_consistency(groups)
        r, p = result["rhythm"], result["pitch_classes"]
        print(f"{name:10s}{r['within']:>15.2f} / {r['across']:<8.2f}{r['ratio']:>8.2f}"
              f"{p['within']:>15.2f} / {p['across']:<8.2f}{p['ratio']:>8.2f}")
    every = torch.cat([sampler.encode_theme(t) for t in tunes[::10]])
    print(f"\nspread: sampled themes {spread(sampler.sample_theme(len(every), seed=1)):.2f}, "
          f"encoded real themes {spread(every):.2f} ({len(every)} tunes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
