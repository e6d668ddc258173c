"""The quality benchmark's verdict: the issue's bars on pooled numbers and on each domain."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import builtin_quality  # noqa: E402
import numpy as np  # noqa: E402

from training import data  # noqa: E402


def _block(sub: float, group: float, domains: dict | None = None) -> dict:
    block = {"subgroup_vs_reference": sub, "group_vs_reference": group}
    if domains:
        block["by_domain"] = {d: {"subgroup_vs_reference": s, "group_vs_reference": g} for d, (s, g) in domains.items()}
    return block


def test_emoji_only_report_is_judged_on_the_pooled_numbers():
    report = {"steps_4": _block(0.9, 0.96), "steps_1": _block(0.72, 0.8)}
    assert builtin_quality.bars(report) == {"subgroup_4>=0.85": True, "group_4>=0.95": True, "subgroup_1>=0.70": True}
    report["steps_4"]["group_vs_reference"] = 0.949
    assert builtin_quality.bars(report)["group_4>=0.95"] is False


def test_every_domain_must_pass_on_its_own():
    report = {"steps_4": _block(0.9, 0.97, {"emoji": (0.9, 0.94), "icons": (0.88, 1.0)}),
              "steps_1": _block(0.75, 0.8, {"emoji": (0.75, 0.8), "icons": (0.6, 0.9)})}
    verdict = builtin_quality.bars(report)
    assert verdict["group_4>=0.95"] is True, "pooled: icons lift the group figure"
    assert verdict["emoji:group_4>=0.95"] is False
    assert verdict["icons:subgroup_1>=0.70"] is False
    assert verdict["icons:group_4>=0.95"] is True


def test_domains_follow_the_group():
    assert data.domain_of_group(data.ICON_GROUP) == "icons"
    assert data.domain_of_group(data.CLIPART_GROUP) == "clipart"
    assert data.domain_of_group("Smileys & Emotion") == "emoji"
    assert data.domain_of_source("lucide") == "icons" and data.domain_of_source("noto") == "emoji"


def test_contact_sheet_shares_its_rows_between_domains(tmp_path):
    import numpy as np
    from PIL import Image

    captions = [f"thing {k}" for k in range(6)] + [f"thing {k} icon" for k in range(6)]
    groups = ["Smileys & Emotion"] * 6 + [data.ICON_GROUP] * 6

    class Fake:
        group = np.array(groups)
        images = np.zeros((12, 16, 16, 4), np.uint8)

    images = {steps: np.zeros((12, 16, 16, 4), np.uint8) for steps in (1, 2, 4)}
    images.update({f"edit-{c}": np.zeros((8, 16, 16, 4), np.uint8) for c in ("blue", "red", "green")})
    real_of = {c: [k] for k, c in enumerate(captions)}
    out = tmp_path / "sheet.png"
    builtin_quality.contact_sheet(out, captions, images, Fake(), np.arange(8), np.zeros((8, 16, 16, 4), np.uint8),
                                  real_of, rows=4)
    with Image.open(out) as sheet:
        assert sheet.height == 22 + 96 * (4 + 3), "a short header, 2 emoji and 2 icon rows, 3 strips"


def test_group_breakdown_follows_the_seed_order_of_generate():
    # Two captions x two seeds: generate() gives caption order at seed 0, then again at seed 1.
    groups = ["Animals & Nature", "Smileys & Emotion"]
    generated_ok = np.array([True, False, True, True])
    real_groups = np.array(["Animals & Nature", "Animals & Nature", "Smileys & Emotion"])
    real_ok = np.array([True, False, True])
    real_captions = np.array(["cat", "dog", "grin"])
    report = builtin_quality.by_group(groups, generated_ok, real_groups, real_ok, real_captions)
    assert report == {"Animals & Nature": {"captions": 1, "group_accuracy": 1.0, "reference": 0.5},
                      "Smileys & Emotion": {"captions": 1, "group_accuracy": 0.5, "reference": 1.0}}


def test_reference_counts_each_caption_once_as_the_generated_side_does():
    # An emoji caption with four real images (all recognised) and two icon captions with one
    # image each (neither recognised): per image the judge reads 4/6, per caption 1/3. The
    # generated side has the same number of images for every caption, so 1/3 is what it compares to.
    ok = np.array([True, True, True, True, False, False])
    captions = np.array(["grinning face"] * 4 + ["cat icon", "house icon"])
    assert builtin_quality.caption_mean(ok, captions) == 1 / 3
    assert builtin_quality.caption_mean(ok[:4], captions[:4]) == 1.0


def test_reference_of_a_caption_is_the_mean_of_its_images():
    ok = np.array([True, False, False, True])
    captions = np.array(["a", "a", "b", "b"])
    assert builtin_quality.caption_mean(ok, captions) == 0.5
    assert np.isnan(builtin_quality.caption_mean(ok[:0], captions[:0]))


def test_image_weighted_generated_accuracy_pairs_with_the_per_image_reference():
    # The same emoji caption (four real images) and two icon captions (one each), two seeds: the
    # generated images of the emoji caption are right, the icons' wrong. Weighed like the real
    # images they read 4/6 per seed, exactly as a judge that got the same captions right would
    # read on the real side per image.
    ok = np.array([True, False, False] * 2)
    weights = np.tile([4, 1, 1], 2)
    assert builtin_quality.image_weighted(ok, weights) == 4 / 6
    assert builtin_quality.image_weighted(ok, np.ones(6)) == 1 / 3
