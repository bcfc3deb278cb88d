from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The primary models in tests are tiny: one thread beats two contending ones.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def _tmp_cache_dir(tmp_path_factory):
    # Pretrained weights (fine-tuning families) and tokenizers go to a fresh folder, never
    # the user's ~/.cache/lr_gym; a test may still point LR_GYM_CACHE_DIR elsewhere.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LR_GYM_CACHE_DIR", str(tmp_path_factory.mktemp("lr_gym_cache")))
        yield
