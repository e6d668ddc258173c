"""The SD speed benchmark: its plan, its arithmetic, and one real run of every path on a toy model."""

from __future__ import annotations

import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import sd_speed  # noqa: E402

STAGES = {"text_encoder", "unet", "decoder", "preview", "rest"}


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / "sd_speed.py"), *args], check=False, capture_output=True,
                          text=True, timeout=900, cwd=cwd)


def test_help_explains_the_runs(tmp_path):
    done = _script("--help", cwd=tmp_path)
    assert done.returncode == 0
    for words in ("diffusers_fp32", "openvino_taesd", "quickbrush_tiny", "quickbrush_full", "first use",
                  "speedup_vs_openvino_taesd", "--keep"):
        assert words in done.stdout


def test_the_plan_runs_every_path_of_the_device_in_its_own_child(tmp_path):
    done = _script("--dry-run", "--keep", str(tmp_path), cwd=tmp_path)
    plan = json.loads(done.stdout)
    assert plan["runs"] == [f"{a}@{s}" for a in sd_speed.ARCHITECTURES for s in (512, 256)]
    assert plan["paths"] == list(sd_speed.CPU_PATHS)
    assert len(plan["commands"]) == 6 * 4 and all(c[:2] == ["--child", c[1]] for c in plan["commands"])
    cuda = json.loads(_script("--dry-run", "--device", "cuda", "--quick", cwd=tmp_path).stdout)
    assert cuda["runs"] == ["sd_turbo@512"] and cuda["batch"] == 8
    assert cuda["paths"] == list(sd_speed.CUDA_PATHS)


def test_stages_split_the_final_decode_from_the_previews():
    calls = {"text_encoder": [0.01], "unet": [0.1, 0.1], "tiny_decoder": [0.02, 0.03], "vae_decoder": []}
    tiny = sd_speed.stages_of(calls, "tiny_decoder")
    assert tiny["decoder"] == 0.03 and tiny["preview"] == 0.02 and tiny["unet"] == 0.2 and tiny["unet_calls"] == 2
    full = sd_speed.stages_of({**calls, "vae_decoder": [0.5]}, "vae_decoder")
    assert full["decoder"] == 0.5 and full["preview"] == 0.05


def test_agreement_numbers(tmp_path):
    import numpy as np
    from PIL import Image

    np.save(tmp_path / "ref.npy", np.ones((1, 4, 2, 2), np.float32))
    np.save(tmp_path / "out.npy", np.full((1, 4, 2, 2), 1.1, np.float32))
    assert sd_speed.relative_error(tmp_path / "out.npy", tmp_path / "ref.npy") == pytest.approx(0.1)
    assert sd_speed.relative_error(tmp_path / "missing.npy", tmp_path / "ref.npy") is None
    grey = np.full((8, 8, 3), 100, np.uint8)
    Image.fromarray(grey).save(tmp_path / "a.png")
    Image.fromarray(grey + 1).save(tmp_path / "b.png")
    assert sd_speed.psnr(tmp_path / "a.png", tmp_path / "a.png") == sd_speed.PSNR_CAP
    assert sd_speed.psnr(tmp_path / "b.png", tmp_path / "a.png") == pytest.approx(48.13, abs=0.01)


def test_headline_speedups_and_targets():
    paths = {"diffusers_fp32": {"e2e_ms": 12000.0, "peak_rss_mb": 6000.0},
             "openvino_taesd": {"e2e_ms": 1500.0, "peak_rss_mb": 3000.0},
             "quickbrush_tiny": {"e2e_ms": 1000.0, "e2e_ms_new_prompt": 1200.0, "peak_rss_mb": 3000.0},
             "quickbrush_full": {"e2e_ms": 5000.0, "e2e_ms_new_prompt": 6000.0, "peak_rss_mb": 7000.0}}
    report = {"runs": {"sd_turbo@256": {"paths": {}}, "sd_turbo@512": {"paths": paths}}}
    sd_speed.summarise(report, Namespace(device="cpu"))
    assert report["headline"] == "sd_turbo@512"
    assert report["speedup_vs_diffusers"] == 12.0 and report["speedup_vs_openvino_taesd"] == 1.5
    assert report["speedup_vs_diffusers_full_decoder"] == 2.4
    assert report["speedups_with_a_new_prompt"] == {"vs_diffusers": 10.0, "vs_openvino_taesd": 1.25,
                                                    "vs_diffusers_full_decoder": 2.0}
    assert report["targets"] == {"speedup_vs_diffusers>=10": True, "speedup_vs_openvino_taesd>=1.3": True,
                                 "speedup_vs_diffusers_full_decoder>=3": False,
                                 "quickbrush_tiny_peak_rss<=diffusers_fp32": True,
                                 "quickbrush_full_peak_rss<=diffusers_fp32": False}
    assert report["targets_met"] is False


@pytest.mark.slow
def test_every_path_runs_on_a_toy_model_and_reports(tmp_path):
    done = _script("--architectures", "tiny", "--sizes", "64", "--repeats", "1", "--keep", str(tmp_path / "keep"),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["cpu"]["flags"] and set(report["versions"]) >= {"torch", "openvino", "diffusers"}
    run = report["runs"]["tiny@64"]
    assert (run["steps"], run["guidance"]) == (1, 0.0), "the sd-turbo recipe, from the folder's name"
    paths = run["paths"]
    assert set(paths) == set(sd_speed.CPU_PATHS)
    for name, result in paths.items():
        assert "error" not in result, (name, result)
        assert result["e2e_ms"] > 0 and result["cpu_ms"] > 0 and set(result["stage_ms"]) == STAGES, name
        assert result["stage_ms"]["unet"] > 0 and result["unet_calls"] == 1, name
        assert result["peak_rss_mb"] > 100 and result["load_s"] >= 0, name
        if name != "diffusers_fp32":
            agreement = result["agreement"]
            assert 0 <= agreement["unet_rel_error"] < 0.5, (name, agreement)
            assert 0 <= agreement["text_encoder_rel_error"] < 0.1, (name, agreement)
            assert agreement["psnr_db"] > 20, (name, agreement)
    assert paths["openvino_taesd"]["conversion_s"] > 0 and paths["openvino_taesd"]["precision"] in ("bf16", "f32")
    # One first use (probe, conversion, the choice remembered) before the first Quickbrush path.
    assert paths["quickbrush_tiny"]["first_use_s"] > 0
    assert paths["quickbrush_tiny"]["choice"]["runtime"] in ("torch", "openvino")
    assert "first_use_s" not in paths["quickbrush_full"]
    assert paths["quickbrush_tiny"]["decoder"] == "tiny" and paths["quickbrush_full"]["decoder"] == "full"
    assert all(paths[name]["e2e_ms_new_prompt"] > 0 for name in ("quickbrush_tiny", "quickbrush_full"))
    for key in ("speedup_vs_diffusers", "speedup_vs_openvino_taesd", "speedup_vs_diffusers_full_decoder"):
        assert report[key] > 0, key
    assert all(isinstance(v, bool) for v in report["targets"].values())
