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
CAPABILITIES = ("generate", "inpaint", "edit", "decoder", "lora")  # inference.models.catalog.CAPABILITIES


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
                        "a model's first use, a few minutes, and remembered), torch or openvino"
                        + (" (default: auto)" if default else " (default: the recipe's)"))
    parser.add_argument("--fast-decode", action="store_true",
                        help="decode with the model's tiny decoder (TAESD: a vae_tiny folder, or taesd in the "
                        "models folder): about 10x faster on a CPU, slightly softer; without one, decode in full")


def _runtime(value: str | None) -> str | None:
    """A job's runtime from --runtime: None is the job's own "auto"."""
    return None if value in (None, "auto") else value


def build_parser() -> argparse.ArgumentParser:
    from inference.version import version

    parser = argparse.ArgumentParser(prog="quickbrush-cli", description="Quickbrush inference from the command line.")
    parser.add_argument("--version", action="version", version=f"quickbrush-cli {version()}")
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

    p = sub.add_parser("models", help="list, download, remove, import and describe models",
                       description="Without a subcommand: models list.")
    p.add_argument("--no-hub-cache", action="store_true", help="do not list the Hugging Face cache")
    models = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    m = models.add_parser("list", help="the catalog and the installed models, one line each: id, size, "
                          "capabilities, licence, installed or not")
    m.add_argument("--no-hub-cache", action="store_true", default=argparse.SUPPRESS,
                   help="do not list the Hugging Face cache")
    m.add_argument("--capability", choices=CAPABILITIES, help="only models that can do this")
    m = models.add_parser("download", help="download a catalog model or any Hub repository (owner/name)")
    m.add_argument("id", help="a catalog id (see models list) or a Hub repository id")
    m.add_argument("--accept-licence", "--accept-license", action="store_true",
                   help="accept the model's licence (needed once for a non-commercial or unknown licence)")
    m = models.add_parser("remove", help="delete a downloaded or imported model and say how much space came back")
    m.add_argument("id", help="a catalog id, a Hub repository id, or an imported model's name")
    m = models.add_parser("import", help="copy a model file or folder into Quickbrush's models folder")
    m.add_argument("path", help="a diffusers folder, a .safetensors checkpoint or LoRA, or a tiny decoder folder")
    m.add_argument("--name", help="the name it gets in the models folder (default: the file's or folder's)")
    m.add_argument("--allow-pickle", action="store_true",
                   help="accept a .ckpt/.bin/.pt pickle checkpoint: it is read weights-only (no code runs) "
                   "and saved as .safetensors. Only for files you trust: pickles can carry code")
    m = models.add_parser("info", help="everything known about a model")
    m.add_argument("id", help="a catalog id, a Hub repository id, or an installed model's name")
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


# --------------------------------------------------------------------------- models

_TASK_CAPABILITIES = {"all": ("generate", "inpaint", "edit"), "text2img": ("generate",), "inpaint": ("inpaint",),
                      "edit": ("edit",), "lora": ("lora",)}
_STATES = {"installed": "installed", "partial": "partial (resumable)", "absent": "not installed"}


def _models(args: argparse.Namespace) -> int:
    command = args.models_command or "list"
    return {"list": _models_list, "download": _models_download, "remove": _models_remove,
            "import": _models_import, "info": _models_info}[command](args)


def _human(n: float) -> str:
    from inference.models.downloads import human_bytes

    return human_bytes(n)


def _local_models(args: argparse.Namespace) -> list:
    """Installed models that are not catalog downloads: the built-in one is the catalog's, and a
    catalog repository in the Hub cache is listed by its catalog id."""
    from inference.models import catalog
    from inference.models.store import list_models

    repos = {e.repo.lower() for e in catalog.entries() if e.repo}
    return [m for m in list_models(include_hub_cache=not getattr(args, "no_hub_cache", False))
            if m.where != "builtin" and not (m.where == "hub-cache" and m.name.lower() in repos)]


def _local_id(info) -> str:
    """What names a local model on the command line: a models-folder entry's file or folder name
    (store.locate finds it there), else its source (a Hub cache repo id)."""
    return Path(info.source).name if info.where in ("file", "folder") else info.source


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def _models_list(args: argparse.Namespace) -> int:
    from inference.models import catalog, downloads
    from inference.models.store import models_dir

    capability = getattr(args, "capability", None)
    rows = []
    for e in catalog.entries(capability):
        size = e.download_bytes or (_disk_bytes(Path(downloads.installed_path(e) or "")) if e.kind == "builtin"
                                    else 0)
        licence = e.licence + ("" if e.commercial or "non-commercial" in e.licence.lower() else " (non-commercial)")
        extra = e.name + (f"; large: needs about {_human(e.memory_bytes)} of memory" if e.large else "")
        rows.append((e.id, _human(size) if size else "?", ",".join(e.capabilities) or "-", licence,
                     _STATES.get(downloads.state(e), downloads.state(e)), extra))
    for info in _local_models(args):
        capabilities = _TASK_CAPABILITIES.get(info.task, ())
        if capability and capability not in capabilities:
            continue
        size = _disk_bytes(Path(info.source)) if info.where in ("file", "folder") else 0
        rows.append((_local_id(info), _human(size) if size else "?", ",".join(capabilities) or "?",
                     "unknown (imported)" if info.where != "hub-cache" else "see the model card", "installed",
                     f"{info.task} {info.where} {_printable(info.source)}"))
    if not rows:
        print(f"No models. Download one (quickbrush-cli models download sd-turbo) or import one "
              f"(quickbrush-cli models import FILE) into {_printable(models_dir())}.")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + "  " + row[5])
    return 0


def _entry(text: str):
    """A catalog entry by id, or by repository id (any Hub repository gets an ad-hoc entry)."""
    from inference.jobs import BadInput
    from inference.models import catalog

    try:
        return catalog.entry(text)
    except BadInput:
        if "/" in text and not Path(text).exists():
            return catalog.for_repo(text)
        raise


def _accept_licences(e, accept: bool) -> None:
    from inference.models import catalog
    from inference.models.downloads import LicenceRequired

    for x in catalog.requires(e):
        if catalog.licence_accepted(x):
            continue
        if not accept and sys.stdin is not None and sys.stdin.isatty():
            print(f"{x.name} is under the {x.licence}: {x.licence_url}", file=sys.stderr)
            try:
                accept = input("Accept this licence? [y/N] ").strip().lower() in ("y", "yes")
            except EOFError:
                accept = False
        if not accept:
            raise LicenceRequired(f"{x.name} is under the {x.licence}, which must be accepted before it is "
                                  f"downloaded: read it at {x.licence_url}, then pass --accept-licence.")
        catalog.accept_licence(x)


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


class _ProgressLine:
    """One progress line on stderr: rewritten in place on a terminal, a new line every few seconds
    in a log."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.width = 0

    def show(self, text: str, final: bool = False) -> None:
        import time

        now = time.monotonic()
        if self.quiet or (not final and now - self.last < (0.2 if self.tty else 2.0)):
            return
        self.last = now
        text = _printable(text)
        if self.tty:
            sys.stderr.write("\r" + text.ljust(self.width) + ("\n" if final else ""))
            self.width = len(text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self.tty and self.width and not self.quiet:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self.width = 0


def _download_text(e, progress) -> str:
    if progress.stage == "verify":
        return f"{e.id}: checking {progress.current or 'the files'}…"
    done, total = progress.done, progress.total
    parts = [f"{e.id}: {_human(done)} of {_human(total)}" + (f" ({100 * done // total}%)" if total else "")]
    if progress.bytes_per_s:
        parts.append(f"{_human(progress.bytes_per_s)}/s")
    if progress.seconds_left is not None and progress.stage != "done":
        parts.append(f"{_duration(progress.seconds_left)} left")
    if progress.current and progress.stage != "done":
        parts.append(progress.current)
    return ", ".join(parts)


def _models_download(args: argparse.Namespace) -> int:
    from inference.jobs import Cancelled
    from inference.models.downloads import Download

    e = _entry(args.id)
    _accept_licences(e, args.accept_licence)
    line = _ProgressLine(args.quiet)
    download = Download(e, on_progress=lambda p: line.show(_download_text(e, p), final=p.stage == "done"))
    box: dict = {}

    def fetch() -> None:
        try:
            box["path"] = download.run()
        except BaseException as exc:  # handed to the main thread, which reports it
            box["error"] = exc

    thread = threading.Thread(target=fetch, name="quickbrush-download", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        download.cancel()  # the worker stops at its next chunk; the partial file stays for resuming
        thread.join(60)
        box.setdefault("error", Cancelled())
    finally:
        line.end()
    error = box.get("error")
    if isinstance(error, Cancelled):
        print(f"quickbrush-cli: cancelled; what was fetched is kept: run quickbrush-cli models download {args.id} "
              "again to continue.", file=sys.stderr)
        return EXIT_CANCELLED
    if error is not None:
        raise error
    print(f"{e.id} installed: {_printable(box.get('path'))}")
    return 0


def _local_model(name: str):
    """An installed model that is not a catalog download, by its id in models list."""
    for info in _local_models(argparse.Namespace(no_hub_cache=False)):
        if name in (_local_id(info), info.name, info.source):
            return info
    return None


def _models_remove(args: argparse.Namespace) -> int:
    from inference.jobs import BadInput, ModelMissing
    from inference.models import downloads

    try:
        e = _entry(args.id)
    except BadInput:
        e = None
    if e is not None and downloads.state(e) != "absent":
        freed = downloads.remove(e)
        print(f"Removed {e.id}: {_human(freed)} freed.")
        return 0
    info = _local_model(args.id)
    if info is not None and info.where in ("file", "folder"):
        path = Path(info.source)
        freed = _disk_bytes(path)
        import shutil

        shutil.rmtree(path) if path.is_dir() else path.unlink()
        print(f"Removed {_local_id(info)}: {_human(freed)} freed.")
        return 0
    if info is not None:  # a repository in the Hub cache that the catalog did not download
        freed = downloads.remove(_entry(info.source))
        print(f"Removed {info.source}: {_human(freed)} freed.")
        return 0
    if e is not None:
        raise ModelMissing(f"{e.id} is not installed, so there is nothing to remove.")
    raise ModelMissing(f"There is no installed model called {args.id!r}.", "See quickbrush-cli models list.")


def _models_import(args: argparse.Namespace) -> int:
    from inference.models import importer

    line = _ProgressLine(args.quiet)
    name = Path(args.path).name
    try:
        imported = importer.import_path(
            args.path, allow_pickle=args.allow_pickle, name=args.name,
            on_progress=lambda done, total: line.show(f"{name}: {_human(done)} of {_human(total)}",
                                                      final=done >= total))
    except importer.PickleRefused as exc:
        raise importer.PickleRefused(f"{exc.message} If you trust where it comes from, --allow-pickle converts "
                                     "it to .safetensors without running any code in it.", exc.details) from None
    finally:
        line.end()
    detected = imported.detected
    how = "linked, no extra space used" if imported.linked else f"{_human(imported.bytes)} copied"
    converted = "; converted from a pickle checkpoint" if detected.format == "pickle" else ""
    use = {"lora": f"--lora {_printable(imported.path)}", "decoder": "--fast-decode"}.get(
        detected.kind, f"--model {imported.name}")
    print(f"Imported {imported.name}: {detected.describe()} ({how}{converted}). Use it with {use}.")
    return 0


def _models_info(args: argparse.Namespace) -> int:
    from inference.jobs import BadInput
    from inference.models import catalog, downloads

    try:
        e = _entry(args.id)
    except BadInput:
        info = _local_model(args.id)
        if info is None:
            raise
        return _local_info(info)
    lines = [f"{e.id}: {e.name}", f"  {e.description}", f"  kind: {e.kind}"]
    if e.repo:
        lines.append(f"  repository: {e.repo} at {e.revision or 'the newest revision (main)'}")
    if e.files:
        lines.append(f"  files: {', '.join(e.files)}")
    lines.append(f"  capabilities: {', '.join(e.capabilities) or 'unknown until downloaded'}")
    if e.preset:
        lines.append(f"  preset: {_preset_text(e.preset)}")
    if e.base:
        lines.append(f"  applies to: {e.base}")
    if e.pipeline:
        problem = catalog.pipeline_problem(e)
        lines.append(f"  pipeline: {e.pipeline}" + (f" ({problem})" if problem else ""))
    sizes = [f"download {_human(e.download_bytes)}" if e.download_bytes else "download size unknown"]
    if e.memory_bytes:
        sizes.append(f"about {_human(e.memory_bytes)} of memory when loaded" + (" (a large model)" if e.large else ""))
    lines.append(f"  size: {', '.join(sizes)}")
    lines.append(f"  licence: {e.licence} ({e.licence_url}); commercial use: {'yes' if e.commercial else 'no'}; "
                 f"accepted: {'yes' if catalog.licence_accepted(e) else 'no'}")
    state = downloads.state(e)
    where = downloads.installed_path(e) if state == "installed" else None
    lines.append(f"  state: {_STATES.get(state, state)}" + (f" at {_printable(where)}" if where else ""))
    print("\n".join(lines))
    return 0


def _preset_text(name: str) -> str:
    from inference.models.presets import match_preset

    try:
        preset = match_preset((), name)
    except KeyError:
        return f"{name} (not in this version's presets)"
    scheduler = preset.scheduler or "the model's own scheduler"
    steps = f"{preset.steps} step{'s' if preset.steps != 1 else ''}"
    return f"{preset.name}: {steps} (up to {preset.max_steps}), guidance {preset.guidance:g}, {scheduler}"


def _local_info(info) -> int:
    from inference.models import importer

    lines = [f"{_local_id(info)}: {info.name}", f"  where: {info.where}, {_printable(info.source)}"]
    path = Path(info.source)
    if path.exists():
        detected = importer.inspect(path)
        lines.append(f"  what: {detected.describe()} ({detected.format})")
        if detected.config:
            lines.append(f"  loads offline with the shipped {detected.config} configs")
        lines.append(f"  size: {_human(_disk_bytes(path))}")
    lines.append(f"  capabilities: {', '.join(_TASK_CAPABILITIES.get(info.task, ())) or 'unknown'}")
    lines.append("  licence: unknown (imported: see where it came from)" if info.where != "hub-cache"
                 else "  licence: see the model card")
    print("\n".join(lines))
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
            return _models(args)
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
