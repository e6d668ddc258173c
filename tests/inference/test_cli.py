"""quickbrush-cli as a user runs it: PNGs with recipes, and one-line errors for bad input."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from inference.cli import main
from inference.metadata import read_recipe


def cli(capsys, *args):
    code = main(["-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("quickbrush-cli: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray((np.random.RandomState(1).rand(72, 88, 3) * 255).astype("uint8")).save(path)
    return path


@pytest.fixture
def mask(tmp_path):
    path = tmp_path / "mask.png"
    m = Image.new("L", (88, 72), 0)
    m.paste(255, (20, 20, 50, 40))
    m.save(path)
    return path


def test_generate_writes_a_png_with_its_recipe(capsys, tmp_path, tiny_sd):
    out = tmp_path / "apple.png"
    code, stdout, err = cli(capsys, "generate", "red apple", "--model", tiny_sd, "--steps", 2, "--seed", 42, "-o", out)
    assert code == 0, err
    assert str(out) in stdout
    recipe = read_recipe(out)
    assert recipe["job"]["kind"] == "generate" and recipe["job"]["seed"] == 42 and recipe["job"]["steps"] == 2
    with Image.open(out) as image:
        assert image.size == (64, 64)
        assert "Steps: 2" in image.info["parameters"] and "Seed: 42" in image.info["parameters"]


def test_inpaint_and_rerun_reproduce_the_same_pixels(capsys, tmp_path, tiny_sd_inpaint, photo, mask):
    first = tmp_path / "first.png"
    code, _, err = cli(capsys, "inpaint", photo, mask, "a red apple", "-m", tiny_sd_inpaint, "--steps", 2, "-o", first)
    assert code == 0, err
    recipe = read_recipe(first)
    assert recipe["job"]["kind"] == "inpaint" and recipe["inputs"]["mask"] == str(mask)
    again = tmp_path / "again.png"
    code, _, err = cli(capsys, "rerun", first, "-o", again)
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))


def test_edit_writes_a_png(capsys, tmp_path, tiny_sd_pix2pix, photo):
    out = tmp_path / "edit.png"
    code, _, err = cli(capsys, "edit", photo, "make it snowy", "-m", tiny_sd_pix2pix, "--steps", 2, "-o", out)
    assert code == 0, err
    assert read_recipe(out)["job"]["image_guidance"] == 1.5
    assert Image.open(out).size == (88, 72)


def test_vary_and_outpaint(capsys, tmp_path, tiny_sd, tiny_sd_inpaint, photo):
    code, _, err = cli(capsys, "vary", photo, "x", "-m", tiny_sd, "--steps", 2, "-s", 0.5, "-o", tmp_path / "v.png")
    assert code == 0, err
    code, _, err = cli(capsys, "outpaint", photo, "x", "-m", tiny_sd_inpaint, "--steps", 2, "--right", 24,
                       "-o", tmp_path / "o.png")
    assert code == 0, err
    assert Image.open(tmp_path / "o.png").size == (112, 72)


def test_rerun_of_an_image_recipe_without_its_input_asks_for_it(capsys, tmp_path, tiny_sd, photo):
    out = tmp_path / "v.png"
    assert cli(capsys, "vary", photo, "x", "-m", tiny_sd, "--steps", 2, "-o", out)[0] == 0
    photo.unlink()
    code, _, err = cli(capsys, "rerun", out)
    assert_one_line_error(code, err, "--image")


def test_models_lists_installed_models(capsys, tmp_path, tiny_sd, tiny_lora, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    shutil.copytree(tiny_sd, store / "tiny-sd")
    shutil.copy(tiny_lora, store / "tiny-lora.safetensors")
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(store))
    code, out, _ = cli(capsys, "models", "--no-hub-cache")
    assert code == 0
    assert "tiny-sd" in out and "text2img" in out
    assert "tiny-lora" in out and "lora" in out


def test_generate_without_model_uses_an_installed_one(capsys, tmp_path, tiny_sd, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    shutil.copytree(tiny_sd, store / "tiny-sd")
    monkeypatch.setenv("QUICKBRUSH_MODELS", str(store))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "generate", "red apple", "--steps", 1, "--seed", 5)
    assert code == 0, err
    assert (tmp_path / "quickbrush-generate-5.png").exists()


def test_missing_model(capsys, tmp_path):
    code, _, err = cli(capsys, "generate", "x", "-m", tmp_path / "no-such-model")
    assert_one_line_error(code, err, "not found")


def test_no_network_and_no_cached_model(capsys):
    code, _, err = cli(capsys, "generate", "x", "-m", "someone/not-downloaded")
    assert_one_line_error(code, err, "not downloaded", "someone/not-downloaded")


def test_corrupt_image(capsys, tmp_path, tiny_sd, photo):
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo.read_bytes()[:200])
    code, _, err = cli(capsys, "vary", broken, "x", "-m", tiny_sd)
    assert_one_line_error(code, err, "broken.png", "damaged")


def test_not_an_image(capsys, tmp_path, tiny_sd):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    code, _, err = cli(capsys, "vary", text, "x", "-m", tiny_sd)
    assert_one_line_error(code, err, "notes.png")


def test_missing_image(capsys, tmp_path, tiny_sd):
    code, _, err = cli(capsys, "edit", tmp_path / "gone.png", "x", "-m", tiny_sd)
    assert_one_line_error(code, err, "gone.png", "does not exist")


def test_mask_of_another_size(capsys, tmp_path, tiny_sd_inpaint, photo):
    small = tmp_path / "small-mask.png"
    Image.new("L", (10, 10), 255).save(small)
    code, _, err = cli(capsys, "inpaint", photo, small, "x", "-m", tiny_sd_inpaint)
    assert_one_line_error(code, err, "10x10", "88x72")


def test_unwritable_output_is_one_line(capsys, tmp_path, tiny_sd):
    code, _, err = cli(capsys, "generate", "x", "-m", tiny_sd, "--steps", 1, "-o", tmp_path / "no" / "dir" / "x.png")
    assert_one_line_error(code, err, "x.png")


def test_real_process_prints_progress_and_no_traceback(tmp_path, tiny_sd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    ok = subprocess.run([sys.executable, "-m", "inference.cli", "generate", "apple", "-m", str(tiny_sd), "--steps", "3",
                         "-o", str(tmp_path / "a.png")], capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "3/3" in ok.stderr, "a progress bar on stderr"
    bad = subprocess.run([sys.executable, "-m", "inference.cli", "generate", "apple", "-m", str(tmp_path / "nope")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("quickbrush-cli: error:")


# --------------------------------------------------------------------------- bad input, one line


def run_cli(*args, code=None, timeout=300):
    """quickbrush-cli in a real process (argv may hold bytes); `code` runs first, as a patch."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    head = ["-c", f"import sys; {code}; from inference.cli import main; sys.exit(main(sys.argv[1:]))"] if code \
        else ["-m", "inference.cli"]
    return subprocess.run([sys.executable, *head, *args], capture_output=True, text=True, env=env, timeout=timeout,
                          errors="replace")


def assert_one_line_process_error(done, *needles):
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert_one_line_error(done.returncode, done.stderr, *needles)


def test_a_prompt_that_is_not_utf8_is_one_line(tmp_path, tiny_builtin):
    # A terminal in another encoding hands Python bytes it decodes with surrogateescape.
    done = run_cli("-q", "generate", b"caf\xe9 apple", "-m", str(tiny_builtin), "-o", str(tmp_path / "a.png"))
    assert_one_line_process_error(done, "prompt", "UTF-8")
    assert not (tmp_path / "a.png").exists()


def test_an_unexpected_failure_is_one_line_and_verbose_shows_the_traceback(tmp_path, tiny_builtin):
    boom = "import inference.engine as e; e.Engine.run = lambda *a, **k: 1 / 0"
    args = ("generate", "apple", "-m", str(tiny_builtin), "-o", str(tmp_path / "a.png"))
    assert_one_line_process_error(run_cli("-q", *args, code=boom), "something went wrong", "division by zero")
    verbose = run_cli("-q", "-v", *args, code=boom)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "ZeroDivisionError" in verbose.stderr


@pytest.mark.parametrize("flags, needle", [
    (("-g", "inf"), "guidance"),
    (("-g", "nan"), "guidance"),
    (("--steps", "0"), "steps"),
    (("--seed", str(2**40)), "seed"),
    (("--size", "8x8"), "width"),
    (("--lora", "style.safetensors:nan"), "LoRA scale"),
])
def test_numbers_out_of_range_are_one_line(capsys, tmp_path, tiny_builtin, flags, needle):
    out = tmp_path / "a.png"
    code, _, err = cli(capsys, "generate", "apple", "-m", tiny_builtin, *flags, "-o", out)
    assert_one_line_error(code, err, needle)
    assert not out.exists()


def test_edit_image_guidance_inf_is_one_line(capsys, tmp_path, tiny_builtin, photo):
    code, _, err = cli(capsys, "edit", photo, "make it blue", "-m", tiny_builtin, "--image-guidance", "inf",
                       "-o", tmp_path / "e.png")
    assert_one_line_error(code, err, "image guidance")


@pytest.mark.parametrize("flags, needle", [
    (("--grow", "100000"), "mask grow"),
    (("--feather", "-3"), "mask feather"),
    (("--padding", "-1"), "crop padding"),
])
def test_mask_options_out_of_range_are_one_line(capsys, tmp_path, tiny_builtin, photo, mask, flags, needle):
    code, _, err = cli(capsys, "inpaint", photo, mask, "x", "-m", tiny_builtin, *flags, "-o", tmp_path / "i.png")
    assert_one_line_error(code, err, needle)


def test_outpaint_margin_past_the_bound_is_one_line(capsys, tmp_path, tiny_builtin, photo):
    code, _, err = cli(capsys, "outpaint", photo, "x", "-m", tiny_builtin, "--right", "100000", "-o", tmp_path / "o.png")
    assert_one_line_error(code, err, "right margin")


def write_recipe_png(path, payload=None, parameters=None):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    if payload is not None:
        info.add_itxt("quickbrush", json.dumps(payload))
    Image.new("RGB", (32, 32)).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("changes, needle", [
    ({"guidance": "abc"}, "guidance"),
    ({"guidance": 1e308 * 10}, "guidance"),  # json writes Infinity, and reads it back
    ({"steps": "4"}, "steps"),
    ({"model": 3}, "model"),
    ({"model": {"source": "builtin", "loras": "x"}}, "LoRAs"),
    ({"kind": ["generate"]}, "Unknown job kind"),
])
def test_rerun_of_a_damaged_recipe_is_one_line(capsys, tmp_path, changes, needle):
    job = {"kind": "generate", "prompt": "apple", "seed": 1, "model": {"source": "builtin", "loras": []}, **changes}
    path = write_recipe_png(tmp_path / "r.png", {"format": 1, "job": job})
    code, _, err = cli(capsys, "rerun", path)
    assert_one_line_error(code, err, needle)


def test_rerun_with_damaged_inputs_asks_for_them(capsys, tmp_path, photo):
    job = {"kind": "vary", "prompt": "apple", "seed": 1, "strength": 0.5}
    for inputs in ("x", ["a"], {"image": 3}):
        path = write_recipe_png(tmp_path / "r.png", {"format": 1, "job": job, "inputs": inputs})
        code, _, err = cli(capsys, "rerun", path)
        assert_one_line_error(code, err, "--image")


def test_rerun_of_a_huge_one_line_parameters_chunk_is_one_line(tmp_path):
    # A1111's pattern took days over 30 MB of one line; the watchdog is the process timeout.
    path = write_recipe_png(tmp_path / "huge.png", parameters="a prompt\n" + "Steps: 4 " * 3_500_000)
    done = run_cli("-q", "rerun", str(path), timeout=120)
    assert_one_line_process_error(done, "huge.png", "too long")


# --------------------------------------------------------------------------- runtimes (issue 17)


@pytest.mark.parametrize("command", ["generate", "vary", "inpaint", "outpaint", "edit"])
def test_runtime_and_fast_decode_reach_the_job(command, photo, mask):
    from inference.cli import _job_from_args, build_parser

    inputs = {"generate": ["x"], "vary": [photo, "x"], "inpaint": [photo, mask, "x"],
              "outpaint": [photo, "x", "--all", "8"], "edit": [photo, "x"]}[command]
    base = [command, *map(str, inputs), "-m", "builtin"]
    job, _ = _job_from_args(build_parser().parse_args(base))
    assert (job.runtime, job.decoder) == (None, None), "auto and a full decode by default"
    job, _ = _job_from_args(build_parser().parse_args([*base, "--runtime", "openvino", "--fast-decode",
                                                       "--dtype", "int8"]))
    assert (job.runtime, job.decoder, job.dtype) == ("openvino", "tiny", "int8")
    job, _ = _job_from_args(build_parser().parse_args([*base, "--runtime", "auto"]))
    assert job.runtime is None


def test_runtime_flags_are_documented_and_checked(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert "--runtime {auto,torch,openvino}" in out and "--fast-decode" in out and "int8" in out
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "x", "--runtime", "onnx"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_rerun_can_change_the_runtime(capsys, tmp_path, tiny_builtin):
    from inference.cli import _rerun_job, build_parser

    first = tmp_path / "first.png"
    code, _, err = cli(capsys, "generate", "apple", "-m", tiny_builtin, "--seed", 3, "-o", first)
    assert code == 0, err
    job, _ = _rerun_job(build_parser().parse_args(["rerun", str(first)]))
    assert job.runtime is None and job.decoder is None
    job, _ = _rerun_job(build_parser().parse_args(["rerun", str(first), "--runtime", "torch", "--fast-decode"]))
    assert (job.runtime, job.decoder, job.seed) == ("torch", "tiny", 3)


def test_verbose_prints_the_path_and_a_first_use_says_what_it_prepares(capsys, tmp_path, tiny_builtin, monkeypatch):
    code = main(["-v", "generate", "apple", "-m", str(tiny_builtin), "-o", str(tmp_path / "a.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "runtime: ONNX Runtime fp32" in out

    from inference import engine
    from inference.jobs import Progress

    real = engine.Engine.run

    def preparing(self, job_id, job, on_progress, cancelled):
        on_progress(Progress(job_id, 0, 1, 0.5, stage="prepare", text="converting the unet for OpenVINO"))
        on_progress(Progress(job_id, 0, 1, 0.9, stage="prepare", text="timing OpenVINO bf16"))
        return real(self, job_id, job, on_progress, cancelled)

    monkeypatch.setattr(engine.Engine, "run", preparing)
    code = main(["generate", "apple", "-m", str(tiny_builtin), "-o", str(tmp_path / "b.png")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "generate: converting the unet for OpenVINO…" in err and "generate: timing OpenVINO bf16…" in err
    assert "runtime:" not in out, "the path is a detail: -v prints it"
    code = main(["-q", "generate", "apple", "-m", str(tiny_builtin), "-o", str(tmp_path / "c.png")])
    assert code == 0 and "converting" not in capsys.readouterr().err, "-q: no progress"
