"""`python -m train sheet`: a contact sheet of generated chairs (model cards, README).

    python -m train sheet --checkpoint checkpoints/chair32 --out checkpoints/chair32/samples.png
"""

import os
from pathlib import Path

from vaegan import ChairPipeline
from vaegan.render import contact_sheet, render_grids


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or Hub repo id")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--n", type=int, default=32, help="number of chairs (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (default: 0)")
    parser.add_argument("--cols", type=int, default=8, help="chairs per row (default: 8)")
    parser.add_argument("--size", type=int, default=128, help="tile side in pixels (default: 128)")
    parser.add_argument("--level", type=float, default=0.5, help="iso-level (default: 0.5)")
    parser.add_argument("--no-clean", action="store_true", help="keep floating specks")


def main(args) -> int:
    pipe = ChairPipeline.from_pretrained(args.checkpoint)
    vox = pipe.generate(pipe.sample_latents(args.n, seed=args.seed))
    tiles = render_grids(vox, args.size, args.level, clean=not args.no_clean)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    contact_sheet(tiles, cols=args.cols).save(tmp)
    os.replace(tmp, out)
    print(f"{args.n} chairs (seed {args.seed}) -> {out}")
    return 0
