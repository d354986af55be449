"""The frozen offline sentence encoder: real model, unit vectors, semantics, cache."""

from __future__ import annotations

import pytest
import torch

from fsl_utils.encoders.text import EMBEDDING_DIM, TextEncoder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    import os

    old = os.environ.get("FSL_CACHE_DIR")
    os.environ["FSL_CACHE_DIR"] = str(tmp_path_factory.mktemp("textcache"))
    yield TextEncoder()
    if old is None:
        os.environ.pop("FSL_CACHE_DIR")
    else:
        os.environ["FSL_CACHE_DIR"] = old


def test_encode_gives_unit_vectors_with_sensible_similarities(encoder):
    e = encoder.encode(["a photo of a cat.", "a photo of a kitten.", "a photo of a truck.", "a photo of a lorry."])
    assert e.shape == (4, EMBEDDING_DIM) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(4))
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[1, 3]  # synonyms closer than unrelated classes


def test_cache_is_exact_and_avoids_loading_the_model(encoder):
    sentences = ["a photo of a frog.", "a blurry photo of a ship."]
    first = encoder.encode(sentences)
    again = TextEncoder()  # same FSL_CACHE_DIR: reads the disk cache
    second = again.encode(list(reversed(sentences)))
    assert again._model is None, "cached sentences must not load the model"
    torch.testing.assert_close(second, first.flip(0), rtol=0, atol=0)
    # batching does not change an embedding beyond float noise
    torch.testing.assert_close(TextEncoder(cache=False).encode(sentences[:1])[0], first[0], atol=1e-5, rtol=0)


def test_bad_input_is_a_clear_error(encoder):
    with pytest.raises(TypeError, match="list of sentences"):
        encoder.encode("a photo of a cat.")
    with pytest.raises(TypeError, match="strings"):
        encoder.encode(["ok", 3])
    assert encoder.encode([]).shape == (0, EMBEDDING_DIM)
