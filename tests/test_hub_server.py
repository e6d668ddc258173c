"""The test Hub (tests/hub_server.py) speaks what huggingface_hub expects, over real sockets."""

import hashlib
import os
from pathlib import Path

import pytest

FILES = {
    "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}',
    "unet/config.json": b"{}",
    "unet/diffusion_pytorch_model.safetensors": os.urandom(200_000),
}


def test_huggingface_hub_downloads_from_it(hub_server):
    from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download

    sha = hub_server.add_repo("tiny/model", FILES)
    info = HfApi(endpoint=hub_server.url).model_info("tiny/model", files_metadata=True)
    assert info.sha == sha
    weights = {s.rfilename: s for s in info.siblings}["unet/diffusion_pytorch_model.safetensors"]
    assert weights.lfs.sha256 == hashlib.sha256(FILES[weights.rfilename]).hexdigest()
    assert weights.size == len(FILES[weights.rfilename])

    path = hf_hub_download("tiny/model", "unet/diffusion_pytorch_model.safetensors")
    assert Path(path).read_bytes() == FILES["unet/diffusion_pytorch_model.safetensors"]
    folder = snapshot_download("tiny/model")
    assert sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs) \
        == sorted(FILES)
    assert str(folder).startswith(constants.HF_HUB_CACHE)


def test_a_dropped_connection_is_retried(hub_server):
    from huggingface_hub import hf_hub_download

    hub_server.add_repo("tiny/model", FILES)
    hub_server.drop_after(50_000)
    name = "unet/diffusion_pytorch_model.safetensors"
    path = hf_hub_download("tiny/model", name)
    assert Path(path).read_bytes() == FILES[name]
    gets = [r for method, p, r in hub_server.requests if method == "GET" and p.endswith(name)]
    # huggingface_hub reads 10 MB chunks, so a drop inside the first one starts again from zero;
    # inference.models.downloads resumes from the byte it got to (test_downloads.py).
    assert len(gets) == 2
    assert hub_server.served[name] == 50_000 + len(FILES[name])


def test_a_range_gets_the_rest(hub_server):
    import httpx2

    hub_server.add_repo("tiny/model", FILES)
    name = "unet/diffusion_pytorch_model.safetensors"
    reply = httpx2.get(f"{hub_server.url}/tiny/model/resolve/main/{name}", headers={"Range": "bytes=1000-"})
    assert reply.status_code == 206 and reply.content == FILES[name][1000:]
    assert reply.headers["Content-Range"] == f"bytes 1000-{len(FILES[name]) - 1}/{len(FILES[name])}"
    head = httpx2.head(f"{hub_server.url}/tiny/model/resolve/main/{name}")
    assert head.headers["X-Linked-Size"] == str(len(FILES[name]))
    assert not any(k.lower().startswith("x-xet") for k in head.headers)


def test_unknown_repos_and_revisions_are_the_hub_s_errors(hub_server):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    hub_server.add_repo("tiny/model", FILES)
    api = HfApi(endpoint=hub_server.url)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("tiny/model", revision="0" * 40)
