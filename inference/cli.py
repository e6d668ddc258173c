"""quickbrush-cli: the inference core without the GUI.

Every command builds a Job, runs it on the same Worker the editor uses, and writes a PNG that
carries its recipe. Failures print one line to stderr and exit non-zero; --verbose adds details.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Sequence

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130
RUNTIMES = ("auto", "torch", "openvino")  # inference.runtimes.RUNTIMES, without importing it for --help


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512, not {text!r}") from None
    return width, height


def _lora(text: str) -> tuple[str, float]:
    source, _, scale = text.rpartition(":")
    try:
        return source, float(scale)
    except ValueError:  # no scale given (or a Windows drive colon): the whole text is the path
        return text, 1.0


def _common(parser: argparse.ArgumentParser, image_kind: bool = True) -> None:
    parser.add_argument("-m", "--model", help="model folder, .safetensors checkpoint, repo id, or 'builtin' "
                        "(default: the built-in model, else the first installed one)")
    parser.add_argument("--lora", action="append", type=_lora, default=[], metavar="FILE[:SCALE]",
                        help="apply a LoRA (repeatable)")
    parser.add_argument("--config", help="for a single-file checkpoint: diffusers folder or repo id to take configs from")
    parser.add_argument("--preset", help="force a few-step preset (sd-turbo, lcm-lora, tcd, ...)")
    parser.add_argument("-n", "--negative", default="", help="negative prompt")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("-g", "--guidance", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--seed", type=int, default=-1, help="seed (default: random, recorded in the PNG)")
    parser.add_argument("--scheduler", help="scheduler (default: the model's few-step choice)")
    parser.add_argument("--size", type=_size, metavar="WxH", help="output size" if not image_kind else
                        "output size (default: the input image's)")
    parser.add_argument("--device", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--dtype", help="auto, float32, float16, bfloat16 or int8 (int8: OpenVINO only, its UNet "
                        "quantised once; default: auto)")
    _runtime_options(parser)
    parser.add_argument("-o", "--output", help="output PNG path (default: quickbrush-<kind>-<seed>.png)")


def _runtime_options(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument("--runtime", choices=RUNTIMES, default=default,
                        help="what runs a Stable Diffusion model: auto (the fastest for this computer, timed on "
                        "a model's first use, about a minute, and remembered), torch or openvino"
                        + (" (default: auto)" if default else " (default: the recipe's)"))
    parser.add_argument("--fast-decode", action="store_true",
                        help="decode with the model's tiny decoder (TAESD: a vae_tiny folder, or taesd in the "
                        "models folder): about 10x faster on a CPU, slightly softer; without one, decode in full")


def _runtime(value: str | None) -> str | None:
    """A job's runtime from --runtime: None is the job's own "auto"."""
    return None if value in (None, "auto") else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quickbrush-cli", description="Quickbrush inference from the command line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="print error details")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="text to image")
    p.add_argument("prompt")
    _common(p, image_kind=False)

    p = sub.add_parser("vary", help="image to image")
    p.add_argument("image")
    p.add_argument("prompt")
    p.add_argument("-s", "--strength", type=float, default=0.6, help="0 keeps the image, 1 ignores it (default 0.6)")
    _common(p)

    p = sub.add_parser("inpaint", help="fill the white part of a mask")
    p.add_argument("image")
    p.add_argument("mask", help="mask image of the same size: white = change")
    p.add_argument("prompt")
    p.add_argument("-s", "--strength", type=float, default=1.0)
    p.add_argument("--grow", type=int, default=4, help="grow the mask by N px (negative shrinks)")
    p.add_argument("--feather", type=int, default=8, help="soft border width in px")
    p.add_argument("--padding", type=int, default=32, help="context around the mask when cropping")
    p.add_argument("--no-crop", action="store_true", help="run on the whole image instead of a crop around the mask")
    p.add_argument("--no-color-match", action="store_true", help="do not match colours to the surroundings")
    _common(p)

    p = sub.add_parser("outpaint", help="extend the canvas and fill the new area")
    p.add_argument("image")
    p.add_argument("prompt")
    for side in ("left", "top", "right", "bottom"):
        p.add_argument(f"--{side}", type=int, default=0, help=f"pixels to add on the {side}")
    p.add_argument("--all", type=int, default=0, help="pixels to add on every side")
    p.add_argument("--feather", type=int, default=16)
    _common(p)

    p = sub.add_parser("edit", help="instruction edit (InstructPix2Pix)")
    p.add_argument("image")
    p.add_argument("instruction")
    p.add_argument("--image-guidance", type=float, default=1.5, help="how closely to keep the input (default 1.5)")
    _common(p)

    p = sub.add_parser("rerun", help="run the recipe stored in a Quickbrush PNG again")
    p.add_argument("recipe_png")
    p.add_argument("--image", help="input image for vary, inpaint, outpaint and edit recipes")
    p.add_argument("--mask", help="mask for inpaint recipes")
    p.add_argument("-m", "--model", help="use another model than the recipe's")
    p.add_argument("--seed", type=int, help="use another seed than the recipe's")
    p.add_argument("--device", help="auto, cpu, cuda or mps")
    _runtime_options(p, default=None)
    p.add_argument("-o", "--output")

    p = sub.add_parser("models", help="list models usable offline")
    p.add_argument("--no-hub-cache", action="store_true", help="do not list the Hugging Face cache")
    return parser


def _model_ref(args: argparse.Namespace):
    from inference.jobs import LoraRef, ModelRef
    from inference.models.store import default_model

    return ModelRef(
        source=args.model or default_model(),
        loras=tuple(LoraRef(src, scale) for src, scale in args.lora),
        config=args.config,
        preset=args.preset,
    )


def _job_from_args(args: argparse.Namespace):
    from inference import jobs
    from inference.images import open_image, open_mask

    width, height = args.size if args.size else (None, None)
    common = dict(
        prompt=getattr(args, "prompt", getattr(args, "instruction", "")), negative_prompt=args.negative,
        model=_model_ref(args), seed=args.seed, steps=args.steps, guidance=args.guidance, width=width,
        height=height, device=args.device, dtype=args.dtype, scheduler=args.scheduler,
        runtime=_runtime(args.runtime), decoder="tiny" if args.fast_decode else None,
    )
    inputs: dict[str, str] = {}
    if args.command == "generate":
        return jobs.Generate(**common), inputs
    inputs["image"] = str(Path(args.image).resolve())
    image = open_image(args.image)
    if args.command == "vary":
        return jobs.Vary(image=image, strength=args.strength, **common), inputs
    if args.command == "inpaint":
        inputs["mask"] = str(Path(args.mask).resolve())
        options = jobs.MaskOptions(grow=args.grow, feather=args.feather,
                                   crop_padding=None if args.no_crop else args.padding,
                                   match_colors=not args.no_color_match)
        return jobs.Inpaint(image=image, mask=open_mask(args.mask), strength=args.strength, mask_options=options,
                            **common), inputs
    if args.command == "outpaint":
        sides = {s: getattr(args, s) or args.all for s in ("left", "top", "right", "bottom")}
        return jobs.Outpaint(image=image, mask_options=jobs.MaskOptions(grow=0, feather=args.feather), **sides,
                             **common), inputs
    if args.command == "edit":
        return jobs.Edit(image=image, image_guidance=args.image_guidance, **common), inputs
    raise AssertionError(args.command)


def _rerun_job(args: argparse.Namespace):
    from inference import jobs
    from inference.images import open_image, open_mask
    from inference.metadata import job_from_recipe, read_recipe, recipe_job_kind

    recipe = read_recipe(args.recipe_png)
    if recipe is None:
        raise jobs.BadInput(f"{Path(args.recipe_png).name} has no Quickbrush or AUTOMATIC1111 recipe in it.")
    cls = recipe_job_kind(recipe)
    recorded = recipe.get("inputs")
    if not isinstance(recorded, dict):  # a damaged or hand-made recipe: ask for the inputs
        recorded = {}
    images = {}
    inputs = {}
    for name, needed in (("image", cls.needs_image), ("mask", cls.needs_mask)):
        if not needed:
            continue
        path = getattr(args, name) or recorded.get(name)
        if not isinstance(path, str) or not path or not Path(path).exists():
            raise jobs.BadInput(
                f"This is a {cls.kind} recipe: pass the input with --{name}.",
                f"The recipe's {name} was {recorded.get(name) or 'not recorded'}.",
            )
        images[name] = open_mask(path) if name == "mask" else open_image(path)
        inputs[name] = str(Path(path).resolve())
    job = job_from_recipe(recipe, **images)
    changes = {}
    if args.model:
        changes["model"] = jobs.ModelRef(args.model)
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.device:
        changes["device"] = args.device
    if args.runtime is not None:
        changes["runtime"] = _runtime(args.runtime)
    if args.fast_decode:
        changes["decoder"] = "tiny"
    return (job.replace(**changes) if changes else job), inputs


def _list_models(args: argparse.Namespace) -> int:
    from inference.models.store import list_models, models_dir

    models = list_models(include_hub_cache=not args.no_hub_cache)
    if not models:
        print(f"No models installed. Put a diffusers folder or a .safetensors checkpoint in {models_dir()}.")
        return 0
    width = max(len(m.name) for m in models)
    for info in models:
        print(f"{info.name:<{width}}  {info.task:<9} {info.where:<9} {info.source}")
    return 0


def _run(job, output: str | None, inputs: dict[str, str], verbose: bool, quiet: bool = False) -> int:
    from tqdm import tqdm

    from inference.metadata import save_png
    from inference.worker import Worker

    done = threading.Event()
    box: dict = {}
    bar = tqdm(total=job.steps or 1, desc=job.kind, unit="step", file=sys.stderr, leave=False, disable=quiet)

    def on_progress(progress) -> None:
        if progress.stage == "prepare" and progress.text and not quiet:
            # A model's first use here converts and times it (a minute, once): say what it does.
            bar.write(f"{job.kind}: {_printable(progress.text)}…", file=sys.stderr)
        bar.total = progress.total
        bar.n = progress.step
        bar.refresh()

    def on_result(result) -> None:
        box["result"] = result
        done.set()

    worker = Worker(on_progress=on_progress, on_result=on_result)
    job_id = worker.submit(job)
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        worker.cancel(job_id)
        done.wait(30)
    finally:
        bar.close()
        worker.shutdown(cancel=True, timeout=5)
    result = box.get("result")
    if result is None or result.cancelled:
        print("quickbrush-cli: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    if result.error is not None:
        _error(result.error, verbose)
        return EXIT_ERROR
    path = Path(output or f"quickbrush-{result.job.kind}-{result.job.seed}.png")
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    save_png(path, result.image, result.job, timings=dict(result.timings), model_info=dict(result.model_info),
             inputs=inputs or None)
    times = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items() if v)
    print(f"{_printable(path)}  ({result.image.width}x{result.image.height}, seed {result.job.seed}, "
          f"{result.job.steps} steps; {times})")
    if verbose and result.model_info.get("path"):
        print(f"runtime: {result.model_info['path']}")
    return 0


def _printable(text: object) -> str:
    """A path or message any terminal can print: bytes of a file name that are not UTF-8
    (surrogates, as Python decodes them) become U+FFFD instead of an encoding error."""
    return os.fsencode(str(text)).decode("utf-8", "replace") if os.name == "posix" else str(text)


def _error(error: BaseException, verbose: bool) -> None:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    # One line, whatever the message holds.
    message = " ".join(_printable(message).split())
    print(f"quickbrush-cli: error: {message}", file=sys.stderr)
    details = getattr(error, "details", "")
    if verbose and details:
        print(_printable(details), file=sys.stderr)


def _logging(verbose: bool) -> logging.Handler:
    """Where log records go while the CLI runs. Without a handler, Python prints warnings and
    errors (the worker's log of an unexpected failure, with its traceback) to stderr, which
    would break the promise of one line; --verbose shows them."""
    handler: logging.Handler = logging.StreamHandler(sys.stderr) if verbose else logging.NullHandler()
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import warnings

    warnings.filterwarnings("ignore")
    args = build_parser().parse_args(argv)
    from inference.jobs import JobError

    handler = _logging(args.verbose)
    try:
        if args.command == "models":
            return _list_models(args)
        if args.command == "rerun":
            job, inputs = _rerun_job(args)
        else:
            job, inputs = _job_from_args(args)
        return _run(job, args.output, inputs, args.verbose, args.quiet)
    except JobError as exc:
        _error(exc, args.verbose)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("quickbrush-cli: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:  # one line, never a traceback; --verbose shows it
        _error(JobError(f"Something went wrong: {str(exc).strip()[:200] or 'an unexpected error'}"), args.verbose)
        if args.verbose:
            import traceback

            traceback.print_exc()
        return EXIT_ERROR
    finally:
        logging.getLogger().removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
