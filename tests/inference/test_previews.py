"""Live previews come from latents without the decoder."""

import torch

from inference.previews import latents_to_preview


def test_preview_is_rgb_and_readable_size():
    image = latents_to_preview(torch.zeros(1, 4, 8, 12))
    assert image.mode == "RGB" and image.size[0] >= 12 and image.size[0] / image.size[1] == 12 / 8


def test_preview_reflects_the_latents():
    # The fourth SD latent channel is mostly negative blue: pushing it down makes the image bluer.
    latents = torch.zeros(1, 4, 8, 8)
    latents[:, 3] = -2.0
    r, g, b = latents_to_preview(latents).getpixel((0, 0))
    assert b > r and b > 200


def test_non_four_channel_latents_give_no_preview():
    assert latents_to_preview(torch.zeros(1, 16, 8, 8)) is None
