"""`python -m train <command> ...`: one entry point, one module per command.

Each command module exposes `add_arguments(parser)` and `main(args) -> int`.
Errors that are the user's (bad paths, bad data, incompatible checkpoints) are printed as
one line and exit with status 2, never as a traceback.
"""

import argparse
import importlib
import logging
import sys

# command name -> (module, one-line help)
COMMANDS = {
    "gan": ("train.gan", "train the 3D-GAN generator and discriminator"),
    "eval-gen": ("train.eval_gen", "evaluate a generator: COV / MMD / 1-NNA, validity, novelty"),
    "sheet": ("train.sheet", "render a contact sheet of generated chairs"),
    "photo-encoder": ("train.photo_encoder", "fine-tune the ImageNet-pretrained photo encoder on rendered chairs"),
    "eval-photo": ("train.eval_photo", "photo -> chair: AP / IoU on IKEA photos and held-out renders"),
    "classify": ("train.classify", "ModelNet10 classification with discriminator features + linear SVM"),
    "directions": ("train.directions", "fit named semantic + GANSpace latent directions into a checkpoint"),
    "shape-encoder": ("train.shape_encoder", "train the shape encoder (voxels -> z in one pass) for a generator"),
    "autoencoder": ("train.autoencoder", "generator v3 stage 1: train the voxel autoencoder (shape encoder + decoder)"),
    "prior": ("train.prior", "generator v3 stage 2: fit the Gaussian-mixture prior to the autoencoder's codes"),
    "atlas": ("train.atlas", "project the training chairs into z: 2-D latent atlas, projection IoU"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    wanted = (argv if argv is not None else sys.argv[1:])[:1]
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Import only the module that runs (and all of them for --help), so that one
        # command's optional dependencies never slow down or break another.
        if not wanted or wanted[0] in (name, "-h", "--help"):
            modules[name] = importlib.import_module(module_name)
            modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return modules[args.command].main(args) or 0
    except (ValueError, FileNotFoundError) as err:
        # Our own error classes (vaegan.errors) all derive from these two.
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
