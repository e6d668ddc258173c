"""Fuzzing the recipe readers (inference/metadata.py): whatever text, PNG chunk or JSON they are
handed, they give something valid or raise a JobError, never anything else."""

from __future__ import annotations

import io
import json
import math
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from inference import metadata
from inference.jobs import JOB_KINDS, MAX_SEED, Job, JobError
from inference.metadata import job_from_recipe, parse_parameters, read_recipe

# The whole file runs in about 30 s on a shared two-core machine.
FUZZ = settings(deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])

IMAGE = Image.new("RGB", (24, 16), (1, 2, 3))
MASK = Image.new("L", (24, 16), 255)

# A1111's own re_param, as findall runs it: what metadata._pairs must find, pair for pair.
A1111_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')

# Text made mostly of what infotexts are made of, so the parser's corners get hit.
SYNTAX = st.sampled_from(list(' :,"\\-/\n\r\t') + ["Steps", "Seed", "CFG scale", "Size", "Negative prompt:",
                                                   "512x512", "7.5", "-1", "1e999", "nan", "é", "猫", "\x00"])
INFOTEXT = st.one_of(st.text(max_size=300), st.lists(SYNTAX | st.text(max_size=4), max_size=60).map("".join))

SURROGATES = st.sampled_from(["\udce9", "\ud800", "caf\udce9"])  # what bytes that are not UTF-8 decode to


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """`good` seven times in eight, so most examples get past the first check to the next."""
    return st.integers(0, 7).flatmap(lambda i: bad if i == 0 else good)


TEXT = mostly(st.text(max_size=12), SURROGATES)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=8)


def _huge() -> int:
    return 10**5000  # past the 4,300 digits int() and repr() take (a Python caller's value, not JSON)


def recipes(values: st.SearchStrategy) -> st.SearchStrategy:
    """Recipes shaped like ours, each part mostly plausible and otherwise any of `values`."""
    number = mostly(st.integers(-10, 10_000) | st.floats(allow_nan=True, allow_infinity=True), values)
    text = mostly(TEXT, values)
    lora = mostly(st.fixed_dictionaries({"source": text}, optional={"scale": number}), values)
    model = mostly(st.fixed_dictionaries({"source": mostly(st.sampled_from(["builtin", "m/sd", ""]) | text, values)},
                                         optional={"loras": mostly(st.lists(lora, max_size=3), values),
                                                   "config": text | st.none(), "preset": TEXT | st.none(),
                                                   "sha256": TEXT | st.none()}), values)
    mask_options = mostly(st.fixed_dictionaries({}, optional={
        "grow": number, "feather": number, "crop_padding": number | st.none(),
        "match_colors": mostly(st.booleans(), values)}), values)
    fields = {
        "prompt": text, "negative_prompt": text, "model": model,
        "seed": mostly(st.integers(-5, MAX_SEED + 5), number), "steps": mostly(st.integers(-1, 210), number),
        "guidance": mostly(st.floats(-1, 120) | st.none(), number), "image_guidance": number,
        "strength": mostly(st.floats(-0.5, 1.5), number),
        "width": mostly(st.integers(0, 9000) | st.none(), number),
        "height": mostly(st.integers(0, 9000) | st.none(), number),
        "device": text | st.none(), "dtype": TEXT | st.none(), "scheduler": text | st.none(),
        "left": number, "top": number, "right": number, "bottom": number, "mask_options": mask_options,
        "target": values, "image_size": values,
    }
    job = mostly(st.fixed_dictionaries({"kind": mostly(st.sampled_from(list(JOB_KINDS)), values)}, optional=fields),
                 values)
    return mostly(st.fixed_dictionaries({"format": mostly(st.just(1), values), "job": job},
                                        optional={"inputs": values, "source": TEXT, "timings": values}), values)


IMAGES = st.sampled_from([{}, {"image": IMAGE}, {"image": IMAGE, "mask": MASK}, {"mask": MASK}])


def assert_a_valid_job(job: Job) -> None:
    """A job that may run and whose recipe gives it back exactly (no NaN turned into null)."""
    assert isinstance(job, Job)
    data = job.to_dict()
    text = json.dumps(data, allow_nan=False)  # raises on any inf or NaN
    assert Job.from_dict(json.loads(text), image=getattr(job, "image", None), mask=getattr(job, "mask", None)) == job
    assert 0 <= job.seed <= MAX_SEED
    for name in ("guidance", "image_guidance", "strength"):
        value = getattr(job, name, None)
        assert value is None or (isinstance(value, float) and math.isfinite(value))
    text.encode("utf-8")


def rebuild(recipe, images) -> None:
    try:
        job = job_from_recipe(recipe, **images)
    except JobError as error:
        assert error.message and "\n" not in error.message and "Traceback" not in error.message
        return
    assert_a_valid_job(job)


@FUZZ
@given(INFOTEXT)
def test_parse_parameters_on_any_text(text):
    parsed = parse_parameters(text)
    assert isinstance(parsed["prompt"], str) and isinstance(parsed["negative_prompt"], str)
    for key, value in parsed.items():
        assert isinstance(key, str) and type(value) in (str, int, float)
    rebuild(metadata._recipe_from_parameters(parsed), {"image": IMAGE})


@settings(FUZZ, max_examples=4000)
@given(st.lists(SYNTAX | st.sampled_from(list("ab1_ ")), max_size=40).map("".join) | st.text(max_size=40))
def test_the_one_pass_scanner_finds_what_a1111s_pattern_finds(line):
    line = line.replace("\n", "")  # the scanner sees one line
    assert metadata._pairs(line) == A1111_RE_PARAM.findall(line)


def png_with(parameters: str | None, recipe: str | None, compress: bool) -> bytes:
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters, zip=compress)
    if recipe is not None:
        info.add_itxt("quickbrush", recipe, zip=compress)
    out = io.BytesIO()
    IMAGE.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


@settings(FUZZ, max_examples=800)
@given(parameters=st.none() | INFOTEXT,
       recipe=st.none() | st.text(max_size=40) | recipes(JSON).map(lambda r: json.dumps(r, ensure_ascii=True)),
       compress=st.booleans(), images=IMAGES)
def test_read_recipe_on_pngs_with_any_text_chunks(parameters, recipe, compress, images):
    try:
        found = read_recipe(io.BytesIO(png_with(parameters, recipe, compress)))
    except JobError as error:
        assert error.message and "\n" not in error.message
        return
    if found is None:
        return
    assert isinstance(found, dict) and isinstance(found.get("job"), dict)
    rebuild(found, images)


@settings(FUZZ, max_examples=2000)
@given(recipes(JSON | st.builds(_huge)), IMAGES)
def test_job_from_recipe_on_any_json_like_dict(recipe, images):
    rebuild(recipe, images)
